/**
 * Envelope encryption at rest: every secret version gets a fresh 256-bit data key; the
 * value is sealed with it (AES-256-GCM, random nonce, the name and version bound as
 * associated data, so a ciphertext moved to another name or version does not open), and
 * the data key is wrapped by the key-encryption key. The database holds only the wrapped
 * key and the ciphertext.
 */
import { randomBytes } from 'node:crypto';
import type { SealedValue } from '../store/vault-store.js';
import { aesGcmOpen, aesGcmSeal, type KeyEncryptionKey } from './key-encryption-key.js';

/** What binds a ciphertext (and its wrapped data key) to one secret version. */
export function versionContext(name: string, version: number): Buffer {
  return Buffer.from(`drawbridge-vault-value-v1\0${name}\0${version}`);
}

export async function sealVersion(kek: KeyEncryptionKey, name: string, version: number, value: Buffer): Promise<SealedValue> {
  const dataKey = randomBytes(32);
  try {
    const context = versionContext(name, version);
    const wrapped = await kek.wrap(dataKey, context);
    return { kekId: wrapped.kekId, wrappedKey: wrapped.wrapped, ciphertext: aesGcmSeal(dataKey, value, context) };
  } finally {
    dataKey.fill(0);
  }
}

export async function openVersion(kek: KeyEncryptionKey, name: string, version: number, sealed: SealedValue): Promise<Buffer> {
  const context = versionContext(name, version);
  const dataKey = await kek.unwrap({ kekId: sealed.kekId, wrapped: sealed.wrappedKey }, context);
  try {
    return aesGcmOpen(dataKey, sealed.ciphertext, context, `secret "${name}" version ${version}`);
  } finally {
    dataKey.fill(0);
  }
}

/** Re-wraps a version's data key with the KEK's current key (rekey); the ciphertext is untouched. */
export async function rewrapVersion(kek: KeyEncryptionKey, name: string, version: number, sealed: SealedValue): Promise<SealedValue> {
  const context = versionContext(name, version);
  const dataKey = await kek.unwrap({ kekId: sealed.kekId, wrapped: sealed.wrappedKey }, context);
  try {
    const wrapped = await kek.wrap(dataKey, context);
    return { kekId: wrapped.kekId, wrappedKey: wrapped.wrapped, ciphertext: sealed.ciphertext };
  } finally {
    dataKey.fill(0);
  }
}
