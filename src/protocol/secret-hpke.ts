/**
 * End-to-end encryption of secret values to an edge: HPKE (RFC 9180) in base mode,
 * single-shot, with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM. The edge's
 * X25519 key is made on the edge and its private half never leaves it; the hub seals with
 * the public half it stored at enrollment.
 *
 * Built on Node's own crypto (OpenSSL's X25519, HMAC-SHA256 and AES-256-GCM), following the
 * RFC's KEM, key schedule and single-shot API step by step. It replaced @hpke/core, which runs
 * on WebCrypto: there one seal cost about 1 ms of CPU in object and promise overhead against
 * about 0.2 ms here, and a fan-out to a thousand edges seals a thousand times. The wire format
 * is the RFC's, so either end interoperates with any HPKE implementation of this suite;
 * test/unit/secret-hpke.test.ts checks RFC 9180's test vector A.1 (same KEM and KDF,
 * AES-128-GCM) and round trips with @hpke/core in both directions.
 *
 * The edge id, the secret's name and its version are the HPKE `info` (bound into the key
 * schedule) and the AEAD's associated data, so a ciphertext replayed for another edge, name
 * or version does not open.
 */
import { createCipheriv, createDecipheriv, createHmac, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { DrawbridgeError } from '../errors.js';

/** An AEAD of the suite: AES-256-GCM is the one used; AES-128-GCM only for the RFC's test vector. */
export interface HpkeAead {
  id: number;
  cipher: 'aes-128-gcm' | 'aes-256-gcm';
  keyBytes: number;
}
export const AES_256_GCM: HpkeAead = { id: 0x0002, cipher: 'aes-256-gcm', keyBytes: 32 };
export const AES_128_GCM: HpkeAead = { id: 0x0001, cipher: 'aes-128-gcm', keyBytes: 16 };

const KEM_X25519_HKDF_SHA256 = 0x0020;
const KDF_HKDF_SHA256 = 0x0001;
const MODE_BASE = 0x00;
/** Nsecret, Nenc, Npk of DHKEM(X25519, HKDF-SHA256); Nn and Nt of AES-GCM */
const SECRET_BYTES = 32;
const ENC_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HPKE_V1 = Buffer.from('HPKE-v1');
const EMPTY = Buffer.alloc(0);

const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const KEM_SUITE = Buffer.concat([Buffer.from('KEM'), u16(KEM_X25519_HKDF_SHA256)]);
const hpkeSuite = (aead: HpkeAead): Buffer => Buffer.concat([Buffer.from('HPKE'), u16(KEM_X25519_HKDF_SHA256), u16(KDF_HKDF_SHA256), u16(aead.id)]);

// RFC 5869 HKDF with SHA-256; an empty salt is HashLen zeros (RFC 5869 §2.2).
function extract(salt: Buffer, ikm: Buffer): Buffer {
  return createHmac('sha256', salt.length > 0 ? salt : Buffer.alloc(32)).update(ikm).digest();
}

function expand(prk: Buffer, info: Buffer, length: number): Buffer {
  const blocks: Buffer[] = [];
  let previous = EMPTY;
  for (let i = 1, have = 0; have < length; i++) {
    previous = createHmac('sha256', prk).update(previous).update(info).update(Buffer.from([i])).digest();
    blocks.push(previous);
    have += previous.length;
  }
  return Buffer.concat(blocks).subarray(0, length);
}

// RFC 9180 §4: every derivation is labelled with the protocol version and the suite.
function labeledExtract(suite: Buffer, salt: Buffer, label: string, ikm: Buffer): Buffer {
  return extract(salt, Buffer.concat([HPKE_V1, suite, Buffer.from(label), ikm]));
}

function labeledExpand(suite: Buffer, prk: Buffer, label: string, info: Buffer, length: number): Buffer {
  return expand(prk, Buffer.concat([u16(length), HPKE_V1, suite, Buffer.from(label), info]), length);
}

function rawX25519(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'X25519' || typeof jwk.x !== 'string') throw new DrawbridgeError('VALIDATION_FAILED', 'not an X25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

function x25519PublicKey(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw.toString('base64url') }, format: 'jwk' });
}

/** RFC 9180 §4.1 DHKEM: the shared secret from a Diffie-Hellman output and enc || pkR. */
function kemSharedSecret(privateKey: KeyObject, publicKey: KeyObject, enc: Buffer, recipientPublic: Buffer): Buffer {
  const dh = diffieHellman({ privateKey, publicKey });
  // §7.1.4: an all-zero X25519 output (a low-order public key) must be refused.
  if (dh.every((b) => b === 0)) throw new DrawbridgeError('DECRYPT_FAILED', 'the X25519 exchange gave the all-zero value');
  const eaePrk = labeledExtract(KEM_SUITE, EMPTY, 'eae_prk', dh);
  return labeledExpand(KEM_SUITE, eaePrk, 'shared_secret', Buffer.concat([enc, recipientPublic]), SECRET_BYTES);
}

