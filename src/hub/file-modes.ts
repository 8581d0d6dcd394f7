/**
 * File modes the hub insists on at start: its data directory (keys, tokens, the database)
 * is readable by its own user only, and a hub.yaml that holds a secret should be too.
 */
import { chmodSync, statSync } from 'node:fs';
import type { Logger } from '../util/logger.js';
import type { HubConfig } from './config.js';

/** Tightens an existing data directory to 0700 (a new one is created so); says so once if it had to. */
export function tightenDataDir(dataDir: string, logger: Logger): void {
  const mode = statSync(dataDir).mode & 0o777;
  if ((mode & 0o077) === 0) return;
  chmodSync(dataDir, 0o700);
  logger.warn({ dataDir, was: mode.toString(8) }, 'the data directory was open to other users; tightened it to 0700');
}

/** The settings of a hub config that are secrets (paths as written in hub.yaml). */
export function configSecrets(config: HubConfig): string[] {
  return config.webhook?.secret ? ['webhook.secret'] : [];
}

/** One warning line when a hub.yaml holding a secret can be read by the group or by anyone. */
export function warnIfConfigReadable(path: string, config: HubConfig, logger: Logger): boolean {
  const secrets = configSecrets(config);
  const mode = statSync(path).mode & 0o777;
  if (secrets.length === 0 || (mode & 0o044) === 0) return false;
  logger.warn({ file: path, mode: mode.toString(8), secrets }, `${path} holds a secret and is readable by other users; chmod 600 it`);
  return true;
}
