import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../src/util/clock.js';

describe('ManualClock', () => {
  it('fires timers in due order only when advanced, intervals repeatedly', async () => {
    const clock = new ManualClock(1000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('t500'), 500);
    clock.setTimeout(() => fired.push('t100'), 100);
    const every = clock.setInterval(() => fired.push(`i@${clock.now()}`), 200);
    assert.deepEqual(fired, []);
    await clock.advance(450);
    assert.deepEqual(fired, ['t100', 'i@1200', 'i@1400']);
    clock.clearInterval(every);
    await clock.advance(1000);
    assert.deepEqual(fired, ['t100', 'i@1200', 'i@1400', 't500']);
    assert.equal(clock.now(), 2450);
    assert.equal(clock.pending, 0);
  });

  it('runs timers scheduled by timers within the same advance, and settles their promises', async () => {
    const clock = new ManualClock(0);
    const fired: number[] = [];
    clock.setTimeout(() => {
      void Promise.resolve().then(() => clock.setTimeout(() => fired.push(clock.now()), 50));
    }, 10);
    await clock.advance(100);
    assert.deepEqual(fired, [60]);
  });
});