/** RFC 9180 §5.1 key schedule, base mode (no PSK): the AEAD key and base nonce. */
export function keySchedule(sharedSecret: Buffer, info: Buffer, aead: HpkeAead = AES_256_GCM): { key: Buffer; baseNonce: Buffer } {
  const suite = hpkeSuite(aead);
  const pskIdHash = labeledExtract(suite, EMPTY, 'psk_id_hash', EMPTY);
  const infoHash = labeledExtract(suite, EMPTY, 'info_hash', info);
  const context = Buffer.concat([Buffer.from([MODE_BASE]), pskIdHash, infoHash]);
  const secret = labeledExtract(suite, sharedSecret, 'secret', EMPTY);
  return { key: labeledExpand(suite, secret, 'key', context, aead.keyBytes), baseNonce: labeledExpand(suite, secret, 'base_nonce', context, NONCE_BYTES) };
}

/**
 * Single-shot SealBase (RFC 9180 §6.1): returns enc and the ciphertext (with its tag). The
 * first and only message uses the base nonce (sequence number 0). `ephemeral` is for the
 * RFC's test vector only; a fresh key pair is made for every seal otherwise.
 */
export function sealBase(recipient: KeyObject, info: Buffer, aad: Buffer, plaintext: Buffer, options: { aead?: HpkeAead; ephemeral?: KeyObject } = {}): { enc: Buffer; ciphertext: Buffer } {
  const aead = options.aead ?? AES_256_GCM;
  const ephemeral = options.ephemeral ?? generateKeyPairSync('x25519').privateKey;
  const enc = rawX25519(createPublicKey(ephemeral));
  const shared = kemSharedSecret(ephemeral, recipient, enc, rawX25519(recipient));
  const { key, baseNonce } = keySchedule(shared, info, aead);
  const cipher = createCipheriv(aead.cipher, key, baseNonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  key.fill(0);
  shared.fill(0);
  return { enc, ciphertext };
}

/** Single-shot OpenBase (RFC 9180 §6.1); throws DECRYPT_FAILED for anything that does not authenticate. */
export function openBase(recipient: RecipientKey, info: Buffer, aad: Buffer, enc: Buffer, ciphertext: Buffer, aead: HpkeAead = AES_256_GCM): Buffer {
  if (enc.length !== ENC_BYTES || ciphertext.length < TAG_BYTES) throw new DrawbridgeError('DECRYPT_FAILED', 'malformed HPKE encapsulation or ciphertext');
  const shared = kemSharedSecret(recipient.privateKey, x25519PublicKey(enc), enc, recipient.publicRaw);
  const { key, baseNonce } = keySchedule(shared, info, aead);
  try {
    const decipher = createDecipheriv(aead.cipher, key, baseNonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES));
    return Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - TAG_BYTES)), decipher.final()]);
  } finally {
    key.fill(0);
    shared.fill(0);
  }
}

export function deliveryContext(edgeId: string, name: string, version: number): Buffer {
  return Buffer.from(`drawbridge-secret-delivery-v1\0${edgeId}\0${name}\0${version}`);
}

/** Edge public keys, parsed once per key (an SPKI DER base64 string). */
const publicKeys = new Map<string, KeyObject>();
const MAX_CACHED_KEYS = 100_000;

function publicKeyFor(spkiBase64: string): KeyObject {
  let key = publicKeys.get(spkiBase64);
  if (!key) {
    key = createPublicKey({ key: Buffer.from(spkiBase64, 'base64'), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'x25519') throw new DrawbridgeError('VALIDATION_FAILED', 'the edge encryption key is not an X25519 key');
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
export function sealForEdge(edgeEncryptionKey: string, edgeId: string, name: string, version: number, value: Buffer): SealedForEdge {
  const context = deliveryContext(edgeId, name, version);
  const sealed = sealBase(publicKeyFor(edgeEncryptionKey), context, context, value);
  return { enc: sealed.enc.toString('base64'), ciphertext: sealed.ciphertext.toString('base64') };
}

/** The edge's private key, with its public half as the KEM needs it. */
export interface RecipientKey {
  readonly privateKey: KeyObject;
  readonly publicRaw: Buffer;
}

export function recipientKey(privateKey: KeyObject): RecipientKey {
  if (privateKey.asymmetricKeyType !== 'x25519') throw new DrawbridgeError('CONFIG_INVALID', 'the edge encryption key is not an X25519 key');
  return { privateKey, publicRaw: rawX25519(createPublicKey(privateKey)) };
}

/** Opens a delivery at the edge; DECRYPT_FAILED if it was sealed for another edge, name or version, or altered. */
export function openAtEdge(key: RecipientKey, edgeId: string, name: string, version: number, sealed: SealedForEdge): Buffer {
  const context = deliveryContext(edgeId, name, version);
  try {
    return openBase(key, context, context, Buffer.from(sealed.enc, 'base64'), Buffer.from(sealed.ciphertext, 'base64'));
  } catch {
    throw new DrawbridgeError('DECRYPT_FAILED', `the delivery of "${name}" version ${version} did not open with this edge's key (sealed for another edge, name or version, or altered)`);
  }
}
