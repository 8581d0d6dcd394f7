/**
 * Bad input of every kind, in process against a real hub: each is refused with its own
 * clear error, nothing is created (no key, no config, no device), and the hub keeps serving
 * (checked at the end with /healthz and a real stream). The CLI's one-line rendering of
 * these errors is checked in test/e2e/cli.test.ts.
 *
 * Many refusals here count as failed authentications from 127.0.0.1; the hub's per-source
 * limit (20 a minute by default) would answer 429 part-way through, so this hub runs with a
 * higher limit. The limiter itself is not under test here.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { enrollDevice } from '../../src/agent/enroll.js';
import type { DrawbridgeError } from '../../src/errors.js';
import { ManualClock } from '../../src/util/clock.js';
import { errorCodeOf, exchange, hubRequest, type HubProcess } from '../helpers.js';
import { hubTarget, refusal } from './api-helpers.js';
import { echoServer, startHarness, type Harness } from './stream-harness.js';

/** Files under `dir`, recursively (empty when it does not exist). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

describe('bad input is refused, nothing is created, the hub keeps serving', { timeout: 60_000 }, () => {
  const clock = new ManualClock(Date.now());
  let h: Harness;
  let hub: HubProcess;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let target: string;
  let devicesBefore: string[];

  const deviceNames = async (): Promise<string[]> => (await h.admin.request<{ devices: { name: string }[] }>('GET', '/v1/devices')).devices.map((d) => d.name).sort();
  const device = (name: string): Promise<{ enrolled: boolean; online: boolean; enrolledAt: string | null }> => h.admin.request('GET', `/v1/devices/${name}`);
  const addDevice = async (name: string, enrollmentTtlMs?: number): Promise<string> =>
    (await h.admin.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name, ...(enrollmentTtlMs ? { enrollmentTtlMs } : {}) })).enrollmentToken;
  /** Enrolls into a fresh directory; resolves with the refusal (or undefined) and the directory. */
  const enroll = async (token: string, enrollTarget = target): Promise<{ error?: DrawbridgeError; dir: string; configPath: string }> => {
    const dir = mkdtempSync(join(h.dir, 'agent-'));
    const configPath = join(dir, 'agent.yaml');
    try {
      // Each directory is a new edge; the hub numbers their (shared) host name.
      await enrollDevice({ token, target: enrollTarget, configPath });
      return { dir, configPath };
    } catch (error) {
      return { error: error as DrawbridgeError, dir, configPath };
    }
  };

  before(async () => {
    h = await startHarness({ clock, config: { limits: { authFailuresPerMinute: 10_000, pingInterval: '10m' } } });
    hub = hubTarget(h);
    echo = await echoServer();
    target = `127.0.0.1:${echo.port}`;
    await h.startAgent(await h.enroll('good', target));
  });

  after(async () => {
    await h?.close();
    await echo?.close();
  });

  describe('enrollment tokens', () => {
    it('refuses an expired token (ENROLLMENT_EXPIRED) and writes no key or config', async () => {
      const token = await addDevice('expiring', 1000);
      await clock.advance(1500);
      const { error, dir, configPath } = await enroll(token);
      assert.equal(error?.code, 'ENROLLMENT_EXPIRED');
      assert.match(error?.message ?? '', /^the enrollment token expired at /);
      assert.equal(existsSync(configPath), false, 'no config written');
      assert.deepEqual(filesUnder(join(dir, 'keys')), [], 'no key written');
      assert.equal((await device('expiring')).enrolled, false);
    });

    it('refuses a reused token (ENROLLMENT_USED) after one good enrollment', async () => {
      const token = await addDevice('once');
      assert.equal((await enroll(token)).error, undefined);
      const keyBefore = await device('once');
      const { error, dir, configPath } = await enroll(token);
      assert.equal(error?.code, 'ENROLLMENT_USED');
      assert.match(error?.message ?? '', /already used/);
      assert.equal(existsSync(configPath), false, 'no config written');
      assert.deepEqual(filesUnder(join(dir, 'keys')), [], 'no key written');
      assert.equal((await device('once')).enrolledAt, keyBefore.enrolledAt, 'the first enrollment stands');
    });

    it('refuses a forged token whose secret was changed (ENROLLMENT_INVALID), without burning the real one', async () => {
      const token = await addDevice('forged');
      const body = JSON.parse(Buffer.from(token.slice('dbe1_'.length), 'base64url').toString('utf8')) as Record<string, unknown>;
      assert.equal(typeof body['s'], 'string');
      const secret = body['s'] as string;
      body['s'] = (secret[0] === 'A' ? 'B' : 'A') + secret.slice(1);
      const forged = 'dbe1_' + Buffer.from(JSON.stringify(body)).toString('base64url');
      const { error, dir, configPath } = await enroll(forged);
      assert.equal(error?.code, 'ENROLLMENT_INVALID');
      assert.match(error?.message ?? '', /not valid for this hub/);
      assert.equal(existsSync(configPath), false);
      assert.deepEqual(filesUnder(join(dir, 'keys')), []);
      assert.equal((await device('forged')).enrolled, false);
      assert.equal((await enroll(token)).error, undefined, 'the forgery did not burn the real token');
    });

    it('refuses garbage with a clear message', async () => {
      for (const garbage of ['hello', 'dbe1_!!!notbase64', 'dbe1_' + Buffer.from('{"v":1}').toString('base64url')]) {
        const { error, dir, configPath } = await enroll(garbage);
        assert.equal(error?.code, 'ENROLLMENT_INVALID', garbage);
        assert.match(error?.message ?? '', /^(not a Drawbridge enrollment token|the enrollment token is corrupted)/, garbage);
        assert.equal(existsSync(configPath), false);
        assert.deepEqual(filesUnder(dir), []);
      }
    });

    it('refuses a bad target before using the token', async () => {
      const token = await addDevice('bad-target');
      const { error, dir } = await enroll(token, 'not-a-target');
      assert.equal(error?.code, 'VALIDATION_FAILED');
      assert.match(error?.message ?? '', /^invalid target "not-a-target": use HOST:PORT/);
      assert.deepEqual(filesUnder(dir), []);
      assert.equal((await enroll(token)).error, undefined, 'the token still works');
    });
  });

  describe('names and API bodies', () => {
    const badNames = ['UPPER', '-lead', 'a_b', 'a'.repeat(64), ''];

    before(async () => {
      devicesBefore = await deviceNames();
    });

    it('refuses invalid device names through the REST API (400 INVALID_NAME)', async () => {
      for (const name of badNames) {
        const res = await hubRequest(hub, 'POST', '/v1/devices', { body: { name } });
        assert.equal(res.status, 400, `"${name}": ${res.text}`);
        assert.equal(errorCodeOf(res), 'INVALID_NAME', `"${name}": ${res.text}`);
        assert.equal(typeof (res.json as { error: { message: unknown } }).error.message, 'string');
      }
      const notString = await hubRequest(hub, 'POST', '/v1/devices', { body: { name: 42 } });
      assert.equal(notString.status, 400);
      assert.equal(errorCodeOf(notString), 'VALIDATION_FAILED');
      assert.equal((await refusal(h.admin.request('GET', '/v1/devices/Bad_Name'))).code, 'INVALID_NAME');
      assert.deepEqual(await deviceNames(), devicesBefore);
    });

    it('refuses malformed JSON (400 BAD_REQUEST)', async () => {
      const res = await hubRequest(hub, 'POST', '/v1/devices', { body: '{"name": "half' });
      assert.equal(res.status, 400);
      assert.equal(errorCodeOf(res), 'BAD_REQUEST');
      assert.deepEqual(await deviceNames(), devicesBefore);
    });

    it('refuses unknown keys (400 VALIDATION_FAILED, naming the key)', async () => {
      const res = await hubRequest(hub, 'POST', '/v1/devices', { body: { name: 'sneaky', admin: true } });
      assert.equal(res.status, 400);
      assert.equal(errorCodeOf(res), 'VALIDATION_FAILED');
      assert.match(res.text, /admin/);
      assert.deepEqual(await deviceNames(), devicesBefore);
    });

    it('refuses a body over 64 KiB (413), declared or streamed', async () => {
      const big = { name: 'huge', tags: { note: 'x'.repeat(70 * 1024) } };
      const declared = await hubRequest(hub, 'POST', '/v1/devices', { body: big });
      assert.equal(declared.status, 413);
      assert.equal(errorCodeOf(declared), 'PAYLOAD_TOO_LARGE');
      const streamed = await hubRequest(hub, 'POST', '/v1/devices', { body: big, chunked: true });
      assert.equal(streamed.status, 413);
      assert.equal(errorCodeOf(streamed), 'PAYLOAD_TOO_LARGE');
      assert.deepEqual(await deviceNames(), devicesBefore);
    });
  });

  it('is still serving afterwards: healthz answers and a stream carries data', async () => {
    const health = await hubRequest(hub, 'GET', '/healthz', { token: null });
    assert.equal(health.status, 200);
    assert.equal((health.json as { status: string }).status, 'ok');
    const tunnel = await h.tunnel(h.admin, 'good');
    assert.equal((await exchange(tunnel.port, 'still here')).toString(), 'still here');
  });
});
