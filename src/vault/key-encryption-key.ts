/**
 * The vault's key-encryption key (KEK): it wraps every data key and is never in the
 * database. Behind an interface so a hardware security module or a cloud KMS can hold it
 * later; the file implementation keeps it in DATA_DIR/vault.key at mode 0600.
 *
 * A rotation (`secrets rekey`) makes a new key current and keeps the old ones only until
 * every data key has been re-wrapped, so a crash half-way leaves every data key readable.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import { DrawbridgeError } from '../errors.js';
import { writeFileAtomic } from '../util/files.js';

export interface WrappedKey {
  kekId: string;
  wrapped: Buffer;
}

export interface KeyEncryptionKey {
  /** The key that wraps new data keys. */
  readonly currentId: string;
  /** Every key this KEK can unwrap with. */
  ids(): string[];
  /** Wraps a data key; `context` is bound to it as associated data and must be given again to unwrap. */
  wrap(dataKey: Buffer, context: Buffer): Promise<WrappedKey>;
  unwrap(key: WrappedKey, context: Buffer): Promise<Buffer>;
  /** Makes a new key current; the older ones still unwrap until retired. Returns the new id. */
  rotate(): Promise<string>;
  /** Forgets every key but the current one and those in `keep`. Returns the ids it forgot. */
  retire(keep: ReadonlySet<string>): Promise<string[]>;
}

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

const KeyFileSchema = z.strictObject({
  v: z.literal(1),
  current: z.string().regex(/^[0-9a-f]{16}$/),
  keys: z.record(z.string().regex(/^[0-9a-f]{16}$/), z.string().regex(/^[A-Za-z0-9+/]{43}=$/)),
});

/** AES-256-GCM with a random nonce: nonce || ciphertext || tag. */
export function aesGcmSeal(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

/** Opens aesGcmSeal's output; throws DECRYPT_FAILED when the data, the key or the associated data differ. */
export function aesGcmOpen(key: Buffer, sealed: Buffer, aad: Buffer, what: string): Buffer {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new DrawbridgeError('DECRYPT_FAILED', `${what} is truncated`);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, NONCE_BYTES));
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    return Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new DrawbridgeError('DECRYPT_FAILED', `${what} did not authenticate (tampered, or sealed with another key or for another name or version)`);
  }
}

const WRAP_AAD_PREFIX = 'drawbridge-vault-kek-v1\0';

/** DATA_DIR/vault.key: the KEK in a file readable by the hub's user only. */
export class FileKeyEncryptionKey implements KeyEncryptionKey {
  private keys: Map<string, Buffer>;
  private current: string;

  private constructor(
    private readonly path: string,
    keys: Map<string, Buffer>,
    current: string,
  ) {
    this.keys = keys;
    this.current = current;
  }

  /** Loads the key file, or creates it (with one fresh key) when `create` is true and it does not exist. */
  static open(path: string, options: { create: boolean }): FileKeyEncryptionKey {
    if (!existsSync(path)) {
      if (!options.create) {
        throw new DrawbridgeError('VAULT_KEY_UNAVAILABLE', `${path} is missing but the vault holds secrets sealed with it; restore it from your backup (it is kept apart from the database on purpose)`);
      }
      const id = randomBytes(8).toString('hex');
      const kek = new FileKeyEncryptionKey(path, new Map([[id, randomBytes(KEY_BYTES)]]), id);
      kek.save();
      return kek;
    }
    const mode = statSync(path).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new DrawbridgeError('CONFIG_INVALID', `${path} is readable by other users (mode ${mode.toString(8)}); chmod 600 it`);
    }
    let parsed: z.infer<typeof KeyFileSchema>;
    try {
      parsed = KeyFileSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
    } catch (cause) {
      throw new DrawbridgeError('CONFIG_INVALID', `${path} is not a valid vault key file`, { cause });
    }
    const keys = new Map(Object.entries(parsed.keys).map(([id, b64]) => [id, Buffer.from(b64, 'base64')]));
    if (!keys.has(parsed.current)) throw new DrawbridgeError('CONFIG_INVALID', `${path} names a current key it does not hold`);
    return new FileKeyEncryptionKey(path, keys, parsed.current);
  }

  get currentId(): string {
    return this.current;
  }

  ids(): string[] {
    return [...this.keys.keys()];
  }

  async wrap(dataKey: Buffer, context: Buffer): Promise<WrappedKey> {
    const key = this.keys.get(this.current) as Buffer;
    return { kekId: this.current, wrapped: aesGcmSeal(key, dataKey, wrapAad(this.current, context)) };
  }

  async unwrap(wrapped: WrappedKey, context: Buffer): Promise<Buffer> {
    const key = this.keys.get(wrapped.kekId);
    if (!key) throw new DrawbridgeError('VAULT_KEY_UNAVAILABLE', `the key-encryption key ${wrapped.kekId} is not in ${this.path}`);
    return aesGcmOpen(key, wrapped.wrapped, wrapAad(wrapped.kekId, context), 'a wrapped data key');
  }

  async rotate(): Promise<string> {
    const id = randomBytes(8).toString('hex');
    this.keys.set(id, randomBytes(KEY_BYTES));
    this.current = id;
    // Written before any data key is re-wrapped with it: a crash never strands a data key.
    this.save();
    return id;
  }

  async retire(keep: ReadonlySet<string>): Promise<string[]> {
    const gone = this.ids().filter((id) => id !== this.current && !keep.has(id));
    if (gone.length === 0) return [];
    for (const id of gone) this.keys.delete(id);
    this.save();
    return gone;
  }

  private save(): void {
    const body = { v: 1, current: this.current, keys: Object.fromEntries([...this.keys].map(([id, key]) => [id, key.toString('base64')])) };
    writeFileAtomic(this.path, JSON.stringify(body) + '\n', 0o600);
  }
}

function wrapAad(kekId: string, context: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${WRAP_AAD_PREFIX}${kekId}\0`), context]);
}
