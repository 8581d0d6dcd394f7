/**
 * End-to-end encryption of secret values to an edge: HPKE (RFC 9180) base mode with
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM, from @hpke/core on Node's
 * WebCrypto. The edge's X25519 key is made on the edge and its private half never leaves
 * it; the hub seals with the public half it stored at enrollment.
 *
 * The edge id, the secret's name and its version are the HPKE `info` (bound into the key
 * schedule) and the AEAD's associated data, so a ciphertext replayed for another edge,
 * name or version does not open.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { DrawbridgeError } from '../errors.js';

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
/** A WebCrypto key as the HPKE library holds it. */
export type HpkeKey = Awaited<ReturnType<typeof suite.kem.importKey>>;

export function deliveryContext(edgeId: string, name: string, version: number): Uint8Array {
  return new Uint8Array(Buffer.from(`drawbridge-secret-delivery-v1\0${edgeId}\0${name}\0${version}`));
}

function rawPublicKey(key: KeyObject): Uint8Array {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'X25519' || typeof jwk.x !== 'string') throw new DrawbridgeError('VALIDATION_FAILED', 'not an X25519 public key');
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'));
}

/** Public keys as HPKE wants them, parsed once per edge key (an SPKI DER base64 string). */
const publicKeys = new Map<string, Promise<HpkeKey>>();
const MAX_CACHED_KEYS = 100_000;

function publicKeyFor(spkiBase64: string): Promise<HpkeKey> {
  let key = publicKeys.get(spkiBase64);
  if (!key) {
    const raw = rawPublicKey(createPublicKey({ key: Buffer.from(spkiBase64, 'base64'), format: 'der', type: 'spki' }));
    key = suite.kem.deserializePublicKey(raw.buffer as ArrayBuffer);
    if (publicKeys.size >= MAX_CACHED_KEYS) publicKeys.clear();
    publicKeys.set(spkiBase64, key);
  }
  return key;
}

export interface SealedForEdge {
  /** Encapsulated key, base64 */
  enc: string;
  ciphertext: string;
}

/** Seals a value to an edge's X25519 public key (SPKI DER, base64). */
export async function sealForEdge(edgeEncryptionKey: string, edgeId: string, name: string, version: number, value: Buffer): Promise<SealedForEdge> {
  const context = deliveryContext(edgeId, name, version);
  const sealed = await suite.seal({ recipientPublicKey: await publicKeyFor(edgeEncryptionKey), info: context.buffer as ArrayBuffer }, new Uint8Array(value).buffer as ArrayBuffer, context.buffer as ArrayBuffer);
  return { enc: Buffer.from(sealed.enc).toString('base64'), ciphertext: Buffer.from(sealed.ct).toString('base64') };
}

/** The edge's private key as HPKE wants it (import once, reuse). */
export function recipientKey(privateKey: KeyObject): Promise<HpkeKey> {
  if (privateKey.asymmetricKeyType !== 'x25519') throw new DrawbridgeError('CONFIG_INVALID', 'the edge encryption key is not an X25519 key');
  return suite.kem.importKey('jwk', privateKey.export({ format: 'jwk' }) as Parameters<typeof suite.kem.importKey>[1], false);
}

/** Opens a delivery at the edge; DECRYPT_FAILED if it was sealed for another edge, name or version, or altered. */
export async function openAtEdge(key: HpkeKey, edgeId: string, name: string, version: number, sealed: SealedForEdge): Promise<Buffer> {
  const context = deliveryContext(edgeId, name, version);
  try {
    const plain = await suite.open(
      { recipientKey: key, enc: new Uint8Array(Buffer.from(sealed.enc, 'base64')).buffer as ArrayBuffer, info: context.buffer as ArrayBuffer },
      new Uint8Array(Buffer.from(sealed.ciphertext, 'base64')).buffer as ArrayBuffer,
      context.buffer as ArrayBuffer,
    );
    return Buffer.from(plain);
  } catch {
    throw new DrawbridgeError('DECRYPT_FAILED', `the delivery of "${name}" version ${version} did not open with this edge's key (sealed for another edge, name or version, or altered)`);
  }
}
