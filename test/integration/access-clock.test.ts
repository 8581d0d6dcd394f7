/**
 * The hub's own timers run on the injected clock: with a ManualClock, an unreviewed request
 * expires and a grant ends when the test moves time, through the hub's sweeps, not sleeps.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AccessView } from '../../src/protocol/api-types.js';
import { ManualClock } from '../../src/util/clock.js';
import { startHarness, type Harness } from './stream-harness.js';

describe("the hub's access sweeps on a manual clock", { timeout: 60_000 }, () => {
  const clock = new ManualClock(Date.now());
  let h: Harness;

  before(async () => {
    h = await startHarness({ clock, config: { access: { requestTtl: '1m' } } });
    await h.admin.request('POST', '/v1/devices', { name: 'timed' });
  });
  after(() => h.close());

  it('expires an unreviewed request once its time is up, and ends a grant, as the clock moves', async () => {
    const op = await h.user('timed-op', 'operator');
    const approver = await h.user('timed-appr', 'approver');
    const waiting = await op.client.request<AccessView>('POST', '/v1/access', { device: 'timed', durationMs: 120_000, reason: 'check' });
    const granted = await op.client.request<AccessView>('POST', '/v1/access', { device: 'timed', durationMs: 120_000, reason: 'fix' });
    await approver.client.request('POST', `/v1/access/${granted.id}/approve`, {});
    await clock.advance(59_000);
    assert.equal((await h.admin.request<AccessView>('GET', `/v1/access/${waiting.id}`)).status, 'pending');
    await clock.advance(1_500);
    assert.equal((await h.admin.request<AccessView>('GET', `/v1/access/${waiting.id}`)).status, 'expired');
    await clock.advance(60_000);
    const ended = await h.admin.request<AccessView>('GET', `/v1/access/${granted.id}`);
    assert.equal(ended.active, false);
    assert.ok(ended.endedAt, 'the grant end is recorded by the sweep');
  });
});
