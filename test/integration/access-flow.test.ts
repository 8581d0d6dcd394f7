/**
 * Just-in-time access through the API, in process, with the hub's clock in the test's
 * hands: request, review, grant, streams ending on expiry (to the sweep), revocation and
 * kill, the auto-approval policy, unreviewed expiry, and signed webhooks delivered to a
 * real local HTTP server. The CLI's rendering (`access request --wait`, tables) lives in
 * test/e2e/cli.test.ts.
 */
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { HubClient } from '../../src/client/hub-client.js';
import type { TunnelEvent } from '../../src/client/tunnel.js';
import type { AccessView, AuditView, SessionView } from '../../src/protocol/api-types.js';
import { ManualClock } from '../../src/util/clock.js';
import { holdEchoSocket, refused, SLACK_MS, streamOutcome, tryStream, until } from './api-helpers.js';
import { rawRequest } from './raw-http.js';
import { echoServer, startHarness, type Harness } from './stream-harness.js';

interface Delivery {
  headers: IncomingHttpHeaders;
  raw: string;
  body: { event: string; at: string; data: AccessView };
}

const WEBHOOK_SECRET = 'webhook-secret-for-tests-0123456789';
const MINUTE = 60_000;

function signatureValid(secret: string, raw: string, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(raw).digest('hex'));
  const given = Buffer.from(header.slice('sha256='.length));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

