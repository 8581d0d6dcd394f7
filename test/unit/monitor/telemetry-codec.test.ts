/** The telemetry wire helpers: state hashes agree however rows are ordered, payloads round-trip, bombs are refused. */
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import { describe, it } from 'node:test';
import type { DrawbridgeError } from '../../../src/errors.js';
import { decodePayload, encodePayload, stateHash } from '../../../src/protocol/telemetry-codec.js';

describe('telemetry codec', () => {
  it('hashes a state independently of row and field order, and differently for any change', () => {
    const a = { k: 'tcp/0.0.0.0:22', proto: 'tcp', addr: '0.0.0.0', port: 22, proc: 'sshd' };
    const b = { k: 'udp/0.0.0.0:123', proto: 'udp', addr: '0.0.0.0', port: 123, proc: null };
    const reordered = { proc: 'sshd', port: 22, addr: '0.0.0.0', proto: 'tcp', k: 'tcp/0.0.0.0:22' };
    assert.equal(stateHash([a, b]), stateHash([b, reordered]));
    assert.match(stateHash([a]), /^[A-Za-z0-9_-]{16}$/);
    assert.notEqual(stateHash([a, b]), stateHash([a, { ...b, proc: 'chronyd' }]));
    assert.notEqual(stateHash([a]), stateHash([]));
  });

  it('sends small content as JSON and repetitive content deflated, and both decode to the same content', async () => {
    const small = { events: [{ kind: 'ssh.failure', t: 1, n: 1 }] };
    const smallPayload = await encodePayload(small);
    assert.ok('json' in smallPayload);
    assert.deepEqual(await decodePayload(smallPayload), small);
    const rows = Array.from({ length: 200 }, (_, i) => ({ k: `tcp/0.0.0.0:${i}`, proto: 'tcp', addr: '0.0.0.0', port: i, proc: 'node' }));
    const payload = await encodePayload({ rows });
    assert.ok('deflate' in payload);
    assert.ok(payload.deflate.length < JSON.stringify({ rows }).length / 4, 'repetitive rows shrink several times, base64 included');
    assert.deepEqual(await decodePayload(payload), { rows });
  });

  it('refuses a payload that inflates beyond the limit, and junk that is not DEFLATE or not JSON', async () => {
    const bomb = deflateRawSync(Buffer.alloc(8 * 1024 * 1024, 0x20)).toString('base64');
    assert.ok(bomb.length < 20_000, 'a small message');
    await assert.rejects(decodePayload({ deflate: bomb }), (e: DrawbridgeError) => e.code === 'PAYLOAD_TOO_LARGE');
    await assert.rejects(decodePayload({ deflate: Buffer.from('not deflate at all').toString('base64') }), (e: DrawbridgeError) => e.code === 'VALIDATION_FAILED');
    await assert.rejects(decodePayload({ deflate: deflateRawSync(Buffer.from('{not json')).toString('base64') }), (e: DrawbridgeError) => e.code === 'VALIDATION_FAILED');
  });
});
