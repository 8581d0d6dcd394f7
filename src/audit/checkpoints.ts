/**
 * Signed checkpoints of the audit chain's head, and the hub's own record of the last head
 * it wrote. No I/O in the checkpoint format itself; the key and head files live in the data
 * directory.
 *
 * What this protects against: someone who can write the database file can drop the newest
 * records or rewrite the whole chain with recomputed hashes, and `audit verify` alone cannot
 * tell. A checkpoint (sequence number and hash of a record, signed by the hub's audit key)
 * that was copied off the machine can: if a checkpointed record is gone or changed, or the
 * chain no longer leads to it, `audit verify --checkpoint` fails. What it does not protect
 * against: an attacker who also has the data directory holds the signing key and can sign
 * new checkpoints from then on, so history after the last checkpoint that left the machine
 * can still be rewritten; keep checkpoints elsewhere (the webhook sends them), often.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../util/files.js';

export const CHECKPOINT_VERSION = 1;

export const CheckpointSchema = z.strictObject({
  v: z.literal(CHECKPOINT_VERSION),
  /** The hub's CA pin: which hub this checkpoint belongs to */
  hub: z.string().max(200),
  /** sha256:HEX of the audit signing key (SPKI DER) */
  keyId: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  /** The audit signing key, SPKI DER base64 (compare keyId with the one you trust) */
  publicKey: z.string().max(200),
  seq: z.number().int().min(0),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  ts: z.string().max(40),
  signature: z.string().max(200),
});
export type Checkpoint = z.infer<typeof CheckpointSchema>;

function payload(c: Omit<Checkpoint, 'signature' | 'publicKey' | 'v'>): Buffer {
  return Buffer.from(`drawbridge-audit-checkpoint-v1\n${c.hub}\n${c.keyId}\n${c.seq}\n${c.hash}\n${c.ts}`);
}

export function keyIdOf(publicKey: KeyObject): string {
  return 'sha256:' + createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

export class AuditSigner {
  readonly keyId: string;
  readonly publicKeyBase64: string;

  private constructor(private readonly key: KeyObject) {
    const publicKey = createPublicKey(key);
    this.keyId = keyIdOf(publicKey);
    this.publicKeyBase64 = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  }

  /** Loads DATA_DIR/audit.key, creating it (Ed25519, mode 0600) on first start. */
  static load(dataDir: string): AuditSigner {
    const path = join(dataDir, 'audit.key');
    if (!existsSync(path)) {
      writeFileAtomic(path, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    }
    return new AuditSigner(createPrivateKey(readFileSync(path)));
  }

  sign(hub: string, seq: number, hash: string, at: number): Checkpoint {
    const body = { hub, keyId: this.keyId, seq, hash, ts: new Date(at).toISOString() };
    return { v: CHECKPOINT_VERSION, ...body, publicKey: this.publicKeyBase64, signature: sign(null, payload(body), this.key).toString('base64') };
  }
}

/** Whether a checkpoint's signature holds under the key it carries, and that key's id matches. */
export function checkpointSignatureValid(c: Checkpoint): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(c.publicKey, 'base64'), format: 'der', type: 'spki' });
    return keyIdOf(key) === c.keyId && verify(null, payload(c), key, Buffer.from(c.signature, 'base64'));
  } catch {
    return false;
  }
}

/** Parses one checkpoint (JSON) or several (JSON Lines); throws Error naming the bad line. */
export function parseCheckpoints(text: string): Checkpoint[] {
  const lines = text.trim().startsWith('[') ? (JSON.parse(text) as unknown[]).map((v) => JSON.stringify(v)) : text.split('\n').filter((l) => l.trim());
  return lines.map((line, i) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new Error(`checkpoint ${i + 1} is not JSON`);
    }
    const parsed = CheckpointSchema.safeParse(value);
    if (!parsed.success) throw new Error(`checkpoint ${i + 1} is not a Drawbridge audit checkpoint: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  });
}

export interface HeadRecord {
  seq: number;
  hash: string;
  at: string;
}

/** The hub's own note of the last head it wrote, outside the database (DATA_DIR/audit-head.json). */
export class HeadFile {
  private readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, 'audit-head.json');
  }

  read(): HeadRecord | undefined {
    if (!existsSync(this.path)) return undefined;
    try {
      const value = JSON.parse(readFileSync(this.path, 'utf8')) as HeadRecord;
      return typeof value.seq === 'number' && typeof value.hash === 'string' ? value : undefined;
    } catch {
      return undefined;
    }
  }

  write(seq: number, hash: string, at: number): void {
    writeFileAtomic(this.path, JSON.stringify({ seq, hash, at: new Date(at).toISOString() }) + '\n', 0o600);
  }
}
