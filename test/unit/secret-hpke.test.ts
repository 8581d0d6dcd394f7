/** HPKE delivery to an edge: round trip, and a ciphertext that opens only for its edge, name and version. */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import type { DrawbridgeError } from '../../src/errors.js';
import { openAtEdge, recipientKey, sealForEdge } from '../../src/protocol/secret-hpke.js';

function edgeKeys(): { privateKey: ReturnType<typeof generateKeyPairSync>['privateKey']; spki: string } {
  const { privateKey } = generateKeyPairSync('x25519');
  return { privateKey, spki: createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).toString('base64') };
}
const failed = (e: DrawbridgeError) => e.code === 'DECRYPT_FAILED';

describe('HPKE delivery (DHKEM X25519, HKDF-SHA256, AES-256-GCM)', () => {
  const edge = edgeKeys();
  const id = 'a'.repeat(32);

  it('round-trips, with a fresh encapsulation every time', async () => {
    const key = await recipientKey(edge.privateKey);
    const value = Buffer.from('the value \u00e9\u0000\xff');
    const a = await sealForEdge(edge.spki, id, 'plant-3/db', 4, value);
    const b = await sealForEdge(edge.spki, id, 'plant-3/db', 4, value);
    assert.notEqual(a.enc, b.enc);
    assert.notEqual(a.ciphertext, b.ciphertext);
    assert.equal(Buffer.from(a.enc, 'base64').length, 32);
    assert.ok(!Buffer.from(a.ciphertext, 'base64').includes(value));
    assert.deepEqual(await openAtEdge(key, id, 'plant-3/db', 4, a), value);
    assert.deepEqual(await openAtEdge(key, id, 'plant-3/db', 4, await sealForEdge(edge.spki, id, 'plant-3/db', 4, Buffer.alloc(0))), Buffer.alloc(0));
  });

  it('does not open for another edge, name or version, with another key, or altered', async () => {
    const key = await recipientKey(edge.privateKey);
    const sealed = await sealForEdge(edge.spki, id, 'n', 1, Buffer.from('v'));
    await assert.rejects(openAtEdge(key, 'b'.repeat(32), 'n', 1, sealed), failed);
    await assert.rejects(openAtEdge(key, id, 'm', 1, sealed), failed);
    await assert.rejects(openAtEdge(key, id, 'n', 2, sealed), failed);
    await assert.rejects(openAtEdge(await recipientKey(edgeKeys().privateKey), id, 'n', 1, sealed), failed);
    const ct = Buffer.from(sealed.ciphertext, 'base64');
    ct[0] = (ct[0] as number) ^ 0x80;
    await assert.rejects(openAtEdge(key, id, 'n', 1, { ...sealed, ciphertext: ct.toString('base64') }), failed);
    const enc = Buffer.from(sealed.enc, 'base64');
    enc[5] = (enc[5] as number) ^ 1;
    await assert.rejects(openAtEdge(key, id, 'n', 1, { ...sealed, enc: enc.toString('base64') }), failed);
  });
});
