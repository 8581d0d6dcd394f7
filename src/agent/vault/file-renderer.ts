/**
 * Renders `files:` entries from the secrets the edge holds: at start (from the cache, so a
 * restart with no hub still renders), and on every change of a secret a file uses. Each
 * write is atomic (a temp file in the same directory, with its mode and owner set before
 * any byte of the value is written, then renamed over the old one), skipped when the
 * content is unchanged, and followed by the file's reload command, run without a shell.
 * When a secret a file uses is removed from the edge (denied, deleted), the file is removed
 * too: the secret is gone from the edge.
 */
import { execFile } from 'node:child_process';
import { chmodSync, closeSync, existsSync, fchownSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { DrawbridgeError } from '../../errors.js';
import type { Logger } from '../../util/logger.js';
import type { AgentFileConfig } from '../config.js';
import type { EdgeSecrets, SecretChange } from './edge-secrets.js';
import { parseTemplate, renderTemplate, templateSecrets, type TemplatePart } from './template.js';

/** A reload command that runs longer is killed. */
const RELOAD_TIMEOUT_MS = 30_000;

interface RenderedFile {
  config: AgentFileConfig;
  path: string;
  mode: number;
  owner: { uid: number; gid: number } | undefined;
  parts: TemplatePart[];
  secrets: string[];
  /** Renders queue behind each other per file. */
  busy: Promise<void>;
}

export interface FileEvent {
  path: string;
  event: 'written' | 'unchanged' | 'removed' | 'waiting' | 'failed' | 'reloaded' | 'reload-failed';
  detail?: string;
}

export class FileRenderer {
  private readonly files: RenderedFile[];

  constructor(
    files: readonly AgentFileConfig[],
    private readonly secrets: EdgeSecrets,
    resolvePath: (file: string) => string,
    private readonly logger: Logger,
    private readonly onEvent: (event: FileEvent) => void = () => undefined,
  ) {
    this.files = files.map((config) => {
      const parts: TemplatePart[] = config.template !== undefined ? parseTemplate(config.template) : [{ secret: config.secret as string }];
      return {
        config,
        path: resolvePath(config.path),
        mode: Number.parseInt(config.mode, 8),
        owner: config.owner === undefined ? undefined : resolveOwner(config.owner),
        parts,
        secrets: templateSecrets(parts),
        busy: Promise.resolve(),
      };
    });
  }

  /** Renders every file from what the edge holds now, then follows changes. */
  start(): Promise<void> {
    this.secrets.onChange((change) => this.onChange(change));
    return Promise.all(this.files.map((file) => this.queue(file, false))).then(() => undefined);
  }

  /** Resolves when every render queued so far is done. */
  idle(): Promise<void> {
    return Promise.all(this.files.map((f) => f.busy)).then(() => undefined);
  }

  private onChange(change: SecretChange): void {
    for (const file of this.files) if (file.secrets.includes(change.name)) void this.queue(file, change.version === undefined);
  }

  private queue(file: RenderedFile, removal: boolean): Promise<void> {
    file.busy = file.busy.then(() => this.render(file, removal)).catch((error: unknown) => {
      this.logger.error({ file: file.path, err: (error as Error).message }, 'rendering a secret file failed');
      this.onEvent({ path: file.path, event: 'failed', detail: (error as Error).message });
    });
    return file.busy;
  }

  private async render(file: RenderedFile, removal: boolean): Promise<void> {
    const held = new Map<string, Buffer>();
    try {
      for (const name of file.secrets) {
        const secret = this.secrets.get(name);
        if (secret) held.set(name, secret.value);
      }
      const content = renderTemplate(file.parts, (name) => held.get(name));
      if (!content) {
        const missing = file.secrets.filter((n) => !held.has(n));
        if (removal && existsSync(file.path)) {
          unlinkSync(file.path);
          this.logger.warn({ file: file.path, missing }, 'removed a rendered secret file: a secret it used is no longer on this edge');
          this.onEvent({ path: file.path, event: 'removed' });
          await this.reload(file);
        } else {
          this.logger.info({ file: file.path, missing }, 'secret file waits for its secrets');
          this.onEvent({ path: file.path, event: 'waiting' });
        }
        return;
      }
      try {
        if (sameFile(file, content)) {
          this.onEvent({ path: file.path, event: 'unchanged' });
          return;
        }
        writeSecretFile(file.path, content, file.mode, file.owner);
      } finally {
        content.fill(0);
      }
      this.logger.info({ file: file.path, secrets: file.secrets }, 'rendered a secret file');
      this.onEvent({ path: file.path, event: 'written' });
      await this.reload(file);
    } finally {
      for (const value of held.values()) value.fill(0);
    }
  }

  private reload(file: RenderedFile): Promise<void> {
    const argv = file.config.reload;
    if (!argv) return Promise.resolve();
    return new Promise((resolve) => {
      execFile(argv[0] as string, argv.slice(1), { timeout: RELOAD_TIMEOUT_MS, shell: false, windowsHide: true }, (error, _stdout, stderr) => {
        if (error) {
          const detail = `${error.message.split('\n')[0]}${stderr ? `: ${String(stderr).slice(0, 200)}` : ''}`;
          this.logger.error({ file: file.path, command: argv[0], err: detail }, 'the reload command of a secret file failed');
          this.onEvent({ path: file.path, event: 'reload-failed', detail });
        } else {
          this.logger.info({ file: file.path, command: argv[0] }, 'ran the reload command of a secret file');
          this.onEvent({ path: file.path, event: 'reloaded' });
        }
        resolve();
      });
    });
  }
}

function sameFile(file: RenderedFile, content: Buffer): boolean {
  try {
    const stat = statSync(file.path);
    if ((stat.mode & 0o777) !== file.mode) return false;
    if (file.owner && (stat.uid !== file.owner.uid || stat.gid !== file.owner.gid)) return false;
    const existing = readFileSync(file.path);
    try {
      return existing.equals(content);
    } finally {
      existing.fill(0);
    }
  } catch {
    return false;
  }
}

/** Temp file beside the target, mode and owner set before the value is written, fsync, rename. */
function writeSecretFile(path: string, content: Buffer, mode: number, owner: { uid: number; gid: number } | undefined): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const temporary = `${path}.drawbridge-${process.pid}-${Date.now()}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    if (owner) fchownSync(fd, owner.uid, owner.gid);
    writeSync(fd, content);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(temporary, { force: true });
    if ((error as NodeJS.ErrnoException).code === 'EPERM') throw new DrawbridgeError('FORBIDDEN', `cannot give ${path} its owner: changing a file's owner needs root`);
    throw error;
  }
  closeSync(fd);
  // After chown (which may clear set-id bits): the mode is what the config says.
  chmodSync(temporary, mode);
  renameSync(temporary, path);
}

