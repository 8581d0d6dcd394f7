/**
 * Edges: the agent's own identity, one link for all of its virtual devices, and each device
 * still enabled, disabled, authenticated and replaced on its own.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { dump as stringifyYaml, load as parseYaml } from 'js-yaml';
import { enrollDevice } from '../../src/agent/enroll.js';
import type { HubClient } from '../../src/client/hub-client.js';
import type { DrawbridgeError } from '../../src/errors.js';
import type { DeviceView, EdgeView } from '../../src/protocol/api-types.js';
import { echoServer, startHarness, type Harness } from './stream-harness.js';

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function hold(client: HubClient, device: string): { opened: Promise<unknown>; result: Promise<{ errorCode?: string }>; end(): void } {
  const input = new PassThrough();
  const output = new PassThrough();
  output.resume();
  const stream = client.link().open(device, { input, output, destroy: () => input.destroy(), role: 'client' });
  stream.opened.catch(() => undefined);
  return { opened: stream.opened, result: stream.result, end: () => input.end() };
}

const device = (h: Harness, name: string): Promise<DeviceView> => h.admin.request<DeviceView>('GET', `/v1/devices/${name}`);

describe('edges', { timeout: 60_000 }, () => {
  let h: Harness;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let config: string;

  before(async () => {
    h = await startHarness();
    echo = await echoServer();
    config = await h.enroll('cell-a', `127.0.0.1:${echo.port}`, { edgeName: 'line-3' });
    await h.enroll('cell-b', `127.0.0.1:${echo.port}`, { configPath: config });
    await h.enroll('cell-c', `127.0.0.1:${echo.port}`, { configPath: config });
    await h.startAgent(config);
  });

  after(async () => {
    await h?.close();
    await echo?.close();
  });

  it('registers the edge at its first enrollment, with keys made on the edge, and lists its devices', async () => {
    const { edges } = await h.admin.request<{ edges: EdgeView[] }>('GET', '/v1/edges');
    assert.equal(edges.length, 1);
    const edge = edges[0] as EdgeView;
    assert.equal(edge.name, 'line-3');
    assert.deepEqual(edge.devices, ['cell-a', 'cell-b', 'cell-c']);
    assert.equal(edge.online, true);
    assert.equal(edge.devicesOnline, 3);
    const shown = await h.admin.request<{ signingKey: string; encryptionKey: string }>('GET', '/v1/edges/line-3');
    assert.ok(shown.signingKey.length > 40 && shown.encryptionKey.length > 40, 'public keys are shown');
    const keyDir = join(dirname(config), 'keys');
    for (const file of ['edge.key', 'edge-x25519.key']) {
      assert.equal(readFileSync(join(keyDir, file), 'utf8').includes('PRIVATE KEY'), true);
      assert.equal((await import('node:fs')).statSync(join(keyDir, file)).mode & 0o777, 0o600);
    }
    assert.ok(!JSON.stringify(shown).includes('PRIVATE'), 'no private key reaches the hub');
    assert.equal((await device(h, 'cell-b')).edge, 'line-3');
  });

  it('three devices share one link: the hub holds one edge connection', async () => {
    assert.equal(h.hub.services.registry.edgeCount, 1);
    assert.equal(h.hub.services.registry.size, 3);
  });

  it('disabling one device detaches only it; its neighbours keep their streams; enabling brings it back at once', async () => {
    const onA = hold(h.admin, 'cell-a');
    const onB = hold(h.admin, 'cell-b');
    await Promise.all([onA.opened, onB.opened]);
    await h.admin.request('POST', '/v1/devices/cell-a/disable');
    assert.equal((await onA.result).errorCode, 'DEVICE_DISABLED');
    assert.equal((await device(h, 'cell-a')).online, false);
    assert.equal((await device(h, 'cell-b')).online, true);
    const stillB = await Promise.race([onB.result.then(() => 'ended'), new Promise((r) => setTimeout(() => r('open'), 200))]);
    assert.equal(stillB, 'open', "the neighbour's stream was not touched");
    onB.end();
    const enabledAt = Date.now();
    await h.admin.request('POST', '/v1/devices/cell-a/enable');
    await until(async () => (await device(h, 'cell-a')).online, 'cell-a online again');
    assert.ok(Date.now() - enabledAt < 2000, 'the agent attached it on the hub\'s invitation, not on its slow retry');
  });

  it('another host cannot take a name that is in use: EDGE_NAME_TAKEN, and nothing is written', async () => {
    const { enrollmentToken } = await h.admin.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name: 'intruder' });
    const otherConfig = join(h.dir, 'other-host', 'agent.yaml');
    await assert.rejects(
      enrollDevice({ token: enrollmentToken, target: `127.0.0.1:${echo.port}`, configPath: otherConfig, edgeName: 'line-3' }),
      (e: DrawbridgeError) => e.code === 'EDGE_NAME_TAKEN',
    );
    assert.equal(existsSync(otherConfig), false);
    assert.equal((await device(h, 'intruder')).enrolled, false);
  });

  it('hosts that share a host name (cloned images) get numbered edge names unless one was chosen', async () => {
    const names: string[] = [];
    for (const device of ['clone-1', 'clone-2']) {
      const { enrollmentToken } = await h.admin.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name: device });
      const result = await enrollDevice({ token: enrollmentToken, target: `127.0.0.1:${echo.port}`, configPath: join(h.dir, device, 'agent.yaml') });
      names.push(result.edge.name);
    }
    assert.equal(names[1], `${names[0]}-2`);
  });

    it('re-enrolling a device on another edge ends the old key\'s attachment at once (DEVICE_REPLACED)', async () => {
    const held = hold(h.admin, 'cell-c');
    await held.opened;
    const { enrollmentToken } = await h.admin.request<{ enrollmentToken: string }>('POST', '/v1/devices/cell-c/enrollments', {});
    const movedConfig = join(h.dir, 'new-host', 'agent.yaml');
    await enrollDevice({ token: enrollmentToken, target: `127.0.0.1:${echo.port}`, configPath: movedConfig, edgeName: 'line-4' });
    assert.equal((await held.result).errorCode, 'DEVICE_REPLACED');
    assert.equal((await device(h, 'cell-c')).online, false);
    await h.startAgent(movedConfig);
    const shown = await device(h, 'cell-c');
    assert.equal(shown.online, true);
    assert.equal(shown.edge, 'line-4');
  });

  it('a device key that does not match is refused with the same error as an unknown device', async () => {
    const forged = join(h.dir, 'forged', 'agent.yaml');
    const { enrollmentToken } = await h.admin.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name: 'victim' });
    await enrollDevice({ token: enrollmentToken, target: `127.0.0.1:${echo.port}`, configPath: forged, edgeName: 'forger' });
    // Swap in a key the hub never saw, and add a device the hub does not know at all.
    writeFileSync(join(dirname(forged), 'keys', 'victim.key'), generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
    writeFileSync(join(dirname(forged), 'keys', 'ghost.key'), generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
    const parsed = parseYaml(readFileSync(forged, 'utf8')) as { devices: Record<string, unknown>[] };
    parsed.devices.push({ ...parsed.devices[0], name: 'ghost', keyFile: 'keys/ghost.key' });
    writeFileSync(forged, stringifyYaml(parsed));
    const agent = await h.startAgent(forged, { wait: false });
    await until(() => agent.status().every((d) => d.state === 'refused'), 'both refused');
    const errors = agent.status().map((d) => (d.lastError ?? '').replace(d.name, 'NAME'));
    assert.equal(errors[0], errors[1], 'one error for a wrong key and an unknown device');
    assert.match(errors[0] as string, /^DEVICE_KEY_INVALID/);
    assert.equal((await device(h, 'victim')).online, false);
  });

  it("an edge behind an address others failed from is not refused (a site's NAT)", async () => {
    const { HubClient } = await import('../../src/client/hub-client.js');
    const stranger = await HubClient.connect({ hubUrl: h.hub.url, token: 'dbp_0123456789abcdef_' + 'A'.repeat(43), caPin: h.hub.caPin }, { cacheDir: join(h.dir, 'stranger-ca') });
    let limited = false;
    for (let i = 0; i < 40 && !limited; i++) {
      await stranger.request('GET', '/v1/devices').catch((e: DrawbridgeError) => (limited = e.code === 'RATE_LIMITED'));
    }
    stranger.close();
    assert.ok(limited, 'the address is over its failure budget');
    const config = await h.enroll('behind-nat', `127.0.0.1:${echo.port}`, { edgeName: 'nat-site' });
    await h.startAgent(config);
    assert.equal((await device(h, 'behind-nat')).online, true);
  });

    it('disabling an edge ends its link and every stream of its devices, and refuses it', async () => {
    const held = hold(h.admin, 'cell-b');
    await held.opened;
    await h.admin.request('POST', '/v1/edges/line-3/disable');
    const ended = await held.result;
    assert.ok(['EDGE_DISABLED', 'EDGE_DISCONNECTED'].includes(String(ended.errorCode)), String(ended.errorCode));
    assert.equal((await device(h, 'cell-a')).online, false);
    assert.equal((await device(h, 'cell-b')).online, false);
    const { edges } = await h.admin.request<{ edges: EdgeView[] }>('GET', '/v1/edges');
    assert.equal(edges.find((e) => e.name === 'line-3')?.enabled, false);
  });

  it('removing an edge forgets its keys: its devices stay registered but are no longer enrolled', async () => {
    const removed = await h.admin.request<{ devicesUnenrolled: string[] }>('DELETE', '/v1/edges/line-3');
    assert.deepEqual(removed.devicesUnenrolled.sort(), ['cell-a', 'cell-b']);
    const a = await device(h, 'cell-a');
    assert.equal(a.enrolled, false);
    assert.equal(a.edge, null);
    await assert.rejects(h.admin.request('GET', '/v1/edges/line-3'), (e: DrawbridgeError) => e.code === 'UNKNOWN_EDGE');
  });
});
