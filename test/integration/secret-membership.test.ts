/**
 * Who may hold a secret changes with devices and edges too, not only with the vault's own
 * rules: a device removed, enrolled, enrolled again elsewhere, disabled or enabled, an edge
 * disabled or removed. Each change reaches the connected edges it concerns at once, over the
 * link they already have (asserted: the hub's connection object stays the same, so nothing
 * waited for a reconnect).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AgentHandle } from '../../src/agent/agent.js';
import type { AuditView } from '../../src/protocol/api-types.js';
import { holds, secretPath, startVaultWorld, until, type VaultWorld } from './vault-harness.js';

describe('secret entitlements follow devices and edges', { timeout: 120_000 }, () => {
  let w: VaultWorld;
  const agents = new Map<string, AgentHandle>();

  before(async () => {
    w = await startVaultWorld();
  });
  after(async () => w?.close());

  /** An edge with its devices (the first one names the edge), its agent running and synced. */
  async function edgeWith(edgeName: string, devices: { name: string; tags?: Record<string, string> }[]): Promise<{ config: string; agent: AgentHandle }> {
    const [first, ...rest] = devices;
    if (!first) throw new Error('an edge needs a device');
    const config = await w.enroll(first.name, { edgeName, tags: first.tags ?? {} });
    for (const device of rest) await w.enroll(device.name, { configPath: config, tags: device.tags ?? {} });
    const agent = await w.startAgent(config);
    await agent.waitOnline();
    await until(() => w.connectionOf(edgeName) !== undefined, `${edgeName} online`);
    agents.set(edgeName, agent);
    return { config, agent };
  }

  const allow = (name: string, target: Record<string, string>): Promise<unknown> => w.call('POST', secretPath(name, '/allow'), target);
  const audit = async (action: string): Promise<AuditView[]> => (await w.call<{ records: AuditView[] }>('GET', `/v1/audit?action=${action}&limit=1000`)).records;

  it('a device removed takes away the secret its allow alone gave the edge; what the edge holds for another reason stays', async () => {
    const { agent } = await edgeWith('edge-r', [{ name: 'r-1' }, { name: 'r-2' }]);
    await w.put('r/by-device', 'r-device-secret-1f');
    await w.put('r/by-edge', 'r-edge-secret-2e');
    await allow('r/by-device', { device: 'r-1' });
    await allow('r/by-edge', { edge: 'edge-r' });
    await holds(agent, 'r/by-device', 1);
    await holds(agent, 'r/by-edge', 1);
    const link = w.connectionOf('edge-r');

    await w.call('DELETE', '/v1/devices/r-1');
    await holds(agent, 'r/by-device', undefined);
    assert.equal(agent.secrets.get('r/by-edge')?.version, 1);
    assert.equal(w.connectionOf('edge-r'), link, 'pushed over the same link, not at a reconnect');
    // The hub records the removal once the edge's answer is back.
    await until(async () => (await audit('secret.remove')).some((r) => r.details['secret'] === 'r/by-device' && r.details['edge'] === 'edge-r'), 'the removal recorded');
    await until(async () => (await w.status('r/by-device')).edges.length === 0, 'status without edge-r');

    // A device added again under the removed one's name inherits nothing from it.
    const configR3 = await w.enroll('r-3', { edgeName: 'edge-r3' });
    await w.enroll('r-1', { configPath: configR3 });
    const r3 = await w.startAgent(configR3);
    await r3.waitOnline();
    await w.put('r/sync', 'r-sync-secret-3d');
    await allow('r/sync', { device: 'r-1' });
    await holds(r3, 'r/sync', 1);
    assert.equal(r3.secrets.get('r/by-device'), undefined, 'the old device rule does not reach the new device');
  });

  it('a device newly enrolled on an edge brings the secrets its tags allow, at once', async () => {
    const { config, agent } = await edgeWith('edge-n', [{ name: 'n-1', tags: { line: 'a' } }]);
    await w.put('n/line-b', 'n-line-b-secret-4c');
    await allow('n/line-b', { tag: 'line=b' });
    const link = w.connectionOf('edge-n');
    await w.enroll('n-2', { configPath: config, tags: { line: 'b' } });
    await holds(agent, 'n/line-b', 1);
    assert.equal(w.connectionOf('edge-n'), link, 'pushed over the same link');
  });

  it('a device enrolled again on another edge takes its secrets there and away from the old edge', async () => {
    const one = await edgeWith('edge-m1', [{ name: 'm-roaming' }, { name: 'm-1' }]);
    const two = await edgeWith('edge-m2', [{ name: 'm-2' }]);
    await w.put('m/roaming', 'm-roaming-secret-5b');
    await allow('m/roaming', { device: 'm-roaming' });
    await holds(one.agent, 'm/roaming', 1);
    const links = [w.connectionOf('edge-m1'), w.connectionOf('edge-m2')];
    await w.enrollAgain('m-roaming', two.config);
    await holds(two.agent, 'm/roaming', 1);
    await holds(one.agent, 'm/roaming', undefined);
    assert.deepEqual([w.connectionOf('edge-m1'), w.connectionOf('edge-m2')], links, 'both pushed over the links they had');
    await until(async () => (await w.status('m/roaming')).edges.map((e) => `${e.edge}@${e.version}`).join() === 'edge-m2@1', 'status to show only edge-m2');
  });

  it('a disabled device pauses its secrets: the edge keeps the version it holds and gets nothing newer until the device is enabled; a deny still removes', async () => {
    const { agent } = await edgeWith('edge-d', [{ name: 'd-1' }, { name: 'd-2' }]);
    await w.put('d/by-device', 'd-secret-v1-6a');
    await w.put('d/sync', 'd-sync-v1');
    await allow('d/by-device', { device: 'd-1' });
    await allow('d/sync', { edge: 'edge-d' });
    await holds(agent, 'd/by-device', 1);
    await holds(agent, 'd/sync', 1);
    const link = w.connectionOf('edge-d');

    await w.call('POST', '/v1/devices/d-1/disable');
    await w.put('d/by-device', 'd-secret-v2-6a');
    // A later change to the same edge, delivered: the plan for v2 ran before it.
    await w.put('d/sync', 'd-sync-v2');
    await holds(agent, 'd/sync', 2);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(agent.secrets.get('d/by-device')?.version, 1, 'kept, and nothing newer delivered');
    assert.ok(!(await audit('secret.deliver')).some((r) => r.details['secret'] === 'd/by-device' && r.details['version'] === 2));
    const paused = (await w.status('d/by-device')).edges.find((e) => e.edge === 'edge-d');
    assert.deepEqual([paused?.allowed, paused?.paused, paused?.version, paused?.wantedVersion], [false, true, 1, 1]);

    await w.call('POST', '/v1/devices/d-1/enable');
    await holds(agent, 'd/by-device', 2);

    await w.call('POST', '/v1/devices/d-1/disable');
    await w.call('POST', secretPath('d/by-device', '/deny'), { device: 'd-1' });
    await holds(agent, 'd/by-device', undefined);
    assert.equal(w.connectionOf('edge-d'), link, 'every change went over the same link');
  });

  it('a disabled edge keeps its encrypted cache and receives nothing; enabled again, its next link-up brings it up to date', async () => {
    const { config, agent } = await edgeWith('edge-e', [{ name: 'e-1' }]);
    await w.put('e/by-edge', 'e-secret-v1-7f');
    await allow('e/by-edge', { edge: 'edge-e' });
    await holds(agent, 'e/by-edge', 1);

    await w.call('POST', '/v1/edges/edge-e/disable');
    await until(() => w.connectionOf('edge-e') === undefined, 'edge-e disconnected');
    await w.put('e/by-edge', 'e-secret-v2-7f');
    assert.equal(agent.secrets.get('e/by-edge')?.version, 1, 'the cache is kept: apps keep working');
    const entry = (await w.status('e/by-edge')).edges.find((e) => e.edge === 'edge-e');
    assert.deepEqual([entry?.allowed, entry?.paused, entry?.online, entry?.wantedVersion], [false, true, false, 1]);

    await w.call('POST', '/v1/edges/edge-e/enable');
    // The agent retries a refused edge only every minute: restart it rather than wait.
    await agent.close();
    const restarted = await w.startAgent(config);
    await holds(restarted, 'e/by-edge', 2);
  });

  it('removing an online edge takes back every secret it holds before its link closes; an offline one keeps its cache, and the answer says so', async () => {
    const online = await edgeWith('edge-x', [{ name: 'x-1' }]);
    const offline = await edgeWith('edge-y', [{ name: 'y-1' }]);
    await w.put('x/one', 'x-one-secret-8e');
    await w.put('x/two', 'x-two-secret-8e');
    await allow('x/one', { device: 'x-1' });
    await allow('x/two', { edge: 'edge-x' });
    await allow('x/one', { device: 'y-1' });
    await holds(online.agent, 'x/one', 1);
    await holds(online.agent, 'x/two', 1);
    await holds(offline.agent, 'x/one', 1);

    const removed = await w.call<{ secretsLeftOnEdge: string[]; devicesUnenrolled: string[] }>('DELETE', '/v1/edges/edge-x');
    assert.deepEqual(removed.secretsLeftOnEdge, []);
    assert.deepEqual(removed.devicesUnenrolled, ['x-1']);
    assert.deepEqual(online.agent.secrets.list(), [], 'nothing left on the edge when the answer came');
    const removals = (await audit('secret.remove')).filter((r) => r.details['edge'] === 'edge-x').map((r) => r.details['secret']);
    assert.deepEqual(removals.sort(), ['x/one', 'x/two']);
    await until(() => w.connectionOf('edge-x') === undefined, 'edge-x link closed');

    await offline.agent.close();
    await until(() => w.connectionOf('edge-y') === undefined, 'edge-y offline');
    const left = await w.call<{ secretsLeftOnEdge: string[] }>('DELETE', '/v1/edges/edge-y');
    assert.deepEqual(left.secretsLeftOnEdge, ['x/one']);
  });
});