describe('just-in-time access', { timeout: 90_000 }, () => {
  const clock = new ManualClock(Date.now());
  let h: Harness;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let webhookServer: Server;
  const deliveries: Delivery[] = [];
  let op: { token: string; client: HubClient };
  let appr: { token: string; client: HubClient };
  let appr2: { token: string; client: HubClient };

  const request = (client: HubClient, device: string, durationMs: number, reason = 'replace the cooling fan'): Promise<AccessView> =>
    client.request<AccessView>('POST', '/v1/access', { device, durationMs, reason });
  const list = async (client: HubClient, query = ''): Promise<AccessView[]> => (await client.request<{ requests: AccessView[] }>('GET', `/v1/access${query}`)).requests;
  const sessions = async (client: HubClient = h.admin): Promise<SessionView[]> => (await client.request<{ sessions: SessionView[] }>('GET', '/v1/sessions')).sessions;
  const eventsFor = (id: string): string[] => deliveries.filter((d) => d.body.data.id === id).map((d) => d.body.event);
  /** Moves the hub's clock in steps of at most one ping interval, letting real pongs come back between steps. */
  const advance = async (ms: number): Promise<void> => {
    for (let left = ms; left > 0; left -= 10 * MINUTE) {
      await clock.advance(Math.min(left, 10 * MINUTE));
      await new Promise((r) => setTimeout(r, 15));
    }
  };

  before(async () => {
    webhookServer = createServer((req, res) => {
      let raw = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (raw += c));
      req.on('end', () => {
        const body = JSON.parse(raw) as Delivery['body'];
        if (body.event.startsWith('access.')) deliveries.push({ headers: req.headers, raw, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => webhookServer.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(webhookServer.address() as AddressInfo).port}/hook`;
    h = await startHarness({
      clock,
      config: {
        access: { maxDuration: '8h', requestTtl: '10m', autoApprove: [{ tags: { env: 'lab' }, maxDuration: '2h' }] },
        webhook: { url, secret: WEBHOOK_SECRET },
        limits: { pingInterval: '10m' },
      },
    });
    echo = await echoServer();
    const config = await h.enroll('jit-dev', `127.0.0.1:${echo.port}`, { tags: { site: 'berlin' } });
    await h.enroll('lab-dev', `127.0.0.1:${echo.port}`, { tags: { env: 'lab' }, configPath: config });
    await h.startAgent(config);
    [op, appr, appr2] = await Promise.all([h.user('op', 'operator'), h.user('appr', 'approver'), h.user('appr2', 'approver')]);
  });

  after(async () => {
    await h?.close();
    await echo?.close();
    await new Promise<void>((resolve) => (webhookServer ? webhookServer.close(() => resolve()) : resolve()));
  });

  it('refuses an operator without a grant, naming the missing grant', async () => {
    const outcome = await streamOutcome(op.client, 'jit-dev');
    assert.equal(outcome.code, 'NOT_AUTHORIZED');
    assert.match(outcome.message, /"op" has no active grant for device "jit-dev"/);
  });

  it('request -> approve -> stream: data flows until the grant ends, and not a sweep longer', async () => {
    const requested = await request(op.client, 'jit-dev', 5 * MINUTE);
    assert.equal(requested.status, 'pending');
    assert.match(requested.id, /^ar_[0-9a-f]{16}$/);
    const pending = await list(appr.client, '?status=pending');
    assert.ok(pending.some((r) => r.id === requested.id && r.principal === 'op'), 'the approver sees the pending request');

    const approved = await appr.client.request<AccessView>('POST', `/v1/access/${requested.id}/approve`, { note: 'fan ticket 42' });
    assert.equal(approved.status, 'approved');
    assert.equal(approved.active, true);
    assert.equal(approved.reviewedBy, 'appr');
    assert.equal(approved.reviewNote, 'fan ticket 42');
    const grantEndsAt = Date.parse(approved.grantEndsAt as string);
    assert.equal(grantEndsAt - Date.parse(approved.grantStartsAt as string), 5 * MINUTE, 'the grant runs from approval to approval + duration');

    const events: TunnelEvent[] = [];
    const tunnel = await h.tunnel(op.client, 'jit-dev', (e) => events.push(e));
    const held = await holdEchoSocket(tunnel.port, 'through-the-grant');
    let closed = false;
    void held.closedAt.then(() => (closed = true));
    await advance(grantEndsAt - clock.now() - 1000);
    assert.equal(closed, false, 'still open a second before the grant ends');
    assert.equal((await sessions()).filter((s) => s.principal === 'op').length, 1);
    // The relay sweeps grant ends every 250 ms.
    await advance(1000 + 250);
    await held.closedAt;
    await until(() => events.some((e) => e.error?.code === 'ACCESS_EXPIRED'), 'the client to be told access expired');
    assert.match(events.find((e) => e.error?.code === 'ACCESS_EXPIRED')?.error?.message ?? '', /access ended/);

    // With the grant gone, a new stream is refused.
    assert.equal(await tryStream(op.client, 'jit-dev'), 'NOT_AUTHORIZED');
    const mine = await list(op.client, '?mine=true');
    assert.equal(mine.find((r) => r.id === requested.id)?.active, false);
  });

  it('revoking a grant ends its streams within 1 s and the client is told why; sessions list shows the stream', async () => {
    const requested = await request(op.client, 'jit-dev', 10 * MINUTE);
    await appr2.client.request('POST', `/v1/access/${requested.id}/approve`, {});
    assert.deepEqual((await list(op.client, '?status=active')).map((r) => r.id), [requested.id]);

    const events: TunnelEvent[] = [];
    const tunnel = await h.tunnel(op.client, 'jit-dev', (e) => events.push(e));
    const held = await holdEchoSocket(tunnel.port, 'hello-through-tunnel\n');
    const session = (await sessions()).find((s) => s.principal === 'op' && s.device === 'jit-dev');
    assert.ok(session, 'the stream is listed');
    assert.equal(session.grantId, requested.id);
    assert.equal(session.clientAddress, '127.0.0.1');
    assert.equal(session.target, `127.0.0.1:${echo.port}`);
    assert.ok(Number.isFinite(Date.parse(session.startedAt)));
    assert.ok(session.bytesToDevice >= 'hello-through-tunnel\n'.length, `bytes to device: ${session.bytesToDevice}`);
    assert.ok(session.bytesFromDevice >= 'hello-through-tunnel\n'.length, `bytes from device: ${session.bytesFromDevice}`);
    // The operator sees their own session too.
    assert.ok((await sessions(op.client)).some((s) => s.id === session.id));

    const revoked = await appr.client.request<AccessView>('POST', `/v1/access/${requested.id}/revoke`);
    const revokedAt = Date.now();
    assert.equal(revoked.status, 'revoked');
    const closedAt = await held.closedAt;
    assert.ok(closedAt - revokedAt <= 1000 + SLACK_MS, `the stream closed ${closedAt - revokedAt} ms after the revocation returned`);
    await until(() => events.some((e) => e.error?.code === 'ACCESS_REVOKED'), 'the client to be told of the revocation');
    assert.match(events.find((e) => e.error?.code === 'ACCESS_REVOKED')?.error?.message ?? '', /access ended: grant ar_[0-9a-f]{16} was revoked by appr/);
    assert.ok(!(await sessions()).some((s) => s.id === session.id), 'the session is gone');
    await refused(appr.client.request('POST', `/v1/access/${requested.id}/revoke`), 'INVALID_STATE');
  });

  it('killing a session ends its stream at once with SESSION_KILLED, for admins only', async () => {
    const events: TunnelEvent[] = [];
    const tunnel = await h.tunnel(h.admin, 'jit-dev', (e) => events.push(e));
    const held = await holdEchoSocket(tunnel.port, 'admin-standing-access');
    const session = (await sessions()).find((s) => s.principal === 'admin' && s.device === 'jit-dev');
    assert.ok(session, 'the admin stream is listed');
    assert.equal(session.grantId, null, 'admins hold standing access, not a grant');
    await refused(op.client.request('DELETE', `/v1/sessions/${session.id}`), 'FORBIDDEN', /needs the admin role/);
    await h.admin.request('DELETE', `/v1/sessions/${session.id}`);
    const killedAt = Date.now();
    const closedAt = await held.closedAt;
    assert.ok(closedAt - killedAt <= 1000 + SLACK_MS, `closed ${closedAt - killedAt} ms after the kill returned`);
    await until(() => events.some((e) => e.error?.code === 'SESSION_KILLED'), 'the client to be told of the kill');
    assert.match(events.find((e) => e.error?.code === 'SESSION_KILLED')?.error?.message ?? '', /the session was killed by admin/);
    await refused(h.admin.request('DELETE', `/v1/sessions/${session.id}`), 'NOT_FOUND');
  });

  it('an approver cannot review their own request; another approver can deny it with a reason', async () => {
    const own = await request(appr.client, 'jit-dev', 10 * MINUTE, 'firmware check');
    await refused(appr.client.request('POST', `/v1/access/${own.id}/approve`, {}), 'FORBIDDEN', /"appr" cannot review their own access request/);
    await refused(appr.client.request('POST', `/v1/access/${own.id}/deny`, { reason: 'no' }), 'FORBIDDEN', /cannot review their own/);
    await refused(op.client.request('POST', `/v1/access/${own.id}/approve`, {}), 'FORBIDDEN', /needs the admin or approver role; "op" is operator/);
    await refused(appr2.client.request('POST', `/v1/access/${own.id}/deny`, { reason: '' }), 'VALIDATION_FAILED');
    const denied = await appr2.client.request<AccessView>('POST', `/v1/access/${own.id}/deny`, { reason: 'use the lab unit' });
    assert.equal(denied.status, 'denied');
    assert.equal(denied.reviewNote, 'use the lab unit');
    await refused(h.admin.request('POST', `/v1/access/${own.id}/approve`, {}), 'INVALID_STATE', /already denied/);
    assert.equal(await tryStream(appr.client, 'jit-dev'), 'NOT_AUTHORIZED');
  });

  it('refuses a duration above the maximum, an empty reason and an unknown device', async () => {
    await refused(request(op.client, 'jit-dev', 9 * 60 * MINUTE, 'long job'), 'VALIDATION_FAILED', /maximum of 8h/);
    await refused(request(op.client, 'jit-dev', MINUTE, '  '), 'VALIDATION_FAILED', /reason is required/);
    const empty = await rawRequest(h.hub.port, h.hub.caPem, 'POST', '/v1/access', { authorization: `Bearer ${op.token}`, 'content-type': 'application/json' }, JSON.stringify({ device: 'jit-dev', durationMs: MINUTE, reason: '  ' }));
    assert.equal(empty?.status, 400);
    await refused(request(op.client, 'no-such-dev', 60 * MINUTE, 'x'), 'UNKNOWN_DEVICE');
  });

  it('the holder may give up their own grant', async () => {
    const requested = await request(op.client, 'jit-dev', 15 * MINUTE, 'waiting for review');
    await appr.client.request('POST', `/v1/access/${requested.id}/approve`, {});
    const revoked = await op.client.request<AccessView>('POST', `/v1/access/${requested.id}/revoke`);
    assert.equal(revoked.status, 'revoked');
  });

  it('auto-approves by policy for env=lab devices up to the policy maximum only', async () => {
    const auto = await request(op.client, 'lab-dev', 60 * MINUTE, 'lab calibration');
    assert.equal(auto.status, 'approved');
    assert.equal(auto.autoApproved, true);
    assert.equal(auto.reviewedBy, 'policy');
    assert.equal(auto.active, true);
    const tunnel = await h.tunnel(op.client, 'lab-dev');
    (await holdEchoSocket(tunnel.port, 'lab-bytes\n')).socket.end();
    const { records } = await h.admin.request<{ records: AuditView[] }>('GET', '/v1/audit?action=access.auto_approve&device=lab-dev');
    assert.equal(records.length, 1);
    assert.equal(records[0]?.actor, 'policy');
    assert.equal(records[0]?.details['request'], auto.id);

    const tooLong = await request(op.client, 'lab-dev', 3 * 60 * MINUTE, 'long lab run');
    assert.equal(tooLong.status, 'pending', 'beyond the policy maximum a human must review');
    const untagged = await request(op.client, 'jit-dev', 10 * MINUTE, 'not a lab device');
    assert.equal(untagged.status, 'pending', 'a device without the tag is not auto-approved');
    assert.equal(untagged.autoApproved, false);
  });

  it('list filters: pending, active, mine; an operator sees only their own', async () => {
    const pending = await list(appr.client, '?status=pending');
    assert.ok(pending.length >= 2 && pending.every((r) => r.status === 'pending'));
    const active = await list(h.admin, '?status=active');
    assert.ok(active.length >= 1 && active.every((r) => r.active));
    await request(appr.client, 'jit-dev', 10 * MINUTE, 'approver asks too');
    const mine = await list(appr.client, '?mine=true');
    assert.ok(mine.length >= 1 && mine.every((r) => r.principal === 'appr'));
    const opView = await list(op.client);
    assert.ok(opView.length >= 1 && opView.every((r) => r.principal === 'op'));
  });

  it('a request nobody reviews expires after its TTL, and cannot be approved afterwards', async () => {
    const requested = await request(op.client, 'jit-dev', 10 * MINUTE, 'weekend maintenance');
    assert.equal(requested.status, 'pending');
    assert.equal(Date.parse(requested.requestExpiresAt) - Date.parse(requested.createdAt), 10 * MINUTE);
    await advance(10 * MINUTE - 1000);
    assert.equal((await h.admin.request<AccessView>('GET', `/v1/access/${requested.id}`)).status, 'pending', 'not a second early');
    // The access sweep runs every 500 ms.
    await advance(1000 + 500);
    await until(async () => (await h.admin.request<AccessView>('GET', `/v1/access/${requested.id}`)).status === 'expired', 'the request to expire');
    await refused(appr.client.request('POST', `/v1/access/${requested.id}/approve`, {}), 'INVALID_STATE', /expired/);
    const { records } = await h.admin.request<{ records: AuditView[] }>('GET', `/v1/audit?action=access.expire`);
    assert.ok(records.length >= 1 && records.every((r) => r.actor === 'hub'));
    assert.ok(records.some((r) => r.details['request'] === requested.id));
    await until(() => eventsFor(requested.id).includes('access.expired'), 'the access.expired webhook');
  });

  it('fires signed webhooks for requested, approved, denied, expired and revoked', async () => {
    await until(() => new Set(deliveries.map((d) => d.body.event)).size >= 5, 'webhooks of every kind');
    const kinds = new Set(deliveries.map((d) => d.body.event));
    for (const kind of ['access.requested', 'access.approved', 'access.denied', 'access.expired', 'access.revoked']) {
      assert.ok(kinds.has(kind), `no ${kind} webhook; got ${[...kinds].join(', ')}`);
    }
    for (const d of deliveries) {
      assert.ok(signatureValid(WEBHOOK_SECRET, d.raw, d.headers['x-drawbridge-signature']), `bad signature on ${d.body.event}`);
      assert.equal(d.headers['x-drawbridge-event'], d.body.event);
      assert.equal(d.headers['content-type'], 'application/json');
      for (const token of [op.token, appr.token, appr2.token, h.hub.bootstrapAdminToken as string]) assert.ok(!d.raw.includes(token), 'a token leaked into a webhook');
    }
    // The check can fail: a changed body or a wrong secret does not verify.
    const sample = deliveries[0] as Delivery;
    assert.ok(!signatureValid(WEBHOOK_SECRET, sample.raw.replace('"access.', '"axcess.'), sample.headers['x-drawbridge-signature']));
    assert.ok(!signatureValid('another-secret-0123456789', sample.raw, sample.headers['x-drawbridge-signature']));

    // An auto-approved request fires requested then approved, in order.
    const autoApproved = deliveries.find((d) => d.body.event === 'access.approved' && d.body.data.autoApproved);
    assert.ok(autoApproved, 'the auto-approval fired access.approved');
    assert.deepEqual(eventsFor(autoApproved.body.data.id), ['access.requested', 'access.approved']);
  });
});
