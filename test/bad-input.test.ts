/**
 * Bad input of every kind, against a real hub process: each is refused with its own clear
 * error, nothing is created, and the hub keeps serving (checked at the end with /healthz
 * and a real stream).
 *
 * Every refusal here comes from 127.0.0.1, and many count as failed authentications; the
 * hub's per-source limit (20 a minute by default) would start answering 429 part-way
 * through, so this hub runs with a higher limit. The limiter itself is not under test here.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  addDevice,
  addDeviceWithAgent,
  cleanup,
  enrollAgent,
  errorCodeOf,
  exchange,
  hubRequest,
  runCli,
  startConnect,
  startEchoServer,
  startHubProcess,
  tempDir,
  type HubProcess,
} from './helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Files under `dir`, recursively (empty when it does not exist). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

describe('bad input is refused, nothing is created, the hub keeps serving', () => {
  let hub: HubProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let target: string;
  let devicesBefore: string[];

  const deviceNames = async (): Promise<string[]> => {
    const listed = await runCli(['devices', 'list', '--json'], { env: hub.env });
    assert.equal(listed.code, 0, listed.stderr);
    return (JSON.parse(listed.stdout) as { name: string }[]).map((d) => d.name).sort();
  };
  const device = async (name: string): Promise<{ enrolled: boolean; online: boolean }> => {
    const res = await hubRequest(hub, 'GET', `/v1/devices/${name}`);
    assert.equal(res.status, 200, res.text);
    return res.json as { enrolled: boolean; online: boolean };
  };

  before(async () => {
    const configDir = tempDir('db-hubcfg-');
    const config = join(configDir, 'hub.yaml');
    writeFileSync(config, 'limits:\n  authFailuresPerMinute: 10000\n');
    hub = await startHubProcess({ config });
    echo = await startEchoServer();
    target = `127.0.0.1:${echo.port}`;
    await addDeviceWithAgent(hub, 'good', target);
  });

  after(async () => {
    await cleanup();
    await echo?.close();
  });

  describe('enrollment tokens', () => {
    it('refuses an expired token (ENROLLMENT_EXPIRED) and writes no key or config', async () => {
      const token = await addDevice(hub, 'expiring', ['--ttl', '1s']);
      await sleep(1500);
      const dir = tempDir('db-agent-');
      const configPath = join(dir, 'agent.yaml');
      const result = await enrollAgent(token, target, configPath);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /^drawbridge: the enrollment token expired at .+ \[ENROLLMENT_EXPIRED\]\n$/);
      assert.equal(existsSync(configPath), false, 'no config written');
      assert.deepEqual(filesUnder(join(dir, 'keys')), [], 'no key written');
      assert.equal((await device('expiring')).enrolled, false);
    });

    it('refuses a reused token (ENROLLMENT_USED) after one good enrollment', async () => {
      const token = await addDevice(hub, 'once');
      const first = await enrollAgent(token, target, join(tempDir('db-agent-'), 'agent.yaml'));
      assert.equal(first.code, 0, first.stderr);
      const keyBefore = (await hubRequest(hub, 'GET', '/v1/devices/once')).json as { enrolledAt: string };

      const dir = tempDir('db-agent-');
      const configPath = join(dir, 'agent.yaml');
      const second = await enrollAgent(token, target, configPath);
      assert.notEqual(second.code, 0);
      assert.match(second.stderr, /already used.*\[ENROLLMENT_USED\]/);
      assert.equal(existsSync(configPath), false, 'no config written');
      assert.deepEqual(filesUnder(join(dir, 'keys')), [], 'no key written');
      const keyAfter = (await hubRequest(hub, 'GET', '/v1/devices/once')).json as { enrolledAt: string };
      assert.equal(keyAfter.enrolledAt, keyBefore.enrolledAt, 'the first enrollment stands');
    });

    it('refuses a forged token whose secret was changed (ENROLLMENT_INVALID)', async () => {
      const token = await addDevice(hub, 'forged');
      const body = JSON.parse(Buffer.from(token.slice('dbe1_'.length), 'base64url').toString('utf8')) as Record<string, unknown>;
      assert.equal(typeof body['s'], 'string');
      const secret = body['s'] as string;
      body['s'] = (secret[0] === 'A' ? 'B' : 'A') + secret.slice(1);
      const forged = 'dbe1_' + Buffer.from(JSON.stringify(body)).toString('base64url');

      const dir = tempDir('db-agent-');
      const configPath = join(dir, 'agent.yaml');
      const result = await enrollAgent(forged, target, configPath);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /not valid for this hub \[ENROLLMENT_INVALID\]/);
      assert.equal(existsSync(configPath), false);
      assert.deepEqual(filesUnder(join(dir, 'keys')), []);
      assert.equal((await device('forged')).enrolled, false);

      // The forgery did not burn the real token.
      const real = await enrollAgent(token, target, join(tempDir('db-agent-'), 'agent.yaml'));
      assert.equal(real.code, 0, real.stderr);
    });

    it('refuses garbage with a clear message', async () => {
      for (const garbage of ['hello', 'dbe1_!!!notbase64', 'dbe1_' + Buffer.from('{"v":1}').toString('base64url')]) {
        const dir = tempDir('db-agent-');
        const configPath = join(dir, 'agent.yaml');
        const result = await enrollAgent(garbage, target, configPath);
        assert.notEqual(result.code, 0, garbage);
        assert.match(result.stderr, /^drawbridge: (not a Drawbridge enrollment token|the enrollment token is corrupted).* \[ENROLLMENT_INVALID\]\n$/, garbage);
        assert.equal(existsSync(configPath), false);
        assert.deepEqual(filesUnder(dir), []);
      }
    });
    it('refuses a bad --target before using the token', async () => {
      const token = await addDevice(hub, 'bad-target');
      const dir = tempDir('db-agent-');
      const configPath = join(dir, 'agent.yaml');
      const result = await enrollAgent(token, 'not-a-target', configPath);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /^drawbridge: invalid target "not-a-target": use HOST:PORT.* \[VALIDATION_FAILED\]\n$/);
      assert.deepEqual(filesUnder(dir), []);
      const good = await enrollAgent(token, target, configPath);
      assert.equal(good.code, 0, good.stderr);
    });
  });

  describe('names and API bodies', () => {
    const badNames = ['UPPER', '-lead', 'a_b', 'a'.repeat(64), ''];

    before(async () => {
      devicesBefore = await deviceNames();
    });

    it('refuses invalid device names on the command line (INVALID_NAME)', async () => {
      for (const name of badNames) {
        const result = await runCli(['devices', 'add', '--json', '--', name], { env: hub.env });
        assert.notEqual(result.code, 0, `"${name}" accepted`);
        assert.match(result.stderr, /^drawbridge: invalid device name .* \[INVALID_NAME\]\n$/, `"${name}": ${result.stderr}`);
      }
      assert.deepEqual(await deviceNames(), devicesBefore);
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
    const tunnel = await startConnect(hub.env, 'good');
    assert.equal((await exchange(tunnel.port, 'still here')).toString(), 'still here');
    assert.equal(hub.child.exitCode, null, 'the hub process is alive');
  });
});
