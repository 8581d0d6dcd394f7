/** Durations and names: the spellings every flag and config key share. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DrawbridgeError } from '../../src/errors.js';
import { formatDuration, parseDuration } from '../../src/util/duration.js';
import { assertValidName, isValidName } from '../../src/util/names.js';

describe('parseDuration', () => {
  it('reads single and compound units', () => {
    const cases: [string, number][] = [
      ['0s', 0], ['250ms', 250], ['90s', 90_000], ['30m', 1_800_000], ['8h', 28_800_000], ['2d', 172_800_000],
      ['1h30m', 5_400_000], ['1d2h3m4s5ms', 93_784_005], [' 15s ', 15_000],
    ];
    for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
  });

  it('refuses text that is not a duration, with the reason', () => {
    for (const bad of ['', '   ', '10', 's', '1x', '1.5h', '-1s', '1h 30m', '1H', '1s!', 'h1']) {
      assert.throws(() => parseDuration(bad), /empty duration|invalid duration/, bad);
    }
    assert.throws(() => parseDuration('99999999999999999999d'), /too large/);
  });

  it('is not confused by being called again after a failure', () => {
    assert.throws(() => parseDuration('1h!'));
    assert.equal(parseDuration('1h'), 3_600_000);
  });
});

describe('formatDuration', () => {
  it('prints the largest units first and round-trips', () => {
    assert.equal(formatDuration(500), '500ms');
    assert.equal(formatDuration(90_000), '1m30s');
    assert.equal(formatDuration(93_784_000), '1d2h3m4s');
    for (const ms of [1000, 61_000, 3_600_000, 86_400_000 + 1000]) assert.equal(parseDuration(formatDuration(ms)), ms);
  });
});

describe('names', () => {
  it('accepts DNS-label-like names of 1-63 characters', () => {
    for (const good of ['a', '7', 'plc-7-ssh', 'a'.repeat(63), 'a-b-c', '0day']) {
      assert.equal(isValidName(good), true, good);
      assert.equal(assertValidName(good), good);
    }
  });

  it('refuses everything else with INVALID_NAME', () => {
    for (const bad of ['', 'UPPER', 'Mixed', '-lead', 'trail-', 'a_b', 'a.b', 'a b', 'a'.repeat(64), 'é', 'a\n']) {
      assert.equal(isValidName(bad), false, JSON.stringify(bad));
      assert.throws(() => assertValidName(bad, 'device name'), (error: unknown) => {
        assert.ok(error instanceof DrawbridgeError);
        assert.equal(error.code, 'INVALID_NAME');
        assert.match(error.message, /^invalid device name /);
        return true;
      });
    }
    for (const notString of [undefined, null, 42, {}]) {
      assert.throws(() => assertValidName(notString), /invalid name/);
    }
  });

  it('keeps a huge bad name out of the message', () => {
    assert.throws(() => assertValidName('X'.repeat(10_000)), (error: unknown) => (error as Error).message.length < 300);
  });
});
