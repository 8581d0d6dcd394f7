/**
 * Device management and the hub's files and HTTP surface, in process: the admin token and
 * CA on disk, registering, listing, showing, disabling, enabling and removing devices, the
 * agent's config and key files, a tunnel to a device that goes away, and /healthz,
 * /v1/openapi.json and /metrics. The binary's rendering of these, and curl's view of the
 * TLS, live in test/e2e/cli.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, isAbsolute, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { load as parseYaml } from 'js-yaml';
import type { TunnelEvent } from '../../src/client/tunnel.js';
import type { DeviceView } from '../../src/protocol/api-types.js';
import { VERSION } from '../../src/version.js';
import { hubRequest, type HubProcess } from '../helpers.js';
import { holdEchoSocket, hubTarget, refused, streamOutcome, until } from './api-helpers.js';
import { echoServer, startHarness, type Harness } from './stream-harness.js';

const mode = (path: string): number => statSync(path).mode & 0o777;

describe('devices, files and the HTTP surface', { timeout: 60_000 }, () => {
  let h: Harness;
  let hub: HubProcess;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let agentConfig: string;

  const devices = async (): Promise<DeviceView[]> => (await h.admin.request<{ devices: DeviceView[] }>('GET', '/v1/devices')).devices;
  const device = async (name: string): Promise<DeviceView | undefined> => (await devices()).find((d) => d.name === name);

  before(async () => {
    h = await startHarness();
    hub = hubTarget(h);
    echo = await echoServer();
    agentConfig = await h.enroll('plc-7-ssh', `127.0.0.1:${echo.port}`, { tags: { site: 'lab', line: '7' } });
    await h.startAgent(agentConfig);
  });

  after(async () => {
    await h?.close();
    await echo?.close();
  });

  it('keeps the admin token at mode 0600 and a CA whose pin is the one advertised', () => {
    assert.equal(mode(join(h.hub.dataDir, 'admin.token')), 0o600);
    const caPath = join(h.hub.dataDir, 'ca.pem');
    assert.ok(existsSync(caPath));
    const der = new X509Certificate(readFileSync(caPath)).raw;
    assert.equal(`sha256:${createHash('sha256').update(der).digest('hex')}`, h.hub.caPin);
  });

  it('registering a device answers exactly name, enrollmentToken and expiresAt; a second one of the name is a conflict', async () => {
    const added = await h.admin.request<Record<string, string>>('POST', '/v1/devices', { name: 'plc-8-web', tags: { site: 'lab' }, enrollmentTtlMs: 600_000 });
    assert.deepEqual(Object.keys(added).sort(), ['enrollmentToken', 'expiresAt', 'name']);
    assert.equal(added['name'], 'plc-8-web');
    assert.ok((added['enrollmentToken'] ?? '').length > 20);
    const expiresInMs = Date.parse(added['expiresAt'] ?? '') - Date.now();
    assert.ok(expiresInMs > 8 * 60_000 && expiresInMs <= 10 * 60_000, `expiresAt ${added['expiresAt']} is about 10 minutes away`);
    await refused(h.admin.request('POST', '/v1/devices', { name: 'plc-8-web' }), 'CONFLICT');
  });

  it('lists the enrolled device online with its details', async () => {
    const listed = await device('plc-7-ssh');
    assert.ok(listed);
    assert.deepEqual(listed.tags, { site: 'lab', line: '7' });
    assert.equal(listed.enabled, true);
    assert.equal(listed.online, true);
    assert.ok(listed.lastSeenAt && !Number.isNaN(Date.parse(listed.lastSeenAt)), `lastSeenAt ${listed.lastSeenAt}`);
    assert.equal(listed.agentVersion, VERSION);
    assert.match(listed.remoteAddress ?? '', /127\.0\.0\.1/);
    assert.equal((await device('plc-8-web'))?.online, false);
  });

  it('lists devices a page at a time, by name, at most 500 a page', async () => {
    for (const name of ['page-a', 'page-b', 'page-c']) await h.admin.request('POST', '/v1/devices', { name });
    const all = (await devices()).map((d) => d.name);
    const paged: string[] = [];
    for (let after: string | null = ''; after !== null; ) {
      const page: { devices: DeviceView[]; next: string | null } = await h.admin.request('GET', `/v1/devices?limit=2${after ? `&after=${after}` : ''}`);
      assert.ok(page.devices.length <= 2);
      paged.push(...page.devices.map((d) => d.name));
      after = page.next;
    }
    assert.deepEqual(paged, all);
    assert.deepEqual(all, [...all].sort());
    await refused(h.admin.request('GET', '/v1/devices?limit=501'), 'VALIDATION_FAILED', /query\.limit/);
    for (const name of ['page-a', 'page-b', 'page-c']) await h.admin.request('DELETE', `/v1/devices/${name}`);
  });

  it('shows, disables, enables and removes a device', async () => {
    assert.equal((await h.admin.request<DeviceView>('GET', '/v1/devices/plc-7-ssh')).name, 'plc-7-ssh');
    const disabled = await h.admin.request<DeviceView>('POST', '/v1/devices/plc-7-ssh/disable');
    assert.equal(disabled.enabled, false);
    assert.equal((await device('plc-7-ssh'))?.enabled, false);
    // Disabling ends the link at once.
    await until(async () => (await device('plc-7-ssh'))?.online === false, 'the disabled device offline');
    assert.equal((await streamOutcome(h.admin, 'plc-7-ssh')).code, 'DEVICE_DISABLED');

    await h.admin.request('POST', '/v1/devices/plc-7-ssh/enable');
    // The agent comes back by itself.
    await until(async () => (await device('plc-7-ssh'))?.online === true, 'the enabled device online again', 20_000);
    const tunnel = await h.tunnel(h.admin, 'plc-7-ssh');
    (await holdEchoSocket(tunnel.port, 'after-enable')).socket.end();

    await h.admin.request('POST', '/v1/devices', { name: 'short-lived' });
    assert.deepEqual(await h.admin.request('DELETE', '/v1/devices/short-lived'), { name: 'short-lived', removed: true });
    assert.equal(await device('short-lived'), undefined);
    await refused(h.admin.request('GET', '/v1/devices/short-lived'), 'UNKNOWN_DEVICE');
  });

  it("keeps the agent's key at mode 0600 and a valid YAML config listing the device", () => {
    const config = parseYaml(readFileSync(agentConfig, 'utf8')) as { devices: { name: string; target: string; keyFile: string; caPin: string; hubUrl: string }[] };
    const entry = config.devices.find((d) => d.name === 'plc-7-ssh');
    assert.ok(entry, readFileSync(agentConfig, 'utf8'));
    assert.equal(entry.target, `127.0.0.1:${echo.port}`);
    assert.equal(entry.caPin, h.hub.caPin);
    assert.equal(entry.hubUrl, h.hub.url);
    const keyPath = isAbsolute(entry.keyFile) ? entry.keyFile : join(dirname(agentConfig), entry.keyFile);
    assert.equal(mode(keyPath), 0o600);
    assert.match(readFileSync(keyPath, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
  });

  it('a tunnel to a device that goes away reports UNKNOWN_DEVICE per connection and closes it without data', async () => {
    await h.admin.request('POST', '/v1/devices', { name: 'going-away' });
    const events: TunnelEvent[] = [];
    const tunnel = await h.tunnel(h.admin, 'going-away', (e) => events.push(e));
    await h.admin.request('DELETE', '/v1/devices/going-away');
    const socket = connect({ host: '127.0.0.1', port: tunnel.port });
    socket.on('error', () => undefined);
    const received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    await new Promise((resolve) => socket.once('close', resolve));
    assert.equal(Buffer.concat(received).length, 0);
    await until(() => events.some((e) => e.error?.code === 'UNKNOWN_DEVICE'), 'UNKNOWN_DEVICE for the connection');
    assert.match(events.find((e) => e.error?.code === 'UNKNOWN_DEVICE')?.error?.message ?? '', /going-away/);
  });

  it('serves /healthz (details for admins only), /v1/openapi.json and /metrics (with a token)', async () => {
    const health = await hubRequest(hub, 'GET', '/healthz', { token: null });
    assert.deepEqual(health.json, { status: 'ok' });
    const adminHealth = await hubRequest(hub, 'GET', '/healthz');
    assert.equal((adminHealth.json as { version: string }).version, VERSION);

    const openapi = await hubRequest(hub, 'GET', '/v1/openapi.json', { token: null });
    const doc = openapi.json as { openapi: string; paths: Record<string, unknown> };
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths['/v1/devices'], `paths: ${Object.keys(doc.paths).join(', ')}`);

    // One stream first, so the stream metrics have samples.
    const tunnel = await h.tunnel(h.admin, 'plc-7-ssh');
    (await holdEchoSocket(tunnel.port, 'metrics')).socket.end();
    assert.equal((await hubRequest(hub, 'GET', '/metrics', { token: null })).status, 401, '/metrics needs a token by default');
    const metrics = await hubRequest(hub, 'GET', '/metrics');
    assert.equal(metrics.status, 200);
    for (const name of ['drawbridge_connected_devices', 'drawbridge_active_streams', 'drawbridge_bytes_relayed_total', 'drawbridge_stream_setup_seconds', 'drawbridge_auth_failures_total']) {
      assert.match(metrics.text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} in /metrics`);
    }
    assert.match(metrics.text, /^drawbridge_connected_devices 1$/m);
    await until(async () => /^drawbridge_bytes_relayed_total\{[^}]*\} [1-9]/m.test((await hubRequest(hub, 'GET', '/metrics')).text), 'bytes counted');
  });
});
