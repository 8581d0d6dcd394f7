/**
 * Edge and device signatures as the hub checks them: Ed25519 over SPKI DER keys, with the raw
 * key imported directly (the fast path) and everything else refused without a throw.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { verifySignature } from '../../src/hub/edge-registry.js';

const payload = Buffer.from('drawbridge edge auth test payload');

describe('verifySignature', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const signature = sign(null, payload, privateKey).toString('base64');

  it('accepts a signature made by the key, and only for the payload signed', () => {
    assert.equal(verifySignature(der.toString('base64'), payload, signature), true);
    assert.equal(verifySignature(der.toString('base64'), Buffer.from('another payload'), signature), false);
  });

  it('refuses a signature by another key, a damaged signature and a damaged key', () => {
    const other = generateKeyPairSync('ed25519');
    assert.equal(verifySignature(other.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'), payload, signature), false);
    const bad = Buffer.from(signature, 'base64');
    bad[0] = (bad[0] as number) ^ 1;
    assert.equal(verifySignature(der.toString('base64'), payload, bad.toString('base64')), false);
    const flipped = Buffer.from(der);
    flipped[20] = (flipped[20] as number) ^ 1;
    assert.equal(verifySignature(flipped.toString('base64'), payload, signature), false);
  });

  it('refuses keys that are not Ed25519 or not keys at all, without throwing', () => {
    const x25519 = generateKeyPairSync('x25519').publicKey.export({ type: 'spki', format: 'der' });
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    for (const key of [x25519.toString('base64'), ec.toString('base64'), der.subarray(0, 40).toString('base64'), Buffer.concat([der, Buffer.alloc(1)]).toString('base64'), '', 'not base64 at all!']) {
      assert.equal(verifySignature(key, payload, signature), false, key.slice(0, 20));
    }
    assert.equal(verifySignature(der.toString('base64'), payload, ''), false);
  });
});
