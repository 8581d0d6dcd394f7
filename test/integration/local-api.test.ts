/**
 * The agent's local API on its Unix domain socket: per-app tokens that name their secrets,
 * 401 for a wrong or revoked token, reads counted and reported to the hub in batches.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AgentHandle } from '../../src/agent/agent.js';
import { AppTokenStore } from '../../src/agent/vault/app-tokens.js';
import type { AuditView } from '../../src/protocol/api-types.js';
import { holds, secretPath, startVaultWorld, until, type VaultWorld } from './vault-harness.js';

function get(socketPath: string, path: string, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('local API', { timeout: 60_000 }, () => {
  let w: VaultWorld;
  let agent: AgentHandle;
  let config: string;
  let socket: string;
  let tokens: AppTokenStore;
  let billing: string;

  before(async () => {
    w = await startVaultWorld();
    config = await w.enroll('kiosk-1', { edgeName: 'kiosk' });
    agent = await w.startAgent(config, { overrides: { secrets: { readReportInterval: '200ms' } } });
    await agent.waitOnline();
    socket = agent.localApi.socketPath;
    for (const name of ['plant-3/db-password', 'other']) {
      await w.put(name, `value-of-${name}`);
      await w.call('POST', secretPath(name, '/allow'), { edge: 'kiosk' });
    }
    await holds(agent, 'plant-3/db-password', 1);
    await holds(agent, 'other', 1);
    tokens = new AppTokenStore(join(dirname(config), 'app-tokens.json'));
    billing = tokens.add('billing', ['plant-3/db-password', 'not-held'], Date.now());
  });
  after(async () => w?.close());

  it('listens on agent.sock beside the config, mode 0600, and stores tokens hashed at 0600', () => {
    assert.equal(socket, join(dirname(config), 'agent.sock'));
    assert.ok(statSync(socket).isSocket());
    assert.equal(statSync(socket).mode & 0o777, 0o600);
    assert.equal(statSync(join(dirname(config), 'app-tokens.json')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dirname(config), 'local-admin.token')).mode & 0o777, 0o600);
    assert.ok(!JSON.stringify(tokens.list()).includes(billing.slice(21)), 'the token is stored only hashed');
  });

  it('answers {"name","version","value"} for a secret the token names (with "/" raw or encoded)', async () => {
    for (const path of ['/v1/secrets/plant-3/db-password', '/v1/secrets/plant-3%2Fdb-password']) {
      const res = await get(socket, path, billing);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { name: 'plant-3/db-password', version: 1, value: 'value-of-plant-3/db-password' });
    }
    const list = await get(socket, '/v1/secrets', billing);
    assert.deepEqual((list.body['secrets'] as { name: string }[]).map((s) => s.name), ['plant-3/db-password']);
  });

  it('refuses with coded errors: 401 without or with a wrong token, 403 for a secret not named, 404 for one not held', async () => {
    const expectations: [string, string | undefined, number, string][] = [
      ['/v1/secrets/plant-3/db-password', undefined, 401, 'UNAUTHENTICATED'],
      ['/v1/secrets/plant-3/db-password', billing.slice(0, -1) + (billing.endsWith('A') ? 'B' : 'A'), 401, 'UNAUTHENTICATED'],
      ['/v1/secrets/plant-3/db-password', 'dbp_0000000000000000_xxx', 401, 'UNAUTHENTICATED'],
      ['/v1/secrets/other', billing, 403, 'FORBIDDEN'],
      ['/v1/secrets/not-held', billing, 404, 'UNKNOWN_SECRET'],
      ['/v1/secrets/Bad%20Name', billing, 400, 'INVALID_NAME'],
      ['/v2/whatever', billing, 404, 'NOT_FOUND'],
    ];
    for (const [path, token, status, code] of expectations) {
      const res = await get(socket, path, token);
      assert.equal(res.status, status, `${path}: ${JSON.stringify(res.body)}`);
      assert.equal((res.body['error'] as { code: string }).code, code, path);
    }
  });

  it('reports reads per app and version in batches: status shows when it was last read, the audit has the batch', async () => {
    // The two reads above may land in different batches (a report can fall between them):
    // wait for the count, not only for the first report.
    await until(async () => ((await w.status('plant-3/db-password')).edges[0]?.reads ?? 0) >= 2, 'both reads in status', 5000);
    const status = await w.status('plant-3/db-password');
    assert.notEqual(status.edges[0]?.lastReadAt ?? null, null);
    const { records } = await w.call<{ records: AuditView[] }>('GET', '/v1/audit?action=secret.reads');
    assert.ok(records.length >= 1);
    assert.equal(records[0]?.actor, 'edge:kiosk');
    assert.deepEqual((records[0]?.details['reads'] as { app: string; secret: string; version: number }[])[0], { app: 'billing', secret: 'plant-3/db-password', version: 1, count: (records[0]?.details['reads'] as { count: number }[])[0]?.count });
    assert.ok(!JSON.stringify(records).includes('value-of'));
  });

  it('a removed token is refused at once', async () => {
    assert.equal(tokens.remove('billing'), true);
    assert.equal((await get(socket, '/v1/secrets/plant-3/db-password', billing)).status, 401);
    assert.throws(() => tokens.add('sneaky', ['*'], 0), /not allowed/);
  });
});
