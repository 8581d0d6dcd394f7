/** Pin kinds: a CA pin (sha256:HEX) and a key pin (spki:sha256:BASE64, also accepted in hex); their canonical forms. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizePin } from '../../src/client/trust.js';
import { isCanonicalPin, isKeyPin } from '../../src/protocol/pins.js';

const hex = 'ab'.repeat(32);
const base64 = Buffer.from(hex, 'hex').toString('base64');

describe('pins', () => {
  it('normalizes a key pin given in base64 or in hex (any case, with colons) to base64', () => {
    assert.equal(normalizePin(`spki:sha256:${base64}`), `spki:sha256:${base64}`);
    assert.equal(normalizePin(`SPKI:SHA256:${hex.toUpperCase()}`), `spki:sha256:${base64}`);
    assert.equal(normalizePin(`spki:sha256:${(hex.match(/../g) ?? []).join(':')}`), `spki:sha256:${base64}`);
    assert.equal(isKeyPin(`spki:sha256:${base64}`), true);
    assert.equal(isKeyPin(`sha256:${hex}`), false);
  });

  it('keeps CA pins as they were', () => {
    assert.equal(normalizePin(`sha256:${hex}`), `sha256:${hex}`);
    assert.equal(normalizePin(hex.toUpperCase()), `sha256:${hex}`);
  });

  it('refuses malformed pins with a message naming both forms', () => {
    for (const bad of ['spki:sha256:abc', `spki:${base64}`, `spki:sha256:${base64.slice(1)}`, 'sha256:1234', `spki:sha256:${hex}00`]) {
      assert.throws(() => normalizePin(bad), /invalid (key|CA) pin/, bad);
    }
  });

  it('knows the canonical forms that tokens and agent configs carry', () => {
    assert.equal(isCanonicalPin(`sha256:${hex}`), true);
    assert.equal(isCanonicalPin(`spki:sha256:${base64}`), true);
    assert.equal(isCanonicalPin(`spki:sha256:${hex}`), false);
    assert.equal(isCanonicalPin(`SHA256:${hex}`), false);
  });
});
