/**
 * Principals, roles and tokens over HTTP: what each role may do and the refusal it gets
 * otherwise (a table per role), token rotation, user removal and device disable/enable
 * ending live streams within the spec's 1 s. The CLI's rendering of these lives in
 * test/e2e/cli.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { HubClient } from '../../src/client/hub-client.js';
import type { TunnelEvent } from '../../src/client/tunnel.js';
import type { AccessView, AuditView, DeviceView, UserView } from '../../src/protocol/api-types.js';
import type { AgentHandle } from '../../src/agent/agent.js';
import { secretOf } from '../helpers.js';
import { holdEchoSocket, refused, SLACK_MS, streamOutcome, tryStream, until } from './api-helpers.js';
import { rawRequest } from './raw-http.js';
import { echoServer, startHarness, type Harness } from './stream-harness.js';

type Call = [method: string, path: string, body: unknown, code: string, message: RegExp];

describe('roles, users and tokens', { timeout: 90_000 }, () => {
  let h: Harness;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let agent: AgentHandle;
  let op: { token: string; client: HubClient };
  let aud: { token: string; client: HubClient };

  const whoamiStatus = async (token: string): Promise<number | undefined> =>
    (await rawRequest(h.hub.port, h.hub.caPem, 'GET', '/v1/whoami', { authorization: `Bearer ${token}` }))?.status;
  const device = (name: string): Promise<DeviceView> => h.admin.request<DeviceView>('GET', `/v1/devices/${name}`);

  before(async () => {
    h = await startHarness();
    echo = await echoServer();
    agent = await h.startAgent(await h.enroll('role-dev', `127.0.0.1:${echo.port}`));
    [op, aud] = await Promise.all([h.user('op', 'operator'), h.user('aud', 'auditor')]);
  });

  after(async () => {
    await h?.close();
    await echo?.close();
  });

  it('a new user gets a token once; users lists never show it, and the hub stores only its hash', async () => {
    const added = await h.admin.request<{ name: string; role: string; token: string }>('POST', '/v1/users', { name: 'printed', role: 'approver' });
    assert.deepEqual({ name: added.name, role: added.role }, { name: 'printed', role: 'approver' });
    const whoami = await (await h.client(added.token)).request('GET', '/v1/whoami');
    assert.deepEqual(whoami, { name: 'printed', role: 'approver' });

    const { users } = await h.admin.request<{ users: UserView[] }>('GET', '/v1/users');
    assert.deepEqual(users.map((u) => `${u.name}:${u.role}`).sort(), ['admin:admin', 'aud:auditor', 'op:operator', 'printed:approver']);
    const tokens = [added.token, op.token, aud.token, h.hub.bootstrapAdminToken as string];
    for (const t of tokens) assert.ok(!JSON.stringify(users).includes(secretOf(t)), 'users list shows a token');
    assert.ok(users.every((u) => !('token' in u) && !('tokenHash' in u)));

    // No token secret is anywhere in the database files, only hashes.
    const files = ['drawbridge.db', 'drawbridge.db-wal'].map((f) => join(h.hub.dataDir, f)).filter(existsSync);
    const bytes = Buffer.concat(files.map((f) => readFileSync(f)));
    for (const t of tokens) assert.equal(bytes.indexOf(secretOf(t)), -1, 'a token secret is stored in clear');

    await refused(h.admin.request('POST', '/v1/users', { name: 'printed', role: 'operator' }), 'CONFLICT');
    await refused(h.admin.request('POST', '/v1/users', { name: 'bad', role: 'superuser' }), 'VALIDATION_FAILED', /body\.role/);
    await h.admin.request('DELETE', '/v1/users/printed');
  });

  it('an auditor reads audit, sessions, devices and users, changes nothing, and each refusal names the role needed', async () => {
    const c = aud.client;
    assert.ok((await c.request<{ records: unknown[] }>('GET', '/v1/audit')).records.length > 0);
    assert.equal((await c.request<{ ok: boolean }>('GET', '/v1/audit/verify')).ok, true);
    assert.ok(Array.isArray((await c.request<{ sessions: unknown[] }>('GET', '/v1/sessions')).sessions));
    assert.deepEqual((await c.request<{ devices: DeviceView[] }>('GET', '/v1/devices')).devices.map((d) => d.name), ['role-dev']);
    assert.equal((await c.request<DeviceView>('GET', '/v1/devices/role-dev')).online, true);
    assert.ok((await c.request<{ users: unknown[] }>('GET', '/v1/users')).users.length >= 3);

    const calls: Call[] = [
      ['POST', '/v1/devices', { name: 'sneaky' }, 'FORBIDDEN', /needs the admin role/],
      ['POST', '/v1/devices/role-dev/disable', undefined, 'FORBIDDEN', /needs the admin role/],
      ['DELETE', '/v1/devices/role-dev', undefined, 'FORBIDDEN', /"aud" is auditor/],
      ['POST', '/v1/users', { name: 'sneaky', role: 'admin' }, 'FORBIDDEN', /needs the admin role/],
      ['DELETE', '/v1/users/op', undefined, 'FORBIDDEN', /needs the admin role/],
      ['POST', '/v1/access/ar_0123456789abcdef/approve', {}, 'FORBIDDEN', /needs the admin or approver role/],
      ['POST', '/v1/access', { device: 'role-dev', durationMs: 3_600_000, reason: 'look' }, 'FORBIDDEN', /needs the admin, operator or approver role/],
      ['DELETE', `/v1/sessions/${'0'.repeat(32)}`, undefined, 'FORBIDDEN', /needs the admin role/],
      ['POST', '/v1/tokens/rotate', { name: 'op' }, 'FORBIDDEN', /rotating another user's token needs the admin role/],
    ];
    for (const [method, path, body, code, message] of calls) await refused(c.request(method, path, body), code, message, `${method} ${path}`);
    const stream = await streamOutcome(c, 'role-dev');
    assert.equal(stream.code, 'FORBIDDEN');
    assert.match(stream.message, /auditors cannot open streams/);

    // Nothing changed.
    const shown = await device('role-dev');
    assert.equal(shown.enabled, true);
    assert.deepEqual((await h.admin.request<{ devices: DeviceView[] }>('GET', '/v1/devices')).devices.map((d) => d.name), ['role-dev']);
    const byAuditor = await h.admin.request<{ records: AuditView[] }>('GET', '/v1/audit?actor=aud');
    assert.deepEqual(byAuditor.records, [], 'a refused action leaves no trace of a change');
  });

  it('an operator cannot administer, review or read the audit log, and opens no stream without a grant', async () => {
    const calls: Call[] = [
      ['POST', '/v1/devices', { name: 'sneaky' }, 'FORBIDDEN', /needs the admin role; "op" is operator/],
      ['GET', '/v1/users', undefined, 'FORBIDDEN', /needs the admin or auditor role/],
      ['GET', '/v1/audit', undefined, 'FORBIDDEN', /needs the admin or auditor role/],
      ['POST', '/v1/access/ar_0123456789abcdef/approve', {}, 'FORBIDDEN', /needs the admin or approver role/],
    ];
    for (const [method, path, body, code, message] of calls) await refused(op.client.request(method, path, body), code, message, `${method} ${path}`);
    const stream = await streamOutcome(op.client, 'role-dev');
    assert.equal(stream.code, 'NOT_AUTHORIZED');
    assert.match(stream.message, /no active grant/);
  });

  it('tokens rotate: the old token fails with 401 at once and the new one works', async () => {
    const rot = await h.user('rot', 'operator');
    const rotated = await h.admin.request<{ name: string; token: string }>('POST', '/v1/tokens/rotate', { name: 'rot' });
    assert.equal(rotated.name, 'rot');
    assert.notEqual(rotated.token, rot.token);
    const old = await rawRequest(h.hub.port, h.hub.caPem, 'GET', '/v1/whoami', { authorization: `Bearer ${rot.token}` });
    assert.equal(old?.status, 401);
    assert.match(old?.body ?? '', /UNAUTHENTICATED/);
    await refused(rot.client.request('GET', '/v1/devices'), 'UNAUTHENTICATED');
    const renewed = await h.client(rotated.token);
    assert.deepEqual(await renewed.request('GET', '/v1/whoami'), { name: 'rot', role: 'operator' });

    // Anyone may rotate their own token; an operator may not rotate someone else's.
    const own = await renewed.request<{ name: string; token: string }>('POST', '/v1/tokens/rotate', {});
    assert.equal(own.name, 'rot');
    assert.equal(await whoamiStatus(rotated.token), 401);
    assert.equal(await whoamiStatus(own.token), 200);
    await refused((await h.client(own.token)).request('POST', '/v1/tokens/rotate', { name: 'op' }), 'FORBIDDEN', /needs the admin role/);

    const { records } = await h.admin.request<{ records: AuditView[] }>('GET', '/v1/audit?action=token.rotate');
    assert.deepEqual(records.map((r) => `${r.actor}->${String(r.details['user'])}`), ['admin->rot', 'rot->rot']);
    assert.ok(!JSON.stringify(records).includes(secretOf(own.token)));
  });

  it('removing a user ends their open stream within 1 s, tells the client why, and their token stops working', async () => {
    const gone = await h.user('gone', 'operator');
    const request = await gone.client.request<AccessView>('POST', '/v1/access', { device: 'role-dev', durationMs: 1_800_000, reason: 'last job' });
    await h.admin.request('POST', `/v1/access/${request.id}/approve`, {});
    const pending = await gone.client.request<AccessView>('POST', '/v1/access', { device: 'role-dev', durationMs: 3_600_000, reason: 'next job' });
    const events: TunnelEvent[] = [];
    const tunnel = await h.tunnel(gone.client, 'role-dev', (e) => events.push(e));
    const held = await holdEchoSocket(tunnel.port, 'before-removal');

    await h.admin.request('DELETE', '/v1/users/gone');
    const removedAt = Date.now();
    const closedAt = await held.closedAt;
    assert.ok(closedAt - removedAt <= 1000 + SLACK_MS, `the stream closed ${closedAt - removedAt} ms after the removal returned`);
    await until(() => events.some((e) => e.error?.code === 'PRINCIPAL_REMOVED'), 'the client to be told why');
    assert.match(events.find((e) => e.error?.code === 'PRINCIPAL_REMOVED')?.error?.message ?? '', /access ended: user "gone" was removed/);
    assert.equal(await whoamiStatus(gone.token), 401);
    assert.ok(!(await h.admin.request<{ users: UserView[] }>('GET', '/v1/users')).users.some((u) => u.name === 'gone'));
    await refused(h.admin.request('DELETE', '/v1/users/admin'), 'INVALID_STATE', /last admin/);

    // The removed user's grant died with them: a new user given the same name inherits nothing.
    const shown = await h.admin.request<AccessView>('GET', `/v1/access/${request.id}`);
    assert.deepEqual({ status: shown.status, active: shown.active }, { status: 'revoked', active: false });
    assert.equal((await h.admin.request<AccessView>('GET', `/v1/access/${pending.id}`)).status, 'revoked', 'a pending request cannot be approved for a successor');
    const newcomer = await h.user('gone', 'operator');
    assert.equal(await tryStream(newcomer.client, 'role-dev'), 'NOT_AUTHORIZED');
  });

  it('a disabled device is unreachable and its stream ends within 1 s; once enabled its agent is back by itself', async () => {
    const events: TunnelEvent[] = [];
    const tunnel = await h.tunnel(h.admin, 'role-dev', (e) => events.push(e));
    const held = await holdEchoSocket(tunnel.port, 'before-disable');
    const connectsBefore = agent.status().find((d) => d.name === 'role-dev')?.connects ?? 0;

    const disabled = await h.admin.request<DeviceView>('POST', '/v1/devices/role-dev/disable');
    const disabledAt = Date.now();
    assert.equal(disabled.enabled, false);
    const closedAt = await held.closedAt;
    assert.ok(closedAt - disabledAt <= 1000 + SLACK_MS, `the stream closed ${closedAt - disabledAt} ms after the disable returned`);
    await until(() => events.some((e) => e.error?.code === 'DEVICE_DISABLED'), 'the client to be told why');
    // The device was detached from the agent's link (its neighbours keep the link): the agent knows why.
    await until(() => (agent.status().find((d) => d.name === 'role-dev')?.lastError ?? '').includes('DEVICE_DISABLED'), 'the agent told of the detach');
    assert.notEqual(agent.status().find((d) => d.name === 'role-dev')?.state, 'online');

    const refusedStream = await streamOutcome(h.admin, 'role-dev');
    assert.equal(refusedStream.code, 'DEVICE_DISABLED');
    assert.match(refusedStream.message, /"role-dev" is disabled/);
    const shown = await device('role-dev');
    assert.deepEqual({ enabled: shown.enabled, online: shown.online }, { enabled: false, online: false });

    await h.admin.request('POST', '/v1/devices/role-dev/enable');
    await until(async () => (await device('role-dev')).online, 'the agent back online', 20_000 + SLACK_MS);
    assert.equal(agent.status().find((d) => d.name === 'role-dev')?.state, 'online');
    assert.equal(agent.status().find((d) => d.name === 'role-dev')?.connects, connectsBefore + 1, 'the same agent attached it again');
    const again = await holdEchoSocket(tunnel.port, 'after-enable');
    again.socket.destroy();
  });
});
