/**
 * The key of the edge's secret cache. Behind an interface so a TPM or the OS keystore can
 * hold it later; today it is a random 256-bit key in a file at mode 0600 beside the agent's
 * other keys. Whoever can read that file (root, or the agent's user) can open the cache:
 * the cache protects against a copied disk image or a backup without the key file, and
 * detects tampering; it does not protect against the agent's own user.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { DrawbridgeError } from '../../errors.js';
import { writeFileAtomic } from '../../util/files.js';

export interface CacheKeyStore {
  /** Where the key lives, for log lines. */
  readonly description: string;
  /** The cache key, made on first use. */
  load(): Buffer;
}

export class FileCacheKeyStore implements CacheKeyStore {
  constructor(private readonly path: string) {}

  get description(): string {
    return this.path;
  }

  load(): Buffer {
    if (!existsSync(this.path)) {
      const key = randomBytes(32);
      writeFileAtomic(this.path, key.toString('base64') + '\n', 0o600);
      return key;
    }
    const mode = statSync(this.path).mode & 0o777;
    if ((mode & 0o077) !== 0) throw new DrawbridgeError('CONFIG_INVALID', `${this.path} is readable by other users (mode ${mode.toString(8)}); chmod 600 it`);
    const key = Buffer.from(readFileSync(this.path, 'utf8').trim(), 'base64');
    if (key.length !== 32) throw new DrawbridgeError('CONFIG_INVALID', `${this.path} does not hold a 256-bit key`);
    return key;
  }
}
