/**
 * Every refusal of a stream has its own code and reaches the client, and one principal
 * cannot take what others need: pending streams are capped per principal, and the edge
 * touches the target only for a client that is there.
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { holdStream, tryStream } from './api-helpers.js';
import { blackhole, echoServer, startHarness, type Harness } from './stream-harness.js';

describe('stream refusals', { timeout: 60_000 }, () => {
  let h: Harness;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let closedPort: number;
  let hole: Awaited<ReturnType<typeof blackhole>>;

  before(async () => {
    hole = await blackhole();
    h = await startHarness({ config: { limits: { maxPendingStreamsPerPrincipal: 3, authFailureAuditWindow: '1s' } } });
    echo = await echoServer();
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const config = await h.enroll('ok-dev', `127.0.0.1:${echo.port}`);
    await h.enroll('refused-dev', `127.0.0.1:${closedPort}`, { configPath: config });
    await h.enroll('nxdomain-dev', 'nonexistent.invalid:80', { configPath: config });
    await h.enroll('blackhole-dev', `127.0.0.1:${hole.port}`, { configPath: config });
    await h.enroll('off-dev', `127.0.0.1:${echo.port}`, { configPath: config });
    await h.admin.request('POST', '/v1/devices', { name: 'no-agent-dev' });
    await h.startAgent(config, { limits: { connectTimeout: '1500ms' } });
    await h.admin.request('POST', '/v1/devices/off-dev/disable');
  });

  after(async () => {
    await h?.close();
    await echo?.close();
    hole?.close();
  });

  const cases: [string, string, string][] = [
    ['an unknown device', 'nope-dev', 'UNKNOWN_DEVICE'],
    ['an invalid device name', 'Bad_Name', 'INVALID_NAME'],
    ['a disabled device', 'off-dev', 'DEVICE_DISABLED'],
    ['a device whose agent is not connected', 'no-agent-dev', 'DEVICE_OFFLINE'],
    ['a target port closed at the edge', 'refused-dev', 'TARGET_REFUSED'],
    ['a target the edge cannot resolve', 'nxdomain-dev', 'TARGET_UNREACHABLE'],
    ['a target that never answers (the edge gives up)', 'blackhole-dev', 'TIMEOUT'],
  ];
  for (const [what, device, code] of cases) {
    it(`${what}: ${code}`, async () => {
      assert.equal(await tryStream(h.admin, device), code);
    });
  }

  it('an operator without a grant: NOT_AUTHORIZED; with an approved grant: open', async () => {
    const op = await h.user('olga', 'operator');
    const approver = await h.user('abe', 'approver');
    assert.equal(await tryStream(op.client, 'ok-dev'), 'NOT_AUTHORIZED');
    const request = await op.client.request<{ id: string }>('POST', '/v1/access', { device: 'ok-dev', durationMs: 600_000, reason: 'INC-1: test' });
    await approver.client.request('POST', `/v1/access/${request.id}/approve`, {});
    assert.equal(await tryStream(op.client, 'ok-dev'), 'open');
  });

  it('an auditor: FORBIDDEN', async () => {
    const auditor = await h.user('audrey', 'auditor');
    assert.equal(await tryStream(auditor.client, 'ok-dev'), 'FORBIDDEN');
  });

  it("a user whose token was rotated: the link's streams end with PRINCIPAL_REMOVED and new ones are refused", async () => {
    const admin2 = await h.user('root2', 'admin');
    const held = await holdStream(admin2.client, 'ok-dev');
    await held.opened;
    await h.admin.request('POST', '/v1/tokens/rotate', { name: 'root2' });
    const code = await tryStream(admin2.client, 'ok-dev');
    assert.ok(['UNAUTHENTICATED', 'PRINCIPAL_REMOVED'].includes(code), code);
    const sessions = await h.admin.request<{ sessions: { principal: string }[] }>('GET', '/v1/sessions');
    assert.equal(sessions.sessions.filter((s) => s.principal === 'root2').length, 0);
  });

  it("pending streams are capped per principal: one user's stuck set-ups do not block another user", async () => {
    const greedy = await h.user('greedy', 'admin');
    const stuck = await Promise.all([1, 2, 3].map(() => holdStream(greedy.client, 'blackhole-dev')));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await tryStream(greedy.client, 'ok-dev'), 'TOO_MANY_PENDING', 'the fourth pending stream of the same user');
    assert.equal(await tryStream(h.admin, 'ok-dev'), 'open', 'another user is not affected');
    for (const s of stuck) await s.opened.catch(() => undefined);
    assert.equal(await tryStream(greedy.client, 'ok-dev'), 'open', 'once they time out, the user may open again');
  });

  it('refused attempts are audited, aggregated: one record per user, device and reason, with a count', async () => {
    const intruder = await h.user('ivan', 'operator');
    for (let i = 0; i < 5; i++) assert.equal(await tryStream(intruder.client, 'ok-dev'), 'NOT_AUTHORIZED');
    let records: { actor: string; device: string | null; details: Record<string, unknown> }[] = [];
    for (let i = 0; i < 500 && records.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      records = (await h.admin.request<{ records: typeof records }>('GET', '/v1/audit?action=stream.refused&actor=ivan')).records;
    }
    assert.equal(records.length, 1, 'one record for five refusals');
    assert.equal(records[0]?.device, 'ok-dev');
    assert.equal(records[0]?.details['count'], 5);
    assert.equal(records[0]?.details['code'], 'NOT_AUTHORIZED');
  });

  it("the edge enforces the device's own stream cap: TOO_MANY_STREAMS", async () => {
    const capped = await startHarness();
    try {
      const config = await capped.enroll('cap-dev', `127.0.0.1:${echo.port}`);
      const { readFileSync, writeFileSync } = await import('node:fs');
      writeFileSync(config, readFileSync(config, 'utf8').replace(/(name: cap-dev[\s\S]*?)(keyFile:)/, '$1maxStreams: 2\n    $2'));
      await capped.startAgent(config);
      const a = await holdStream(capped.admin, 'cap-dev');
      const b = await holdStream(capped.admin, 'cap-dev');
      await Promise.all([a.opened, b.opened]);
      assert.equal(await tryStream(capped.admin, 'cap-dev'), 'TOO_MANY_STREAMS');
      a.end();
      b.end();
    } finally {
      await capped.close();
    }
  });
});
