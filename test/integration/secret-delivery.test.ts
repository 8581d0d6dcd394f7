/**
 * Delivery end to end, in process: a change reaches the edges it concerns (and only those),
 * each stored version is acknowledged and shown in status, denied and deleted secrets leave
 * the edge, an edge that reconnects gets the difference, a hub restart in the middle of a
 * delivery loses nothing, and a tampered cache entry is refused and fetched again.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { after, before, describe, it } from 'node:test';
import type { AgentHandle } from '../../src/agent/agent.js';
import type { AuditView, EdgeSecretView } from '../../src/protocol/api-types.js';
import type { Logger } from '../../src/util/logger.js';
import { filesContaining } from '../plaintext-scan.js';
import { holds, secretPath, startVaultWorld, until, type VaultWorld } from './vault-harness.js';

describe('secret delivery', { timeout: 90_000 }, () => {
  let w: VaultWorld;
  let configA: string;
  let configB: string;
  let agentA: AgentHandle;
  let agentB: AgentHandle;

  before(async () => {
    w = await startVaultWorld();
    configA = await w.enroll('cell-a', { tags: { site: 'plant-3' }, edgeName: 'edge-a' });
    await w.enroll('cell-a2', { configPath: configA });
    configB = await w.enroll('cell-b', { tags: { site: 'plant-9' }, edgeName: 'edge-b' });
    agentA = await w.startAgent(configA);
    agentB = await w.startAgent(configB);
    await Promise.all([agentA.waitOnline(), agentB.waitOnline()]);
    await until(() => w.hub.services.registry.edgeCount === 2, 'both edges online');
  });
  after(async () => w?.close());

  const audit = async (action: string): Promise<AuditView[]> =>
    (await w.call<{ records: AuditView[] }>('GET', `/v1/audit?action=${action}&limit=1000`)).records;

  it('put, then allow by device: the edge holds it at once (pushed), acknowledges it, and status shows it', async () => {
    await w.put('plant-3/db-password', 'pw-v1-4b1d');
    const link = w.connectionOf('edge-a');
    await w.call('POST', secretPath('plant-3/db-password', '/allow'), { device: 'cell-a' });
    await holds(agentA, 'plant-3/db-password', 1);
    // Pushed over the link the edge had (how fast is the benchmark's business: bench/secrets.ts).
    assert.equal(w.connectionOf('edge-a'), link);
    assert.equal(agentA.secrets.get('plant-3/db-password')?.value.toString(), 'pw-v1-4b1d');
    await until(async () => (await w.status('plant-3/db-password')).edges[0]?.version === 1, 'the acknowledgement in status');
    const status = await w.status('plant-3/db-password');
    assert.equal(status.edges.length, 1, 'only the allowed edge is listed');
    const entry = status.edges[0];
    assert.equal(entry?.edge, 'edge-a');
    assert.deepEqual(entry?.devices, ['cell-a', 'cell-a2']);
    assert.ok(entry?.deliveredAt);
    assert.equal(entry?.online, true);
    const shown = await w.call<{ secrets: EdgeSecretView[] }>('GET', '/v1/edges/edge-a');
    assert.deepEqual(shown.secrets.map((s) => [s.name, s.version]), [['plant-3/db-password', 1]]);
    assert.equal((await w.call<{ secrets?: unknown }>('GET', '/v1/edges/edge-b')).secrets instanceof Array, true);
  });

  it('an edge that is not allowed is never sent the secret', async () => {
    assert.equal(agentB.secrets.get('plant-3/db-password'), undefined);
    const deliveries = await audit('secret.deliver');
    assert.ok(deliveries.length > 0);
    assert.ok(deliveries.every((r) => r.details['edge'] === 'edge-a'), 'no delivery record for edge-b');
    assert.ok((await audit('secret.ack')).every((r) => r.details['edge'] === 'edge-a'));
  });

  it('a new version reaches the edge; allow by tag and by edge work too', async () => {
    await w.put('plant-3/db-password', 'pw-v2-77aa');
    await holds(agentA, 'plant-3/db-password', 2);
    await w.put('shared/api-key', 'api-key-9c9c');
    await w.call('POST', secretPath('shared/api-key', '/allow'), { tag: 'site=plant-9' });
    await holds(agentB, 'shared/api-key', 1);
    assert.equal(agentA.secrets.get('shared/api-key'), undefined);
    await w.call('POST', secretPath('shared/api-key', '/allow'), { edge: 'edge-a' });
    await holds(agentA, 'shared/api-key', 1);
  });

  it('deny and delete remove the secret from the edge; undelete brings it back', async () => {
    await w.call('POST', secretPath('shared/api-key', '/deny'), { tag: 'site=plant-9' });
    await holds(agentB, 'shared/api-key', undefined);
    await until(async () => !(await w.status('shared/api-key')).edges.some((e) => e.edge === 'edge-b'), 'edge-b gone from status');
    await w.call('POST', secretPath('shared/api-key', '/delete'), {});
    await holds(agentA, 'shared/api-key', undefined);
    // The hub records a removal once the edge's answer is back: wait for the second record.
    await until(async () => (await audit('secret.remove')).length === 2, 'both removals recorded');
    const removals = await audit('secret.remove');
    assert.deepEqual(removals.map((r) => [r.details['edge'], r.details['reason']]), [['edge-b', 'denied'], ['edge-a', 'deleted']]);
    await w.call('POST', secretPath('shared/api-key', '/undelete'), {});
    await holds(agentA, 'shared/api-key', 1);
  });

  it('an edge that reconnects reports what it holds and gets the difference', async () => {
    await agentA.close();
    await until(() => w.hub.services.registry.edgeCount === 1, 'edge-a offline');
    await w.put('plant-3/db-password', 'pw-v3-offline');
    await w.call('POST', secretPath('shared/api-key', '/deny'), { edge: 'edge-a' });
    agentA = await w.startAgent(configA);
    // From the cache, before the hub answers: the old version still serves apps.
    assert.equal(agentA.secrets.get('plant-3/db-password')?.version, 2);
    await holds(agentA, 'plant-3/db-password', 3);
    await holds(agentA, 'shared/api-key', undefined);
  });

  it('a hub restart in the middle of a delivery loses nothing', async () => {
    const version = await w.put('plant-3/db-password', 'pw-v4-restart');
    // The push is on its way (or about to be): the hub goes down now.
    await w.restartHub();
    await holds(agentA, 'plant-3/db-password', version, 20_000);
    await until(async () => (await w.status('plant-3/db-password')).edges.find((e) => e.edge === 'edge-a')?.version === version, 'status after restart', 10_000);
  });

  it('a tampered cache entry is refused at start, said in the log, and fetched from the hub again', async () => {
    const held = agentA.secrets.get('plant-3/db-password');
    held?.value.fill(0);
    const deliveriesBefore = (await audit('secret.deliver')).length;
    await agentA.close();
    const cacheFile = join(dirname(configA), 'secrets-cache.json');
    const cache = JSON.parse(readFileSync(cacheFile, 'utf8')) as { entries: Record<string, { sealed: string }> };
    const entry = cache.entries['plant-3/db-password'];
    assert.ok(entry && held);
    const sealed = Buffer.from(entry.sealed, 'base64');
    sealed[sealed.length - 1] = (sealed[sealed.length - 1] as number) ^ 1;
    entry.sealed = sealed.toString('base64');
    writeFileSync(cacheFile, JSON.stringify(cache));

    let log = '';
    const sink = new Writable({ write: (chunk: Buffer, _encoding, done) => ((log += chunk.toString()), done()) });
    agentA = await w.startAgent(configA, { logger: pino({ level: 'info' }, sink) as unknown as Logger });
    assert.match(log, /did not authenticate/);
    await holds(agentA, 'plant-3/db-password', held.version);
    assert.ok((await audit('secret.deliver')).length > deliveriesBefore, 'delivered again');
  });

  it('never writes a value in clear to the hub or the agents\' directories', async () => {
    for (const value of ['pw-v1-4b1d', 'pw-v2-77aa', 'pw-v3-offline', 'pw-v4-restart', 'api-key-9c9c']) {
      assert.deepEqual(filesContaining([w.dir], value), [], value);
    }
  });
});
