import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DialGate } from '../../src/agent/dial-gate.js';

describe('DialGate', () => {
  it('lets at most N holders in at once and hands slots on in order', async () => {
    const gate = new DialGate(2);
    const order: number[] = [];
    const releases: (() => void)[] = [];
    const waiters = [1, 2, 3, 4].map((n) =>
      gate.acquire().then((release) => {
        order.push(n);
        releases.push(release);
      }),
    );
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, [1, 2]);
    releases[0]?.();
    releases[0]?.(); // a second release must not free a second slot
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, [1, 2, 3]);
    releases[1]?.();
    await Promise.all(waiters);
    assert.deepEqual(order, [1, 2, 3, 4]);
  });
});
