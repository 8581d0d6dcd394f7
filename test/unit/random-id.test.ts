import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomId } from '../../src/protocol/tokens.js';

describe('randomId', () => {
  it('gives ids of the asked length, all different, across pool refills', () => {
    const seen = new Set<string>();
    // 20,000 ids of 16 bytes use the 4 KiB pool about 80 times over.
    for (let i = 0; i < 20_000; i++) {
      const id = randomId(16);
      assert.match(id, /^[0-9a-f]{32}$/);
      seen.add(id);
    }
    assert.equal(seen.size, 20_000);
    assert.match(randomId(1), /^[0-9a-f]{2}$/);
    assert.match(randomId(256), /^[0-9a-f]{512}$/);
  });

  it('uses every hex digit about equally (no fixed or zeroed bytes)', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 2000; i++) for (const c of randomId(16)) counts.set(c, (counts.get(c) ?? 0) + 1);
    assert.equal(counts.size, 16);
    // 64,000 digits: 4,000 expected each; a zeroed pool would give far more '0'.
    for (const [digit, n] of counts) assert.ok(n > 3400 && n < 4600, `digit ${digit} appeared ${n} times`);
  });

  it('refuses sizes it cannot give', () => {
    assert.throws(() => randomId(0), RangeError);
    assert.throws(() => randomId(257), RangeError);
    assert.throws(() => randomId(1.5), RangeError);
  });
});
