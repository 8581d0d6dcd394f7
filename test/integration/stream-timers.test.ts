/**
 * Stream time limits with the hub's clock in the test's hands: grant expiry, the idle
 * limit, the maximum duration, and a client that vanishes without a FIN.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { SessionView } from '../../src/protocol/api-types.js';
import { ManualClock } from '../../src/util/clock.js';
import { echoServer, startHarness, type Harness } from './stream-harness.js';

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function openSocket(port: number): Promise<{ socket: Socket; closed: Promise<void> }> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise((r) => socket.once('connect', r));
  socket.write('x');
  await new Promise((r) => socket.once('data', r));
  return { socket, closed };
}

describe('stream time limits on a manual clock', { timeout: 60_000 }, () => {
  const clock = new ManualClock(Date.now());
  let h: Harness;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  const events: { session?: string; code?: string }[] = [];
  let port: number;
  let operatorPort: number;
  let grantId: string;

  before(async () => {
    // Limits small enough that little fake time passes: each fake hour costs tens of
    // thousands of sweep timers (250 ms and 500 ms apart), each settled in turn.
    h = await startHarness({ clock, config: { limits: { pingInterval: '10m', streamIdleTimeout: '20m', maxStreamDuration: '1h' } } });
    echo = await echoServer();
    await h.startAgent(await h.enroll('timed-dev', `127.0.0.1:${echo.port}`));
    port = (await h.tunnel(h.admin, 'timed-dev', (e) => e.type !== 'open' && events.push({ ...(e.session ? { session: e.session } : {}), ...(e.error ? { code: e.error.code } : {}) }))).port;
    const op = await h.user('oscar', 'operator');
    const approver = await h.user('ada', 'approver');
    const request = await op.client.request<{ id: string }>('POST', '/v1/access', { device: 'timed-dev', durationMs: 1_800_000, reason: 'INC-7 maintenance' });
    grantId = request.id;
    await approver.client.request('POST', `/v1/access/${request.id}/approve`, {});
    operatorPort = (await h.tunnel(op.client, 'timed-dev', (e) => e.type !== 'open' && events.push({ ...(e.session ? { session: e.session } : {}), ...(e.error ? { code: e.error.code } : {}) }))).port;
  });

  after(async () => {
    await h?.close();
    await echo?.close();
  });

    /** Moves the hub's clock in steps of at most one ping interval, letting real pongs come back between steps. */
  const advance = async (ms: number): Promise<void> => {
    for (let left = ms; left > 0; left -= 600_000) {
      await clock.advance(Math.min(left, 600_000));
      await new Promise((r) => setTimeout(r, 15));
    }
  };

  const sessions = async (): Promise<SessionView[]> => (await h.admin.request<{ sessions: SessionView[] }>('GET', '/v1/sessions')).sessions;

  it('a grant that ends closes its streams within one sweep (250 ms), with ACCESS_EXPIRED', async () => {
    const { socket, closed } = await openSocket(operatorPort);
    // The stream carries data every 10 minutes, so the idle limit does not interfere.
    for (let minutes = 0; minutes < 29; minutes += 10) {
      await advance(Math.min(10, 29 - minutes) * 60_000);
      socket.write('still here');
      await new Promise((r) => socket.once('data', r));
    }
    assert.equal((await sessions()).filter((s) => s.principal === 'oscar').length, 1, 'still open a minute before the end');
    await advance(60_000 + 250);
    await closed;
    await until(() => events.some((e) => e.code === 'ACCESS_EXPIRED'), 'ACCESS_EXPIRED reached the client');
    void grantId;
  });

  it('a stream that carries nothing for the idle limit is closed with STREAM_IDLE', async () => {
    const { closed } = await openSocket(port);
    await advance(19 * 60_000);
    assert.equal((await sessions()).filter((s) => s.principal === 'admin').length, 1);
    await advance(60_000 + 250);
    await closed;
    await until(() => events.some((e) => e.code === 'STREAM_IDLE'), 'STREAM_IDLE reached the client');
  });

  it('a busy stream still ends at the maximum duration with STREAM_TOO_LONG', async () => {
    const { socket, closed } = await openSocket(port);
    // Data every 10 minutes (the idle limit is 20): busy for the whole hour.
    for (let minutes = 0; minutes < 60; minutes += 10) {
      socket.write('keep-alive');
      await new Promise((r) => socket.once('data', r));
      if (minutes === 50) assert.equal((await sessions()).filter((s) => s.principal === 'admin').length, 1, 'still open ten minutes before the limit');
      await advance(10 * 60_000);
    }
    await advance(300);
    await closed;
    await until(() => events.some((e) => e.code === 'STREAM_TOO_LONG'), 'STREAM_TOO_LONG reached the client');
  });
});
