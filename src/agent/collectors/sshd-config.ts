/**
 * The SSH server's effective settings: `sshd -T` (what sshd would really use, Includes and
 * defaults resolved) where it can run, else the configuration file read here (Include
 * followed, first value wins as in sshd, Match blocks left out since they apply only to some
 * connections, and OpenSSH's defaults for what is not set).
 */
import { readFile } from 'node:fs/promises';
import { readdir } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import type { InventoryRow } from '../../protocol/messages/telemetry.js';
import { lastLine, runCommand } from './run-command.js';
import type { SourceResult } from './source.js';

/** OpenSSH's defaults (since 7.0 root may log in with keys only). */
const DEFAULTS: Record<string, string> = {
  permitrootlogin: 'prohibit-password',
  passwordauthentication: 'yes',
  permitemptypasswords: 'no',
  kbdinteractiveauthentication: 'yes',
};
const MAX_INCLUDE_DEPTH = 8;
const MAX_FILES = 64;

/** `sshd -T` output or a config file's directives: keyword (lower case) -> values in order. */
export function parseSshdDirectives(text: string, stopAtMatch = true): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const match = /^(\S+?)(?:\s*=\s*|\s+)(.*)$/.exec(line);
    if (!match) continue;
    const key = (match[1] as string).toLowerCase();
    if (stopAtMatch && key === 'match') break;
    const value = (match[2] as string).trim().replace(/^"(.*)"$/, '$1');
    settings.set(key, [...(settings.get(key) ?? []), value]);
  }
  return settings;
}

export function sshdRow(settings: ReadonlyMap<string, string[]>, from: 'sshd -T' | 'file'): InventoryRow {
  const first = (key: string): string => (settings.get(key)?.[0] ?? DEFAULTS[key] ?? '').toLowerCase().slice(0, 64);
  // Older servers call keyboard-interactive "challengeresponseauthentication".
  const kbd = settings.get('kbdinteractiveauthentication')?.[0] ?? settings.get('challengeresponseauthentication')?.[0] ?? DEFAULTS['kbdinteractiveauthentication'];
  const ports = settings.get('port') ?? ['22'];
  const listen = settings.get('listenaddress') ?? ['0.0.0.0', '::'];
  return {
    k: 'sshd',
    permitRootLogin: first('permitrootlogin'),
    passwordAuthentication: first('passwordauthentication'),
    permitEmptyPasswords: first('permitemptypasswords'),
    kbdInteractiveAuthentication: String(kbd).toLowerCase().slice(0, 16),
    ports: [...new Set(ports)].join(',').slice(0, 256),
    listen: [...new Set(listen)].join(',').slice(0, 512),
    from,
  };
}

/** Reads a config file as sshd would, following Include (globs in the last path part). */
export async function readSshdConfigFile(path: string): Promise<Map<string, string[]>> {
  const settings = new Map<string, string[]>();
  let files = 0;
  const visit = async (file: string, depth: number): Promise<boolean> => {
    if (++files > MAX_FILES || depth > MAX_INCLUDE_DEPTH) return false;
    const text = await readFile(file, 'utf8');
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      const directives = parseSshdDirectives(line, false);
      const [key, values] = [...directives][0] ?? [];
      if (!key || !values) continue;
      if (key === 'match') return true;
      if (key === 'include') {
        for (const pattern of (values[0] ?? '').split(/\s+/).filter(Boolean)) {
          for (const included of await expand(isAbsolute(pattern) ? pattern : join('/etc/ssh', pattern))) {
            if (await visit(included, depth + 1)) return true;
          }
        }
        continue;
      }
      settings.set(key, [...(settings.get(key) ?? []), ...values]);
    }
    return false;
  };
  await visit(path, 0);
  return settings;
}

async function expand(pattern: string): Promise<string[]> {
  const name = basename(pattern);
  if (!name.includes('*') && !name.includes('?')) return [pattern];
  const regex = new RegExp(`^${name.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  try {
    return (await readdir(dirname(pattern))).filter((f) => regex.test(f)).sort().map((f) => join(dirname(pattern), f));
  } catch {
    return [];
  }
}

export class SshdCollector {
  constructor(
    private readonly configPath: string,
    private readonly command: readonly string[] | null,
  ) {}

  async collect(): Promise<SourceResult> {
    let why = 'sshd -T is switched off';
    if (this.command) {
      try {
        const out = await runCommand([...this.command, '-f', this.configPath], { timeoutMs: 10_000, maxBytes: 256 * 1024 });
        if (out.code === 0 && out.stdout.trim()) return { rows: [sshdRow(parseSshdDirectives(out.stdout, false), 'sshd -T')] };
        why = `${this.command.join(' ')} failed: ${lastLine(out.stderr) || `exit ${out.code}`}`;
      } catch (error) {
        why = `${this.command.join(' ')} could not run: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
      }
    }
    try {
      return { rows: [sshdRow(await readSshdConfigFile(this.configPath), 'file')], note: `${why}; read ${this.configPath} instead (Match blocks not evaluated)`.slice(0, 300) };
    } catch (error) {
      return { error: `${why}; cannot read ${this.configPath}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`.slice(0, 300) };
    }
  }
}
