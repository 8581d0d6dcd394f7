/**
 * Just-in-time access end to end with real processes: request, review, grant, streams
 * ending on expiry / revocation / kill, the auto-approval policy, unreviewed expiry and
 * signed webhooks delivered to a real local HTTP server.
 */
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  addDeviceWithAgent,
  cleanup,
  runCli,
  spawnCli,
  startConnect,
  startEchoServer,
  startHubProcess,
  tempDir,
  waitFor,
  type HubProcess,
} from './helpers.js';
import { addUser, api, as, holdEchoSocket, json, ok, refused, SLACK_MS, startEchoProxy, timeWhen } from './jit-helpers.js';
import type { AccessView, SessionView } from '../src/protocol/api-types.js';



interface Delivery {
  headers: IncomingHttpHeaders;
  raw: string;
  body: { event: string; at: string; data: AccessView };
}

const WEBHOOK_SECRET = 'webhook-secret-for-tests-0123456789';

function signatureValid(secret: string, raw: string, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(raw).digest('hex'));
  const given = Buffer.from(header.slice('sha256='.length));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

describe('just-in-time access', () => {
  let hub: HubProcess;
  let shortTtlHub: HubProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let webhookServer: Server;
  const deliveries: Delivery[] = [];
  let op: string;
  let appr: string;
  let appr2: string;
  let ttlOp: string;

  const requestAccess = (env: Record<string, string>, device: string, duration: string, reason = 'replace the cooling fan'): Promise<AccessView> =>
    json<AccessView>(['access', 'request', device, '--for', duration, '--reason', reason], env);
  const eventsFor = (id: string): string[] => deliveries.filter((d) => d.body.data.id === id).map((d) => d.body.event);

  before(async () => {
    webhookServer = createServer((req, res) => {
      let raw = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (raw += c));
      req.on('end', () => {
        deliveries.push({ headers: req.headers, raw, body: JSON.parse(raw) as Delivery['body'] });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => webhookServer.listen(0, '127.0.0.1', resolve));
    const hookUrl = `http://127.0.0.1:${(webhookServer.address() as AddressInfo).port}/hook`;

    const configDir = tempDir('db-access-cfg-');
    const config = join(configDir, 'hub.yaml');
    writeFileSync(
      config,
      [
        'access:',
        '  maxDuration: 8h',
        '  autoApprove:',
        '    - tags: { env: lab }',
        '      maxDuration: 2h',
        'webhook:',
        `  url: ${hookUrl}`,
        `  secret: ${WEBHOOK_SECRET}`,
        '',
      ].join('\n'),
    );
    const shortTtlConfig = join(configDir, 'short-ttl.yaml');
    writeFileSync(shortTtlConfig, ['access:', '  requestTtl: 2s', 'webhook:', `  url: ${hookUrl}`, `  secret: ${WEBHOOK_SECRET}`, ''].join('\n'));

    [hub, shortTtlHub, echo] = await Promise.all([startHubProcess({ config }), startHubProcess({ config: shortTtlConfig }), startEchoServer()]);
    await addDeviceWithAgent(hub, 'jit-dev', `127.0.0.1:${echo.port}`, { tags: ['site=berlin'] });
    await addDeviceWithAgent(hub, 'lab-dev', `127.0.0.1:${echo.port}`, { tags: ['env=lab'] });
    [op, appr, appr2, ttlOp] = await Promise.all([
      addUser(hub, 'op', 'operator'),
      addUser(hub, 'appr', 'approver'),
      addUser(hub, 'appr2', 'approver'),
      addUser(shortTtlHub, 'op', 'operator'),
    ]);
    await ok(['devices', 'add', 'ttl-dev'], shortTtlHub.env);
  });

  after(async () => {
    await cleanup();
    await echo?.close();
    await new Promise<void>((resolve) => (webhookServer ? webhookServer.close(() => resolve()) : resolve()));
  });

  it('refuses an operator without a grant, naming the missing grant', async () => {
    await refused(['proxy', 'jit-dev'], as(hub, op), 'NOT_AUTHORIZED', /"op" has no active grant for device "jit-dev"/);
  });

  it('request -> approve -> connect: data flows, and the stream ends within 1 s of the grant expiring', async (t) => {
    const requested = await requestAccess(as(hub, op), 'jit-dev', '5s');
    assert.equal(requested.status, 'pending');
    assert.match(requested.id, /^ar_[0-9a-f]{16}$/);
    const pending = await json<AccessView[]>(['access', 'list', '--pending'], as(hub, appr));
    assert.ok(pending.some((r) => r.id === requested.id && r.principal === 'op'), 'the approver sees the pending request');

    const approved = await json<AccessView>(['access', 'approve', requested.id, '--note', 'fan ticket 42'], as(hub, appr));
    assert.equal(approved.status, 'approved');
    assert.equal(approved.active, true);
    assert.equal(approved.reviewedBy, 'appr');
    assert.equal(approved.reviewNote, 'fan ticket 42');
    const grantEndsAt = Date.parse(approved.grantEndsAt as string);
    assert.equal(grantEndsAt - Date.parse(approved.grantStartsAt as string), 5000, 'the grant runs from approval to approval + duration');

    const connect = await startConnect(as(hub, op), 'jit-dev');
    const held = await holdEchoSocket(connect.port, 'through-the-grant');
    const closedAt = await held.closedAt;
    assert.ok(closedAt >= grantEndsAt - 50, `the stream ended ${grantEndsAt - closedAt} ms before the grant did`);
    assert.ok(closedAt - grantEndsAt <= 1000 + SLACK_MS, `the stream ended ${closedAt - grantEndsAt} ms after the grant expired`);
    t.diagnostic(`stream closed ${closedAt - grantEndsAt} ms after the grant expired`);
    await waitFor(() => connect.stderr().includes('ACCESS_EXPIRED'), 3000, 'the client to say access expired');
    assert.match(connect.stderr(), /ACCESS_EXPIRED: access ended/);

    // With the grant gone, a new stream is refused.
    const second = connect.stderr().length;
    await holdEchoSocket(connect.port, 'again').then(
      () => assert.fail('a stream opened after the grant expired'),
      () => undefined,
    );
    await waitFor(() => connect.stderr().slice(second).includes('NOT_AUTHORIZED'), 5000, 'NOT_AUTHORIZED after expiry');
    const mine = await json<AccessView[]>(['access', 'list', '--mine'], as(hub, op));
    assert.equal(mine.find((r) => r.id === requested.id)?.active, false);
  });

  it('revoking a grant ends its streams within 1 s and the proxy says why; sessions list shows the stream', async (t) => {
    const requested = await requestAccess(as(hub, op), 'jit-dev', '10m');
    await ok(['access', 'approve', requested.id], as(hub, appr2));
    const active = await json<AccessView[]>(['access', 'list', '--active'], as(hub, op));
    assert.deepEqual(active.map((r) => r.id), [requested.id]);

    const proxy = await startEchoProxy(as(hub, op), 'jit-dev', 'hello-through-proxy\n');
    const sessions = await json<SessionView[]>(['sessions', 'list'], hub.env);
    const session = sessions.find((s) => s.principal === 'op' && s.device === 'jit-dev');
    assert.ok(session, `no session for op in ${JSON.stringify(sessions)}`);
    assert.equal(session.grantId, requested.id);
    assert.equal(session.clientAddress, '127.0.0.1');
    assert.equal(session.target, `127.0.0.1:${echo.port}`);
    assert.ok(Number.isFinite(Date.parse(session.startedAt)));
    assert.ok(session.bytesToDevice >= 'hello-through-proxy\n'.length, `bytes to device: ${session.bytesToDevice}`);
    assert.ok(session.bytesFromDevice >= 'hello-through-proxy\n'.length, `bytes from device: ${session.bytesFromDevice}`);
    // The operator sees their own session too.
    assert.ok((await json<SessionView[]>(['sessions', 'list'], as(hub, op))).some((s) => s.id === session.id));

    const revoked = await json<AccessView>(['access', 'revoke', requested.id], as(hub, appr));
    assert.equal(revoked.status, 'revoked');
    const endedAt = Date.parse(revoked.endedAt as string);
    const toldAt = await timeWhen(() => proxy.stderr().includes('ACCESS_REVOKED'), 5000, 'the proxy to report the revocation');
    assert.ok(toldAt - endedAt <= 1000 + SLACK_MS, `the proxy learned of the revocation ${toldAt - endedAt} ms later`);
    t.diagnostic(`the proxy reported the revocation ${toldAt - endedAt} ms after it`);
    await waitFor(() => proxy.child.exitCode !== null, 5000, 'the proxy to exit');
    assert.notEqual(proxy.child.exitCode, 0);
    assert.match(proxy.stderr(), /access ended: grant ar_[0-9a-f]{16} was revoked by appr \[ACCESS_REVOKED\]/);
    assert.ok(!(await json<SessionView[]>(['sessions', 'list'], hub.env)).some((s) => s.id === session.id), 'the session is gone');
    await refused(['access', 'revoke', requested.id], as(hub, appr), 'INVALID_STATE');
  });

  it('sessions kill ends a stream at once with SESSION_KILLED', async () => {
    const connect = await startConnect(hub.env, 'jit-dev');
    const held = await holdEchoSocket(connect.port, 'admin-standing-access');
    const sessions = await json<SessionView[]>(['sessions', 'list'], hub.env);
    const session = sessions.find((s) => s.principal === 'admin' && s.device === 'jit-dev');
    assert.ok(session, 'the admin stream is listed');
    assert.equal(session.grantId, null, 'admins hold standing access, not a grant');
    await refused(['sessions', 'kill', session.id], as(hub, op), 'FORBIDDEN', /needs the admin role/);
    await ok(['sessions', 'kill', session.id], hub.env);
    const killedAt = Date.now();
    const closedAt = await held.closedAt;
    assert.ok(closedAt - killedAt <= 1000 + SLACK_MS, `closed ${closedAt - killedAt} ms after the kill returned`);
    await waitFor(() => connect.stderr().includes('SESSION_KILLED'), 3000, 'the client to report the kill');
    assert.match(connect.stderr(), /SESSION_KILLED: the session was killed by admin/);
    await refused(['sessions', 'kill', session.id], hub.env, 'NOT_FOUND');
  });

  it('an approver cannot review their own request; another approver can deny it with a reason', async () => {
    const own = await requestAccess(as(hub, appr), 'jit-dev', '10m', 'firmware check');
    await refused(['access', 'approve', own.id], as(hub, appr), 'FORBIDDEN', /"appr" cannot review their own access request/);
    await refused(['access', 'deny', own.id, '--reason', 'no'], as(hub, appr), 'FORBIDDEN', /cannot review their own/);
    await refused(['access', 'approve', own.id], as(hub, op), 'FORBIDDEN', /needs the admin or approver role; "op" is operator/);
    await refused(['access', 'deny', own.id, '--reason', ''], as(hub, appr2), 'VALIDATION_FAILED');
    const denied = await json<AccessView>(['access', 'deny', own.id, '--reason', 'use the lab unit'], as(hub, appr2));
    assert.equal(denied.status, 'denied');
    assert.equal(denied.reviewNote, 'use the lab unit');
    await refused(['access', 'approve', own.id], hub.env, 'INVALID_STATE', /already denied/);
    await refused(['proxy', 'jit-dev'], as(hub, appr), 'NOT_AUTHORIZED');
  });

  it('refuses a duration above the maximum and an empty reason', async () => {
    await refused(['access', 'request', 'jit-dev', '--for', '9h', '--reason', 'long job'], as(hub, op), 'VALIDATION_FAILED', /maximum of 8h/);
    await refused(['access', 'request', 'jit-dev', '--for', '1h', '--reason', '   '], as(hub, op), 'VALIDATION_FAILED', /reason/);
    // The hub enforces both on its own, whatever the client does.
    const empty = await api(hub, op, 'POST', '/v1/access', { device: 'jit-dev', durationMs: 60_000, reason: '  ' });
    assert.equal(empty.status, 400);
    assert.match(empty.text, /VALIDATION_FAILED.*reason is required/);
    const tooLong = await api(hub, op, 'POST', '/v1/access', { device: 'jit-dev', durationMs: 9 * 3_600_000, reason: 'x' });
    assert.equal(tooLong.status, 400);
    assert.match(tooLong.text, /maximum of 8h/);
    await refused(['access', 'request', 'no-such-dev', '--for', '1h', '--reason', 'x'], as(hub, op), 'UNKNOWN_DEVICE');
  });

  it('access request --wait returns once someone else approves', async () => {
    const waiting = await spawnCli(['access', 'request', 'jit-dev', '--for', '15m', '--reason', 'waiting for review', '--wait'], { env: as(hub, op) });
    await waitFor(() => /request (ar_[0-9a-f]{16})/.test(waiting.stderr()), 10_000, 'the request id');
    const id = (/request (ar_[0-9a-f]{16})/.exec(waiting.stderr()) as RegExpExecArray)[1] as string;
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(waiting.child.exitCode, null, '--wait keeps waiting while the request is pending');
    await ok(['access', 'approve', id], as(hub, appr));
    await waitFor(() => waiting.child.exitCode !== null, 5000, '--wait to return');
    assert.equal(waiting.child.exitCode, 0, waiting.stderr());
    assert.match(waiting.stdout(), new RegExp(`${id}: approved by appr: access to jit-dev until`));
    await ok(['access', 'revoke', id], as(hub, op)); // the holder may give up their own grant
  });

  it('auto-approves by policy for env=lab devices up to the policy maximum only', async () => {
    const auto = await requestAccess(as(hub, op), 'lab-dev', '1h', 'lab calibration');
    assert.equal(auto.status, 'approved');
    assert.equal(auto.autoApproved, true);
    assert.equal(auto.reviewedBy, 'policy');
    assert.equal(auto.active, true);
    const proxy = await startEchoProxy(as(hub, op), 'lab-dev', 'lab-bytes\n');
    proxy.child.stdin?.end();
    const audited = await json<{ records: { actor: string; action: string; details: Record<string, unknown> }[] }>(
      ['audit', 'list', '--action', 'access.auto_approve', '--device', 'lab-dev'],
      hub.env,
    );
    assert.equal(audited.records.length, 1);
    assert.equal(audited.records[0]?.actor, 'policy');
    assert.equal(audited.records[0]?.details['request'], auto.id);

    const tooLong = await requestAccess(as(hub, op), 'lab-dev', '3h', 'long lab run');
    assert.equal(tooLong.status, 'pending', 'beyond the policy maximum a human must review');
    const untagged = await requestAccess(as(hub, op), 'jit-dev', '10m', 'not a lab device');
    assert.equal(untagged.status, 'pending', 'a device without the tag is not auto-approved');
    assert.equal(untagged.autoApproved, false);
  });

  it('a request nobody reviews expires after its TTL, and cannot be approved afterwards', async () => {
    const requested = await requestAccess(as(shortTtlHub, ttlOp), 'ttl-dev', '10m', 'weekend maintenance');
    assert.equal(requested.status, 'pending');
    assert.equal(Date.parse(requested.requestExpiresAt) - Date.parse(requested.createdAt), 2000);
    await waitFor(
      async () => (await json<AccessView>(['access', 'show', requested.id], shortTtlHub.env)).status === 'expired',
      8000,
      'the request to expire',
    );
    await refused(['access', 'approve', requested.id], shortTtlHub.env, 'INVALID_STATE', /expired/);
    const records = await json<{ records: { action: string; actor: string }[] }>(['audit', 'list', '--action', 'access.expire'], shortTtlHub.env);
    assert.deepEqual(records.records.map((r) => r.actor), ['hub']);
    await waitFor(() => eventsFor(requested.id).includes('access.expired'), 5000, 'the access.expired webhook');
  });

  it('fires signed webhooks for requested, approved, denied, expired and revoked', async () => {
    await waitFor(() => new Set(deliveries.map((d) => d.body.event)).size >= 5, 10_000, 'webhooks of every kind');
    const kinds = new Set(deliveries.map((d) => d.body.event));
    for (const kind of ['access.requested', 'access.approved', 'access.denied', 'access.expired', 'access.revoked']) {
      assert.ok(kinds.has(kind), `no ${kind} webhook; got ${[...kinds].join(', ')}`);
    }
    for (const d of deliveries) {
      assert.ok(signatureValid(WEBHOOK_SECRET, d.raw, d.headers['x-drawbridge-signature']), `bad signature on ${d.body.event}`);
      assert.equal(d.headers['x-drawbridge-event'], d.body.event);
      assert.equal(d.headers['content-type'], 'application/json');
      for (const token of [op, appr, appr2, ttlOp, hub.adminToken]) assert.ok(!d.raw.includes(token), 'a token leaked into a webhook');
    }
    assert.ok(!hub.stderr().includes(WEBHOOK_SECRET) && !shortTtlHub.stderr().includes(WEBHOOK_SECRET), 'the webhook secret is in a log');
    // The check can fail: a changed body or a wrong secret does not verify.
    const sample = deliveries[0] as Delivery;
    assert.ok(!signatureValid(WEBHOOK_SECRET, sample.raw.replace('"access.', '"axcess.'), sample.headers['x-drawbridge-signature']));
    assert.ok(!signatureValid('another-secret-0123456789', sample.raw, sample.headers['x-drawbridge-signature']));

    // An auto-approved request fires requested then approved, in order.
    const autoApproved = deliveries.find((d) => d.body.event === 'access.approved' && d.body.data.autoApproved);
    assert.ok(autoApproved, 'the auto-approval fired access.approved');
    assert.deepEqual(eventsFor(autoApproved.body.data.id), ['access.requested', 'access.approved']);
  });

  it('access list filters: --pending, --active, --mine', async () => {
    const pending = await json<AccessView[]>(['access', 'list', '--pending'], as(hub, appr));
    assert.ok(pending.length >= 2 && pending.every((r) => r.status === 'pending'));
    const active = await json<AccessView[]>(['access', 'list', '--active'], hub.env);
    assert.ok(active.length >= 1 && active.every((r) => r.active));
    const mine = await json<AccessView[]>(['access', 'list', '--mine'], as(hub, appr));
    assert.ok(mine.length >= 1 && mine.every((r) => r.principal === 'appr'));
    // An operator only ever sees their own requests.
    const opView = await json<AccessView[]>(['access', 'list'], as(hub, op));
    assert.ok(opView.length >= 1 && opView.every((r) => r.principal === 'op'));
    const text = await runCli(['access', 'list', '--pending'], { env: as(hub, appr) });
    assert.match(text.stdout, /^ID\s+PRINCIPAL\s+DEVICE\s+STATUS/);
  });
});
