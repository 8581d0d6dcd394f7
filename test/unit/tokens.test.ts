/** Token formats: enrollment tokens round-trip and refuse damage; API tokens parse strictly. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DrawbridgeError } from '../../src/errors.js';
import { secretOf } from '../helpers.js';
import {
  createApiToken,
  decodeEnrollmentToken,
  encodeEnrollmentToken,
  hashSecret,
  parseApiToken,
  randomSecret,
  secretMatches,
} from '../../src/protocol/tokens.js';

const body = {
  hubUrl: 'https://hub.example:8443',
  caPin: 'sha256:' + 'ab'.repeat(32),
  device: 'plc-7-ssh',
  id: '0123456789abcdef',
  secret: randomSecret(32),
};

function enrollmentInvalid(token: string, message: RegExp): void {
  assert.throws(() => decodeEnrollmentToken(token), (error: unknown) => {
    assert.ok(error instanceof DrawbridgeError);
    assert.equal(error.code, 'ENROLLMENT_INVALID');
    assert.match(error.message, message);
    return true;
  });
}

const encodeRaw = (value: unknown): string => 'dbe1_' + Buffer.from(JSON.stringify(value)).toString('base64url');

describe('enrollment tokens', () => {
  it('round-trip, ignoring surrounding whitespace', () => {
    const token = encodeEnrollmentToken(body);
    assert.match(token, /^dbe1_[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodeEnrollmentToken(token), body);
    assert.deepEqual(decodeEnrollmentToken(`  ${token}\n`), body);
  });

  it('refuse text without the prefix, or too long', () => {
    enrollmentInvalid('hello', /should start with "dbe1_"/);
    enrollmentInvalid('', /should start with "dbe1_"/);
    enrollmentInvalid('dbe1_' + 'A'.repeat(5000), /should start with "dbe1_"/);
  });

  it('refuse a body that is not JSON', () => {
    enrollmentInvalid('dbe1_' + Buffer.from('not json').toString('base64url'), /not decodable/);
  });

  it('refuse missing or malformed fields', () => {
    const raw = { v: 1, h: body.hubUrl, p: body.caPin, d: body.device, i: body.id, s: body.secret };
    enrollmentInvalid(encodeRaw(null), /missing or malformed/);
    enrollmentInvalid(encodeRaw({ ...raw, v: 2 }), /missing or malformed/);
    enrollmentInvalid(encodeRaw({ ...raw, p: 'sha256:short' }), /missing or malformed/);
    enrollmentInvalid(encodeRaw({ ...raw, i: 'XYZ' }), /missing or malformed/);
    enrollmentInvalid(encodeRaw({ ...raw, s: 42 }), /missing or malformed/);
    const { d: _d, ...withoutDevice } = raw;
    enrollmentInvalid(encodeRaw(withoutDevice), /missing or malformed/);
  });
});

describe('API tokens', () => {
  it('have a public id and a 256-bit secret, and parse back', () => {
    const token = createApiToken();
    assert.match(token.token, /^dbp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(parseApiToken(token.token), { id: token.id, secret: token.secret });
    assert.notEqual(createApiToken().token, token.token);
  });

  it('keep a secret that contains "_" whole (a test once cut tokens at their last "_")', () => {
    let token = createApiToken();
    while (!token.secret.slice(1).includes('_')) token = createApiToken();
    assert.equal(parseApiToken(token.token)?.secret, token.secret);
    assert.equal(secretOf(token.token), token.secret);
    assert.notEqual(token.token.slice(token.token.lastIndexOf('_') + 1), token.secret, 'cutting at the last "_" loses part of the secret');
  });

  it('refuse anything else', () => {
    const { token } = createApiToken();
    for (const bad of ['', 'dbp_', token + 'x', token.slice(0, -1), token.replace('dbp_', 'dbx_'), ` ${token}`, token.toUpperCase()]) {
      assert.equal(parseApiToken(bad), undefined, bad);
    }
  });
});

describe('secret hashing', () => {
  it('matches only the same secret', () => {
    const secret = randomSecret();
    const stored = hashSecret(secret);
    assert.match(stored, /^[0-9a-f]{64}$/);
    assert.equal(secretMatches(secret, stored), true);
    assert.equal(secretMatches(secret + 'x', stored), false);
    assert.equal(secretMatches('', stored), false);
    assert.equal(secretMatches(secret, 'not-hex'), false);
    assert.equal(secretMatches(secret, '0'.repeat(64)), false);
  });
});
