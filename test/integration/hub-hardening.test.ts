/**
 * Smaller hardening of the hub: names reserved for audit actors, /healthz for strangers,
 * enrollment tokens replaced by newer ones, and file modes (data directory, hub.yaml).
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { enrollDevice } from '../../src/agent/enroll.js';
import { DrawbridgeError } from '../../src/errors.js';
import { startHub } from '../../src/hub/hub.js';
import type { Logger } from '../../src/util/logger.js';
import { rawRequest } from './raw-http.js';
import { startHarness, type Harness } from './stream-harness.js';

describe('hub hardening', { timeout: 60_000 }, () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('refuses user names the hub writes as audit actors', async () => {
    for (const name of ['hub', 'policy', 'anonymous', 'system']) {
      await assert.rejects(h.admin.request('POST', '/v1/users', { name, role: 'admin' }), (error: unknown) => {
        assert.ok(error instanceof DrawbridgeError);
        assert.equal(error.code, 'VALIDATION_FAILED');
        assert.match(error.message, /body\.name: is reserved/);
        return true;
      }, name);
    }
    await assert.rejects(h.admin.request('POST', '/v1/users', { name: 'device:plc-1', role: 'admin' }), /VALIDATION_FAILED|body\.name/);
    const { users } = await h.admin.request<{ users: { name: string }[] }>('GET', '/v1/users');
    assert.deepEqual(users.map((u) => u.name), ['admin']);
  });

  it('tells a caller without a token only that the hub is up', async () => {
    const anonymous = await rawRequest(h.hub.port, h.hub.caPem, 'GET', '/healthz');
    assert.equal(anonymous?.status, 200);
    assert.deepEqual(JSON.parse(anonymous?.body ?? ''), { status: 'ok' });
    const operator = await h.user('healthz-op', 'operator');
    assert.deepEqual(await operator.client.request('GET', '/healthz'), { status: 'ok' });
    const auditor = await h.user('healthz-aud', 'auditor');
    const full = await auditor.client.request<Record<string, unknown>>('GET', '/healthz');
    assert.deepEqual(Object.keys(full).sort(), ['activeStreams', 'auditHeadOk', 'devicesOnline', 'edgesOnline', 'status', 'version']);
    const badToken = await rawRequest(h.hub.port, h.hub.caPem, 'GET', '/healthz', { authorization: 'Bearer dbp_nope' });
    assert.equal(badToken?.status, 401);
  });

  it('a new enrollment token replaces the unused older ones of the same device, and only of that device', async () => {
    const first = await h.admin.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name: 'reissued' });
    const other = await h.admin.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name: 'bystander' });
    const second = await h.admin.request<{ enrollmentToken: string }>('POST', '/v1/devices/reissued/enrollments', {});
    const configPath = join(h.dir, 'reissued-agent', 'agent.yaml');
    // Before the fix the older token still enrolled.
    await assert.rejects(enrollDevice({ token: first.enrollmentToken, target: '127.0.0.1:9', configPath, edgeName: 'reissued-edge' }), (error: unknown) => {
      assert.ok(error instanceof DrawbridgeError);
      assert.equal(error.code, 'ENROLLMENT_EXPIRED');
      assert.match(error.message, /newer enrollment token/);
      return true;
    });
    await enrollDevice({ token: second.enrollmentToken, target: '127.0.0.1:9', configPath, edgeName: 'reissued-edge' });
    await enrollDevice({ token: other.enrollmentToken, target: '127.0.0.1:9', configPath });
    for (const name of ['reissued', 'bystander']) assert.equal((await h.admin.request<{ enrolled: boolean }>('GET', `/v1/devices/${name}`)).enrolled, true);
  });
});

describe('file modes at start', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'db-modes-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A logger whose lines the test can read. */
  function capture(): { logger: Logger; lines: () => { msg: string; level: number }[] } {
    const out: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        out.push(chunk.toString());
        done();
      },
    });
    return { logger: pino({ level: 'info' }, sink) as unknown as Logger, lines: () => out.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; level: number }) };
  }

  it('tightens an existing data directory to 0700, and says so', async () => {
    const dataDir = join(dir, 'open');
    mkdirSync(dataDir, { mode: 0o755 });
    chmodSync(dataDir, 0o755);
    const { logger, lines } = capture();
    const hub = await startHub({ dataDir, host: '127.0.0.1', port: 0, logger });
    await hub.close();
    assert.equal(statSync(dataDir).mode & 0o777, 0o700);
    assert.equal(lines().filter((l) => /tightened it to 0700/.test(l.msg)).length, 1);
  });

  it('warns once about a hub.yaml that holds a secret and others can read, and only then', async () => {
    const cases: { name: string; yaml: string; mode: number; warned: boolean }[] = [
      { name: 'secret-644', yaml: 'webhook:\n  url: https://hooks.example.net/x\n  secret: a-long-webhook-secret-value\n', mode: 0o644, warned: true },
      { name: 'secret-600', yaml: 'webhook:\n  url: https://hooks.example.net/x\n  secret: a-long-webhook-secret-value\n', mode: 0o600, warned: false },
      { name: 'plain-644', yaml: 'limits:\n  maxStreamsPerDevice: 8\n', mode: 0o644, warned: false },
    ];
    for (const c of cases) {
      const dataDir = join(dir, c.name);
      mkdirSync(dataDir, { mode: 0o700 });
      writeFileSync(join(dataDir, 'hub.yaml'), c.yaml, { mode: c.mode });
      chmodSync(join(dataDir, 'hub.yaml'), c.mode);
      const { logger, lines } = capture();
      const hub = await startHub({ dataDir, host: '127.0.0.1', port: 0, logger });
      await hub.close();
      const warnings = lines().filter((l) => /holds a secret and is readable by other users/.test(l.msg));
      assert.equal(warnings.length, c.warned ? 1 : 0, c.name);
      assert.ok(!JSON.stringify(lines()).includes('a-long-webhook-secret-value'), 'the secret itself is never logged');
    }
  });
});
