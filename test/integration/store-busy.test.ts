/**
 * A database locked by another process must not freeze the hub: the store waits only a few
 * milliseconds inside SQLite and retries asynchronously, so requests keep being served;
 * a lock held past the bound refuses the action (503 AUDIT_UNAVAILABLE) instead of hanging.
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { refusal, streamOutcome, tryStream } from './api-helpers.js';
import { echoServer, startHarness, type Harness } from './stream-harness.js';

describe('a database locked by another process', { timeout: 60_000 }, () => {
  let h: Harness;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  before(async () => {
    h = await startHarness();
    echo = await echoServer();
    await h.startAgent(await h.enroll('busy-dev', `127.0.0.1:${echo.port}`));
  });
  after(async () => {
    await h?.close();
    await echo?.close();
  });

  const lock = (): Database.Database => {
    const other = new Database(join(h.hub.dataDir, 'drawbridge.db'));
    other.exec('BEGIN IMMEDIATE');
    return other;
  };

  it('the hub keeps serving while a write waits for the lock, and the write lands once it is released', async () => {
    const other = lock();
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    const write = h.admin.request('POST', '/v1/users', { name: 'patient', role: 'auditor' });
    // Meanwhile, requests that only read are answered.
    for (let i = 0; i < 5; i++) await h.admin.request('GET', '/healthz');
    await new Promise((r) => setTimeout(r, 300));
    other.exec('COMMIT');
    other.close();
    await write;
    delay.disable();
    assert.ok(delay.max / 1e6 < 1000, `event loop stalled ${(delay.max / 1e6).toFixed(0)} ms`);
    const users = await h.admin.request<{ users: { name: string }[] }>('GET', '/v1/users');
    assert.ok(users.users.some((u) => u.name === 'patient'));
  });

  it('a lock held past the bound refuses the action with AUDIT_UNAVAILABLE, and nothing is half-written; a stream is refused, not opened unaudited', async () => {
    const other = lock();
    try {
      const [action, stream] = await Promise.all([
        refusal(h.admin.request('POST', '/v1/users', { name: 'never', role: 'auditor' })),
        streamOutcome(h.admin, 'busy-dev'),
      ]);
      assert.equal(action.code, 'AUDIT_UNAVAILABLE');
      assert.equal(stream.code, 'AUDIT_UNAVAILABLE');
      assert.match(stream.message, /audit log could not be written/);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    const users = await h.admin.request<{ users: { name: string }[] }>('GET', '/v1/users');
    assert.ok(!users.users.some((u) => u.name === 'never'));
    assert.deepEqual((await h.admin.request<{ sessions: unknown[] }>('GET', '/v1/sessions')).sessions, []);
    // Once the lock is gone, streams open (and are audited) again.
    assert.equal(await tryStream(h.admin, 'busy-dev'), 'open');
  });
});
