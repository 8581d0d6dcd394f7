/**
 * Where the client and the agent keep their files by default. Kept apart from the code that
 * reads them so that the CLI can name the defaults in --help without loading that code.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

/** $DRAWBRIDGE_CONFIG_DIR, else $XDG_CONFIG_HOME/drawbridge, else ~/.config/drawbridge. */
export function configDir(): string {
  const explicit = process.env['DRAWBRIDGE_CONFIG_DIR'];
  if (explicit) return explicit;
  const base = process.env['XDG_CONFIG_HOME'] || join(homedir(), '.config');
  return join(base, 'drawbridge');
}

export function defaultAgentConfigPath(): string {
  return process.env['DRAWBRIDGE_AGENT_CONFIG'] ?? join(configDir(), 'agent.yaml');
}

/** "HOST:PORT", "[v6]:PORT" or "PORT" as a listen address. */
export function parseListenAddress(text: string, defaultHost: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text) ?? /^()()(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) return undefined;
  return { host: m[1] || m[2] || defaultHost, port };
}