/** "user", "user:group", "uid", "uid:gid": names from /etc/passwd and /etc/group. */
export function resolveOwner(owner: string): { uid: number; gid: number } {
  const [user, group] = owner.split(':') as [string, string | undefined];
  const passwd = readIdFile('/etc/passwd');
  const groups = readIdFile('/etc/group');
  const userEntry = /^\d+$/.test(user) ? undefined : passwd.get(user);
  const uid = /^\d+$/.test(user) ? Number(user) : userEntry?.id;
  if (uid === undefined) throw new DrawbridgeError('CONFIG_INVALID', `files: unknown user "${user}"`);
  let gid: number | undefined;
  if (group === undefined) gid = userEntry?.gid ?? uid;
  else gid = /^\d+$/.test(group) ? Number(group) : groups.get(group)?.id;
  if (gid === undefined) throw new DrawbridgeError('CONFIG_INVALID', `files: unknown group "${group}"`);
  return { uid, gid };
}

function readIdFile(path: string): Map<string, { id: number; gid?: number }> {
  const map = new Map<string, { id: number; gid?: number }>();
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return map;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length < 3 || !fields[0]) continue;
    map.set(fields[0], { id: Number(fields[2]), ...(fields[3] !== undefined && /^\d+$/.test(fields[3]) ? { gid: Number(fields[3]) } : {}) });
  }
  return map;
}
