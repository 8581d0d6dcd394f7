/** Control-message decoding: every malformed input is a PROTOCOL_ERROR with a clear message. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DrawbridgeError } from '../../src/errors.js';
import { authPayload, decodeAgentMessage, decodeHubMessage } from '../../src/protocol/messages.js';

const STREAM_ID = 'a'.repeat(32);

function protocolError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof DrawbridgeError);
    assert.equal(error.code, 'PROTOCOL_ERROR');
    assert.equal(error.closeCode, 1008);
    assert.match(error.message, message);
    return true;
  });
}

describe('decodeAgentMessage', () => {
  it('accepts a well-formed auth and stream.reject', () => {
    const auth = { type: 'auth', device: 'plc-7', signature: 'c2ln', agentVersion: '1.0.0' };
    assert.deepEqual(decodeAgentMessage(JSON.stringify(auth), false), auth);
    const reject = { type: 'stream.reject', streamId: STREAM_ID, code: 'TARGET_REFUSED', message: 'no' };
    assert.deepEqual(decodeAgentMessage(Buffer.from(JSON.stringify(reject)), false), reject);
  });

  it('refuses binary frames', () => {
    protocolError(() => decodeAgentMessage(Buffer.from('{"type":"auth"}'), true), /must be text frames/);
  });

  it('refuses text that is not JSON', () => {
    protocolError(() => decodeAgentMessage('{"type": ', false), /not valid JSON/);
  });

  it('refuses unknown or missing types, including JSON that is not an object', () => {
    protocolError(() => decodeAgentMessage('{"type":"bogus"}', false), /unknown control message type "bogus"/);
    protocolError(() => decodeAgentMessage('{}', false), /unknown control message type/);
    protocolError(() => decodeAgentMessage('null', false), /unknown control message type/);
    protocolError(() => decodeAgentMessage('[1,2]', false), /unknown control message type/);
    protocolError(() => decodeAgentMessage('"auth"', false), /unknown control message type/);
    // A hub message type is not an agent message type.
    protocolError(() => decodeAgentMessage('{"type":"challenge","nonce":"x","protocol":1}', false), /unknown control message type "challenge"/);
  });

  it('refuses known types with extra, missing or malformed fields, naming the field', () => {
    protocolError(() => decodeAgentMessage(JSON.stringify({ type: 'auth', device: 'd', signature: 's', agentVersion: 'v', extra: 1 }), false), /invalid "auth" message/);
    protocolError(() => decodeAgentMessage(JSON.stringify({ type: 'auth', device: 'd', agentVersion: 'v' }), false), /invalid "auth" message: signature/);
    protocolError(() => decodeAgentMessage(JSON.stringify({ type: 'auth', device: 'd', signature: 's'.repeat(129), agentVersion: 'v' }), false), /signature/);
    protocolError(
      () => decodeAgentMessage(JSON.stringify({ type: 'stream.reject', streamId: 'not-hex', code: 'TARGET_REFUSED', message: '' }), false),
      /invalid "stream.reject" message: streamId/,
    );
    protocolError(
      () => decodeAgentMessage(JSON.stringify({ type: 'stream.reject', streamId: STREAM_ID, code: 'lower case', message: '' }), false),
      /code/,
    );
  });

  it('keeps the echoed type short in the error', () => {
    try {
      decodeAgentMessage(JSON.stringify({ type: 'x'.repeat(1000) }), false);
      assert.fail('accepted');
    } catch (error) {
      assert.ok((error as Error).message.length < 100, (error as Error).message);
    }
  });
});

describe('decodeHubMessage', () => {
  it('accepts every hub message type', () => {
    const messages = [
      { type: 'challenge', nonce: 'n'.repeat(43), protocol: 1 },
      { type: 'ready', device: 'plc-7', maxStreams: 64 },
      { type: 'stream.open', streamId: STREAM_ID, rendezvousUrl: 'wss://hub.example:8443/v1/streams/x/agent', token: 't'.repeat(43) },
    ];
    for (const m of messages) assert.deepEqual(decodeHubMessage(JSON.stringify(m), false), m);
  });

  it('refuses a short nonce, a bad URL and an agent message type', () => {
    protocolError(() => decodeHubMessage(JSON.stringify({ type: 'challenge', nonce: 'short', protocol: 1 }), false), /nonce/);
    protocolError(
      () => decodeHubMessage(JSON.stringify({ type: 'stream.open', streamId: STREAM_ID, rendezvousUrl: 'not a url', token: 't'.repeat(43) }), false),
      /rendezvousUrl/,
    );
    protocolError(() => decodeHubMessage(JSON.stringify({ type: 'auth', device: 'd', signature: 's', agentVersion: 'v' }), false), /unknown control message type "auth"/);
  });
});

describe('authPayload', () => {
  it('binds the device, the nonce and the hub CA pin', () => {
    const payload = authPayload('plc-7', 'nonce-1', 'sha256:' + '0'.repeat(64)).toString();
    assert.equal(payload, `drawbridge-device-auth-v1\nplc-7\nnonce-1\nsha256:${'0'.repeat(64)}`);
    assert.notEqual(authPayload('plc-7', 'nonce-1', 'sha256:' + '1'.repeat(64)).toString(), payload);
  });
});
