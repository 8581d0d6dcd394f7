/**
 * Principals, roles and tokens with real processes: what each role may do and the refusal
 * it gets otherwise, token rotation, user removal and device disable/enable ending live
 * streams within the spec's 1 s.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  addDeviceWithAgent,
  cleanup,
  runCli,
  secretOf,
  startConnect,
  startEchoServer,
  startHubProcess,
  waitFor,
  type HubProcess,
} from './helpers.js';
import { addUser, api, as, holdEchoSocket, json, ok, refused, SLACK_MS, timeWhen } from './jit-helpers.js';
import type { DeviceView } from '../src/protocol/api-types.js';



describe('roles, users and tokens', () => {
  let hub: HubProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let agent: Awaited<ReturnType<typeof addDeviceWithAgent>>['agent'];
  let op: string;
  let aud: string;

  before(async () => {
    [hub, echo] = await Promise.all([startHubProcess(), startEchoServer()]);
    ({ agent } = await addDeviceWithAgent(hub, 'role-dev', `127.0.0.1:${echo.port}`));
    [op, aud] = await Promise.all([addUser(hub, 'op', 'operator'), addUser(hub, 'aud', 'auditor')]);
  });

  after(async () => {
    await cleanup();
    await echo?.close();
  });

  it('users add prints the token once, users list never shows it, and the hub stores only its hash', async () => {
    const added = await ok(['users', 'add', 'printed', '--role', 'approver'], hub.env);
    const token = /(dbp_[0-9a-f]+_[A-Za-z0-9_-]+)/.exec(added.stdout)?.[1];
    assert.ok(token, `no token in: ${added.stdout}`);
    assert.match(added.stdout, /shown once/);
    const whoami = await api(hub, token, 'GET', '/v1/whoami');
    assert.deepEqual(whoami.body, { name: 'printed', role: 'approver' });

    const listed = await json<Record<string, unknown>[]>(['users', 'list'], hub.env);
    assert.deepEqual(listed.map((u) => `${String(u['name'])}:${String(u['role'])}`).sort(), ['admin:admin', 'aud:auditor', 'op:operator', 'printed:approver']);
    const text = JSON.stringify(listed);
    for (const t of [token, op, aud, hub.adminToken]) assert.ok(!text.includes(secretOf(t)), 'users list shows a token');
    assert.ok(listed.every((u) => !('token' in u) && !('tokenHash' in u)));

    // No token secret is anywhere in the database files, only hashes.
    const files = ['drawbridge.db', 'drawbridge.db-wal'].map((f) => join(hub.dataDir, f)).filter(existsSync);
    const bytes = Buffer.concat(files.map((f) => readFileSync(f)));
    for (const t of [token, op, aud, hub.adminToken]) assert.equal(bytes.indexOf(secretOf(t)), -1, 'a token secret is stored in clear');

    await refused(['users', 'add', 'printed', '--role', 'operator'], hub.env, 'CONFLICT');
    await refused(['users', 'add', 'bad', '--role', 'superuser'], hub.env, 'VALIDATION_FAILED', /invalid role/);
    await ok(['users', 'remove', 'printed'], hub.env);
  });

  it('an auditor reads audit, sessions and devices, changes nothing, and each refusal names the role needed', async () => {
    const env = as(hub, aud);
    assert.ok((await json<{ records: unknown[] }>(['audit', 'list'], env)).records.length > 0);
    await ok(['audit', 'verify'], env);
    assert.ok(Array.isArray(await json<unknown[]>(['sessions', 'list'], env)));
    assert.deepEqual((await json<DeviceView[]>(['devices', 'list'], env)).map((d) => d.name), ['role-dev']);
    assert.equal((await json<DeviceView>(['devices', 'show', 'role-dev'], env)).online, true);
    await ok(['users', 'list'], env);

    const isAuditor = /"aud" is auditor/;
    await refused(['devices', 'add', 'sneaky'], env, 'FORBIDDEN', /needs the admin role/);
    await refused(['devices', 'disable', 'role-dev'], env, 'FORBIDDEN', /needs the admin role/);
    await refused(['devices', 'remove', 'role-dev'], env, 'FORBIDDEN', isAuditor);
    await refused(['users', 'add', 'sneaky', '--role', 'admin'], env, 'FORBIDDEN', /needs the admin role/);
    await refused(['users', 'remove', 'op'], env, 'FORBIDDEN', /needs the admin role/);
    await refused(['access', 'approve', 'ar_0123456789abcdef'], env, 'FORBIDDEN', /needs the admin or approver role/);
    await refused(['access', 'request', 'role-dev', '--for', '1h', '--reason', 'look'], env, 'FORBIDDEN', /needs the admin, operator or approver role/);
    await refused(['sessions', 'kill', '0'.repeat(32)], env, 'FORBIDDEN', /needs the admin role/);
    await refused(['tokens', 'rotate', 'op'], env, 'FORBIDDEN', /rotating another user's token needs the admin role/);
    await refused(['proxy', 'role-dev'], env, 'FORBIDDEN', /auditors cannot open streams/);

    // Nothing changed.
    const device = await json<DeviceView>(['devices', 'show', 'role-dev'], hub.env);
    assert.equal(device.enabled, true);
    assert.deepEqual((await json<DeviceView[]>(['devices', 'list'], hub.env)).map((d) => d.name), ['role-dev']);
    const byAuditor = await json<{ records: { action: string }[] }>(['audit', 'list', '--actor', 'aud'], hub.env);
    assert.deepEqual(byAuditor.records, [], 'a refused action leaves no trace of a change');
  });

  it('an operator cannot administer, review or read the audit log', async () => {
    const env = as(hub, op);
    await refused(['devices', 'add', 'sneaky'], env, 'FORBIDDEN', /needs the admin role; "op" is operator/);
    await refused(['users', 'list'], env, 'FORBIDDEN', /needs the admin or auditor role/);
    await refused(['audit', 'list'], env, 'FORBIDDEN', /needs the admin or auditor role/);
    await refused(['access', 'approve', 'ar_0123456789abcdef'], env, 'FORBIDDEN', /needs the admin or approver role/);
    await refused(['proxy', 'role-dev'], env, 'NOT_AUTHORIZED', /no active grant/);
  });

  it('tokens rotate: the old token fails with 401 at once and the new one works', async () => {
    const rotUser = await addUser(hub, 'rot', 'operator');
    const rotated = await json<{ name: string; token: string }>(['tokens', 'rotate', 'rot'], hub.env);
    assert.equal(rotated.name, 'rot');
    assert.notEqual(rotated.token, rotUser);
    const old = await api(hub, rotUser, 'GET', '/v1/whoami');
    assert.equal(old.status, 401);
    assert.match(old.text, /UNAUTHENTICATED/);
    await refused(['devices', 'list'], as(hub, rotUser), 'UNAUTHENTICATED');
    assert.deepEqual((await api(hub, rotated.token, 'GET', '/v1/whoami')).body, { name: 'rot', role: 'operator' });

    // Anyone may rotate their own token; an operator may not rotate someone else's.
    const own = await json<{ name: string; token: string }>(['tokens', 'rotate'], as(hub, rotated.token));
    assert.equal(own.name, 'rot');
    assert.equal((await api(hub, rotated.token, 'GET', '/v1/whoami')).status, 401);
    assert.equal((await api(hub, own.token, 'GET', '/v1/whoami')).status, 200);
    await refused(['tokens', 'rotate', 'op'], as(hub, own.token), 'FORBIDDEN', /needs the admin role/);

    const records = await json<{ records: { actor: string; details: Record<string, unknown> }[] }>(['audit', 'list', '--action', 'token.rotate'], hub.env);
    assert.deepEqual(records.records.map((r) => `${r.actor}->${String(r.details['user'])}`), ['admin->rot', 'rot->rot']);
    assert.ok(!JSON.stringify(records).includes(secretOf(own.token)));
  });

  it('removing a user ends their open stream within 1 s and their token stops working', async () => {
    const gone = await addUser(hub, 'gone', 'operator');
    const request = await json<{ id: string }>(['access', 'request', 'role-dev', '--for', '30m', '--reason', 'last job'], as(hub, gone));
    await ok(['access', 'approve', request.id], hub.env);
    const pending = await json<{ id: string }>(['access', 'request', 'role-dev', '--for', '1h', '--reason', 'next job'], as(hub, gone));
    const connect = await startConnect(as(hub, gone), 'role-dev');
    const held = await holdEchoSocket(connect.port, 'before-removal');

    await ok(['users', 'remove', 'gone'], hub.env);
    const removedAt = Date.now();
    const closedAt = await held.closedAt;
    assert.ok(closedAt - removedAt <= 1000 + SLACK_MS, `the stream closed ${closedAt - removedAt} ms after the removal returned`);
    await waitFor(() => connect.stderr().includes('PRINCIPAL_REMOVED'), 3000, 'the client to say why');
    assert.match(connect.stderr(), /PRINCIPAL_REMOVED: access ended: user "gone" was removed/);
    assert.equal((await api(hub, gone, 'GET', '/v1/whoami')).status, 401);
    assert.ok(!(await json<{ name: string }[]>(['users', 'list'], hub.env)).some((u) => u.name === 'gone'));
    await refused(['users', 'remove', 'admin'], hub.env, 'INVALID_STATE', /last admin/);

    // The removed user's grant died with them: a new user given the same name inherits nothing.
    const shown = await json<{ status: string; active: boolean }>(['access', 'show', request.id], hub.env);
    assert.deepEqual({ status: shown.status, active: shown.active }, { status: 'revoked', active: false });
    assert.equal((await json<{ status: string }>(['access', 'show', pending.id], hub.env)).status, 'revoked', 'a pending request cannot be approved for a successor');
    const newcomer = await addUser(hub, 'gone', 'operator');
    await refused(['proxy', 'role-dev'], as(hub, newcomer), 'NOT_AUTHORIZED');
  });

  it('a disabled device is unreachable and its stream ends within 1 s; once enabled its agent is back within 20 s by itself', async (t) => {
    const edge = agent;
    assert.ok(edge, 'the agent runs');
    const connect = await startConnect(hub.env, 'role-dev');
    const held = await holdEchoSocket(connect.port, 'before-disable');
    const agentLogBefore = edge.stderr().length;

    const disabled = await json<DeviceView>(['devices', 'disable', 'role-dev'], hub.env);
    const disabledAt = Date.now();
    assert.equal(disabled.enabled, false);
    const closedAt = await held.closedAt;
    assert.ok(closedAt - disabledAt <= 1000 + SLACK_MS, `the stream closed ${closedAt - disabledAt} ms after the disable returned`);
    await waitFor(() => connect.stderr().includes('DEVICE_DISABLED'), 3000, 'the client to say why');
    // The device was detached from the agent's link (its neighbours keep the link): the agent logged it.
    await waitFor(() => edge.stderr().slice(agentLogBefore).includes('"the hub detached the device"'), 3000, 'the agent told of the detach');
    const detached = edge.stderr().slice(agentLogBefore).split('\n').find((l) => l.includes('"the hub detached the device"')) as string;
    assert.match(detached, /"errorCode":"DEVICE_DISABLED"/);
    const detachedAt = (JSON.parse(detached) as { time: number }).time;
    assert.ok(detachedAt - disabledAt <= 1000 + SLACK_MS, `the device was detached ${detachedAt - disabledAt} ms after the disable returned`);

    await refused(['proxy', 'role-dev'], hub.env, 'DEVICE_DISABLED', /"role-dev" is disabled/);
    const shown = await json<DeviceView>(['devices', 'show', 'role-dev'], hub.env);
    assert.deepEqual({ enabled: shown.enabled, online: shown.online }, { enabled: false, online: false });

    await ok(['devices', 'enable', 'role-dev'], hub.env);
    const enabledAt = Date.now();
    const onlineAt = await timeWhen(() => edge.stderr().slice(agentLogBefore).includes('"device online"'), 20_000 + SLACK_MS, 'the agent back online');
    t.diagnostic(`agent back online ${onlineAt - enabledAt} ms after enable`);
    assert.equal((await json<DeviceView>(['devices', 'show', 'role-dev'], hub.env)).online, true);
    const again = await holdEchoSocket(connect.port, 'after-enable');
    again.socket.destroy();
    assert.equal(edge.child.exitCode, null, 'the agent was never restarted');
  });

  it('users list shows a token-free table', async () => {
    const result = await runCli(['users', 'list'], { env: hub.env });
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^NAME\s+ROLE\s+CREATED\s+TOKEN ISSUED/);
    assert.ok(!result.stdout.includes(secretOf(hub.adminToken)));
  });
});
