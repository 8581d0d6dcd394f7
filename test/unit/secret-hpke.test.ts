/**
 * HPKE delivery to an edge: RFC 9180's own test vector, round trips with an independent
 * implementation (@hpke/core, on WebCrypto) in both directions, and a ciphertext that
 * opens only for its edge, name and version.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import type { DrawbridgeError } from '../../src/errors.js';
import { AES_128_GCM, deliveryContext, keySchedule, openAtEdge, openBase, recipientKey, sealBase, sealForEdge } from '../../src/protocol/secret-hpke.js';

function edgeKeys(): { privateKey: KeyObject; spki: string } {
  const { privateKey } = generateKeyPairSync('x25519');
  return { privateKey, spki: createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).toString('base64') };
}
const failed = (e: DrawbridgeError): boolean => e.code === 'DECRYPT_FAILED';
const hex = (s: string): Buffer => Buffer.from(s, 'hex');
/** A raw X25519 private key as a KeyObject (PKCS#8 around the 32 bytes). */
const x25519Private = (raw: Buffer): KeyObject => createPrivateKey({ key: Buffer.concat([hex('302e020100300506032b656e04220420'), raw]), format: 'der', type: 'pkcs8' });
const arrayBuffer = (b: Buffer): ArrayBuffer => new Uint8Array(b).buffer;

describe('HPKE delivery (DHKEM X25519, HKDF-SHA256, AES-256-GCM)', () => {
  const edge = edgeKeys();
  const id = 'a'.repeat(32);

  it('reproduces RFC 9180 test vector A.1.1 (base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM)', () => {
    const info = hex('4f6465206f6e2061204772656369616e2055726e');
    const skEm = x25519Private(hex('52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736'));
    const skRm = x25519Private(hex('4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8'));
    const pkRm = createPublicKey(skRm);
    assert.equal(Buffer.from(pkRm.export({ format: 'jwk' }).x as string, 'base64url').toString('hex'), '3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d');
    const schedule = keySchedule(hex('fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc'), info, AES_128_GCM);
    assert.equal(schedule.key.toString('hex'), '4531685d41d65f03dc48f6b8302c05b0');
    assert.equal(schedule.baseNonce.toString('hex'), '56d890e5accaaf011cff4b7d');
    const aad = hex('436f756e742d30');
    const plaintext = hex('4265617574792069732074727574682c20747275746820626561757479');
    const sealed = sealBase(pkRm, info, aad, plaintext, { aead: AES_128_GCM, ephemeral: skEm });
    assert.equal(sealed.enc.toString('hex'), '37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431');
    assert.equal(sealed.ciphertext.toString('hex'), 'f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a');
    assert.deepEqual(openBase(recipientKey(skRm), info, aad, sealed.enc, sealed.ciphertext, AES_128_GCM), plaintext);
  });

  it('interoperates with @hpke/core in both directions', async () => {
    const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
    const context = deliveryContext(id, 'plant-3/db', 7);
    const value = Buffer.from('interop \u00e9\u0000\xff value');
    const ours = sealForEdge(edge.spki, id, 'plant-3/db', 7, value);
    const theirKey = await suite.kem.importKey('jwk', edge.privateKey.export({ format: 'jwk' }) as Parameters<typeof suite.kem.importKey>[1], false);
    const opened = await suite.open(
      { recipientKey: theirKey, enc: arrayBuffer(Buffer.from(ours.enc, 'base64')), info: arrayBuffer(context) },
      arrayBuffer(Buffer.from(ours.ciphertext, 'base64')),
      arrayBuffer(context),
    );
    assert.deepEqual(Buffer.from(opened), value);
    const raw = Buffer.from(createPublicKey(edge.privateKey).export({ format: 'jwk' }).x as string, 'base64url');
    const theirs = await suite.seal({ recipientPublicKey: await suite.kem.deserializePublicKey(arrayBuffer(raw)), info: arrayBuffer(context) }, arrayBuffer(value), arrayBuffer(context));
    const sealed = { enc: Buffer.from(theirs.enc).toString('base64'), ciphertext: Buffer.from(theirs.ct).toString('base64') };
    assert.deepEqual(openAtEdge(recipientKey(edge.privateKey), id, 'plant-3/db', 7, sealed), value);
  });

  it('round-trips, with a fresh encapsulation every time', () => {
    const key = recipientKey(edge.privateKey);
    const value = Buffer.from('the value \u00e9\u0000\xff');
    const a = sealForEdge(edge.spki, id, 'plant-3/db', 4, value);
    const b = sealForEdge(edge.spki, id, 'plant-3/db', 4, value);
    assert.notEqual(a.enc, b.enc);
    assert.notEqual(a.ciphertext, b.ciphertext);
    assert.equal(Buffer.from(a.enc, 'base64').length, 32);
    assert.ok(!Buffer.from(a.ciphertext, 'base64').includes(value));
    assert.deepEqual(openAtEdge(key, id, 'plant-3/db', 4, a), value);
    assert.deepEqual(openAtEdge(key, id, 'plant-3/db', 4, sealForEdge(edge.spki, id, 'plant-3/db', 4, Buffer.alloc(0))), Buffer.alloc(0));
  });

  it('does not open for another edge, name or version, with another key, altered, or malformed', () => {
    const key = recipientKey(edge.privateKey);
    const sealed = sealForEdge(edge.spki, id, 'n', 1, Buffer.from('v'));
    assert.throws(() => openAtEdge(key, 'b'.repeat(32), 'n', 1, sealed), failed);
    assert.throws(() => openAtEdge(key, id, 'm', 1, sealed), failed);
    assert.throws(() => openAtEdge(key, id, 'n', 2, sealed), failed);
    assert.throws(() => openAtEdge(recipientKey(edgeKeys().privateKey), id, 'n', 1, sealed), failed);
    const ct = Buffer.from(sealed.ciphertext, 'base64');
    ct[0] = (ct[0] as number) ^ 0x80;
    assert.throws(() => openAtEdge(key, id, 'n', 1, { ...sealed, ciphertext: ct.toString('base64') }), failed);
    const enc = Buffer.from(sealed.enc, 'base64');
    enc[5] = (enc[5] as number) ^ 1;
    assert.throws(() => openAtEdge(key, id, 'n', 1, { ...sealed, enc: enc.toString('base64') }), failed);
    assert.throws(() => openAtEdge(key, id, 'n', 1, { ...sealed, enc: enc.subarray(0, 31).toString('base64') }), failed);
    assert.throws(() => openAtEdge(key, id, 'n', 1, { ...sealed, ciphertext: '' }), failed);
    // A low-order public key (all zeros) makes the exchange's output zero: refused.
    assert.throws(() => openAtEdge(key, id, 'n', 1, { ...sealed, enc: Buffer.alloc(32).toString('base64') }), failed);
  });

  it('refuses a key that is not X25519', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    assert.throws(() => recipientKey(privateKey), (e: DrawbridgeError) => e.code === 'CONFIG_INVALID');
    assert.throws(() => sealForEdge(publicKey.export({ type: 'spki', format: 'der' }).toString('base64'), id, 'n', 1, Buffer.from('v')), (e: DrawbridgeError) => e.code === 'VALIDATION_FAILED');
  });
});
