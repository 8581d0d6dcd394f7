/** The error registry: close reasons fit the WebSocket limit and parse back to their code. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closeReason, DrawbridgeError, ERRORS, errorCodeForClose, isErrorCode, parseCloseReason } from '../../src/errors.js';

describe('error registry', () => {
  it('gives every code an HTTP status, a close code and a message', () => {
    for (const [code, spec] of Object.entries(ERRORS)) {
      assert.match(code, /^[A-Z_]+$/);
      assert.ok(spec.status >= 400 && spec.status < 600, code);
      assert.ok((spec.closeCode >= 1000 && spec.closeCode < 1016) || (spec.closeCode >= 4000 && spec.closeCode < 5000), code);
      assert.ok(spec.message.length > 0, code);
    }
  });

  it('builds errors with the spec and an optional message, cause and details', () => {
    const cause = new Error('root');
    const error = new DrawbridgeError('DEVICE_OFFLINE', undefined, { cause, details: { device: 'x' } });
    assert.equal(error.message, 'the device is offline');
    assert.equal(error.status, 503);
    assert.equal(error.closeCode, 4503);
    assert.equal(error.cause, cause);
    assert.deepEqual(error.toJSON(), { code: 'DEVICE_OFFLINE', message: 'the device is offline', details: { device: 'x' } });
    assert.deepEqual(new DrawbridgeError('TIMEOUT', 'slow').toJSON(), { code: 'TIMEOUT', message: 'slow' });
  });

  it('recognises codes', () => {
    assert.equal(isErrorCode('TARGET_REFUSED'), true);
    assert.equal(isErrorCode('toString'), false);
    assert.equal(isErrorCode('NOPE'), false);
    assert.equal(isErrorCode(42), false);
  });
});

describe('close reasons', () => {
  it('round-trip code and message', () => {
    const reason = closeReason('TARGET_REFUSED', 'the target refused');
    assert.deepEqual(parseCloseReason(reason), { code: 'TARGET_REFUSED', message: 'the target refused' });
    assert.deepEqual(parseCloseReason('done'), { message: 'done' });
    assert.deepEqual(parseCloseReason('NOT_A_CODE: x'), { message: 'NOT_A_CODE: x' });
  });

  it('fit in 123 bytes, keeping the code, even with multi-byte text', () => {
    for (const text of ['x'.repeat(500), 'é'.repeat(200), '日本'.repeat(100)]) {
      const reason = closeReason('DEVICE_DISABLED', text);
      assert.ok(Buffer.byteLength(reason) <= 123, `${Buffer.byteLength(reason)} bytes`);
      assert.equal(parseCloseReason(reason).code, 'DEVICE_DISABLED');
      assert.ok(!reason.includes('\uFFFD'), 'no broken characters');
    }
  });

  it('map close codes back to error codes', () => {
    assert.equal(errorCodeForClose(4502), 'TARGET_REFUSED');
    assert.equal(errorCodeForClose(4401, 'DEVICE_KEY_INVALID'), 'DEVICE_KEY_INVALID');
    assert.equal(errorCodeForClose(1000), undefined);
    assert.equal(errorCodeForClose(4999), undefined);
  });
});
