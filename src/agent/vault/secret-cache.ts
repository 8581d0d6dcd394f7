/**
 * The edge's encrypted offline cache of secrets: one file, written atomically (temp file
 * and rename) at mode 0600, each entry sealed with the cache key (AES-256-GCM, random
 * nonce) and bound to this edge, its name, version and arrival time as associated data.
 *
 * An entry that does not authenticate, or a file that does not parse, is refused: dropped
 * with an error in the log, and the hub is asked for it again (it is then missing from what
 * the edge reports holding). Values stay sealed in memory too and are opened per read.
 *
 * Known limit: someone who can write the file and kept an older copy of it can put that
 * copy back (a rollback to older versions of the same secrets); the next link-up with the
 * hub corrects it.
 */
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { z } from 'zod';
import { DrawbridgeError } from '../../errors.js';
import { writeFileAtomic } from '../../util/files.js';
import type { Logger } from '../../util/logger.js';
import { aesGcmOpen, aesGcmSeal } from '../../vault/key-encryption-key.js';
import { isValidSecretName } from '../../vault/names.js';
import type { CacheKeyStore } from './cache-key.js';

interface Entry {
  version: number;
  receivedAt: number;
  sealed: Buffer;
}

const CacheFileSchema = z.strictObject({
  v: z.literal(1),
  edge: z.string(),
  entries: z.record(
    z.string(),
    z.strictObject({ version: z.number().int().min(1), receivedAt: z.number().int().min(0), sealed: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/) }),
  ),
});

export interface CachedSecret {
  name: string;
  version: number;
  receivedAt: number;
}

export class SecretCache {
  private readonly entries = new Map<string, Entry>();
  private key: Buffer | undefined;

  constructor(
    private readonly path: string,
    private readonly keyStore: CacheKeyStore,
    private readonly edgeId: string,
    private readonly logger: Logger,
  ) {}

  /** Loads and checks every entry; refuses (and logs) what does not authenticate. Returns how many were refused. */
  load(): number {
    this.key = this.keyStore.load();
    this.entries.clear();
    if (!existsSync(this.path)) return 0;
    let file: z.infer<typeof CacheFileSchema>;
    try {
      file = CacheFileSchema.parse(JSON.parse(readFileSync(this.path, 'utf8')));
      if (file.edge !== this.edgeId) throw new Error(`it belongs to edge ${file.edge.slice(0, 40)}`);
    } catch (error) {
      const aside = `${this.path}.refused-${Date.now()}`;
      renameSync(this.path, aside);
      this.logger.error({ file: this.path, movedTo: aside, err: (error as Error).message.slice(0, 200) }, 'the secret cache is corrupt or not ours; refused it, every secret will be fetched from the hub again');
      return -1;
    }
    let refused = 0;
    for (const [name, raw] of Object.entries(file.entries)) {
      const entry = { version: raw.version, receivedAt: raw.receivedAt, sealed: Buffer.from(raw.sealed, 'base64') };
      try {
        if (!isValidSecretName(name)) throw new DrawbridgeError('DECRYPT_FAILED', 'invalid name');
        this.open(name, entry).fill(0);
        this.entries.set(name, entry);
      } catch {
        refused++;
        this.logger.error({ file: this.path, secret: name.slice(0, 200), version: raw.version }, 'a secret cache entry did not authenticate (tampered or corrupt); refused it, it will be fetched from the hub again');
      }
    }
    if (refused > 0) this.save();
    return refused;
  }

  list(): CachedSecret[] {
    return [...this.entries].map(([name, e]) => ({ name, version: e.version, receivedAt: e.receivedAt })).sort((a, b) => a.name.localeCompare(b.name));
  }

  held(): { name: string; version: number }[] {
    return [...this.entries].map(([name, e]) => ({ name, version: e.version }));
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The value (a fresh buffer the caller may wipe), or undefined. */
  get(name: string): { name: string; version: number; value: Buffer } | undefined {
    const entry = this.entries.get(name);
    if (!entry) return undefined;
    return { name, version: entry.version, value: this.open(name, entry) };
  }

  /** Stores a version durably (the file is on disk when this returns). */
  put(name: string, version: number, value: Buffer, now: number): void {
    const key = this.requireKey();
    this.entries.set(name, { version, receivedAt: now, sealed: aesGcmSeal(key, value, this.aad(name, version, now)) });
    this.save();
  }

  remove(name: string): boolean {
    const removed = this.entries.delete(name);
    if (removed) this.save();
    return removed;
  }

  private open(name: string, entry: Entry): Buffer {
    return aesGcmOpen(this.requireKey(), entry.sealed, this.aad(name, entry.version, entry.receivedAt), `cached secret "${name}"`);
  }

  private aad(name: string, version: number, receivedAt: number): Buffer {
    return Buffer.from(`drawbridge-edge-cache-v1\0${this.edgeId}\0${name}\0${version}\0${receivedAt}`);
  }

  private requireKey(): Buffer {
    if (!this.key) this.key = this.keyStore.load();
    return this.key;
  }

  private save(): void {
    const entries = Object.fromEntries([...this.entries].map(([name, e]) => [name, { version: e.version, receivedAt: e.receivedAt, sealed: e.sealed.toString('base64') }]));
    writeFileAtomic(this.path, JSON.stringify({ v: 1, edge: this.edgeId, entries }), 0o600);
  }
}
