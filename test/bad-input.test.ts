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
import { generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type WebSocket from 'ws';
import { authPayload } from '../src/protocol/messages.js';
import {
  addDevice,
  addDeviceWithAgent,
  cleanup,
  closeOf,
  deviceKeyPath,
  enrollAgent,
  errorCodeOf,
  exchange,
  hubRequest,
  isDeviceOnline,
  nextMessage,
  openHubWebSocket,
  runCli,
  spawnCli,
  startConnect,
  startEchoServer,
  startHubProcess,
  stopProcess,
  tempDir,
  waitFor,
  type HubProcess,
} from './helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Files under `dir`, recursively (empty when it does not exist). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** Opens a control WebSocket and returns it with the hub's challenge nonce. */
async function openControl(hub: HubProcess): Promise<{ ws: WebSocket; nonce: string }> {
  const opened = await openHubWebSocket(hub, '/v1/agent/connect');
  assert.equal(opened.status, 101, 'control upgrade accepted');
  const ws = opened.ws as WebSocket;
  const challenge = JSON.parse(await nextMessage(ws)) as { type: string; nonce: string };
  assert.equal(challenge.type, 'challenge');
  return { ws, nonce: challenge.nonce };
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

  describe('device keys', () => {
    it('never brings a device online with the wrong key', async () => {
      const token = await addDevice(hub, 'wrong-key');
      const configPath = join(tempDir('db-agent-'), 'agent.yaml');
      const enrolled = await enrollAgent(token, target, configPath);
      assert.equal(enrolled.code, 0, enrolled.stderr);
      const keyPath = deviceKeyPath(configPath, 'wrong-key');
      const { privateKey: wrongKey } = generateKeyPairSync('ed25519');
      writeFileSync(keyPath, wrongKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });

      const agent = await spawnCli(['agent', 'run', '--config', configPath], {});
      try {
        await waitFor(async () => {
          const res = await hubRequest(hub, 'GET', '/v1/audit?action=auth.failure&device=wrong-key');
          return ((res.json as { records: unknown[] }).records ?? []).length > 0;
        }, 15_000, 'auth.failure audit record for wrong-key');
        await waitFor(() => agent.stderr().includes('DEVICE_KEY_INVALID'), 10_000, 'agent logs DEVICE_KEY_INVALID');
        assert.equal(agent.stderr().includes('"device online"'), false, 'the agent never came online');
        const listed = await runCli(['devices', 'list', '--json'], { env: hub.env });
        const row = (JSON.parse(listed.stdout) as { name: string; online: boolean }[]).find((d) => d.name === 'wrong-key');
        assert.equal(row?.online, false);
      } finally {
        await stopProcess(agent.child);
      }

      // The same refusal seen on the wire: close 4401 with the code first in the reason.
      const { ws, nonce } = await openControl(hub);
      const signature = sign(null, authPayload('wrong-key', nonce, hub.caPin), wrongKey).toString('base64');
      ws.send(JSON.stringify({ type: 'auth', device: 'wrong-key', signature, agentVersion: 'x' }));
      const closed = await closeOf(ws);
      assert.equal(closed.code, 4401);
      assert.ok(closed.reason.startsWith('DEVICE_KEY_INVALID'), closed.reason);
      assert.equal((await device('wrong-key')).online, false);
    });
  });

  describe('control messages', () => {
    it('closes 1008 PROTOCOL_ERROR on malformed JSON', async () => {
      const { ws } = await openControl(hub);
      ws.send('{"type": "auth", ');
      const closed = await closeOf(ws);
      assert.equal(closed.code, 1008);
      assert.match(closed.reason, /PROTOCOL_ERROR/);
      assert.match(closed.reason, /not valid JSON/);
    });

    it('closes 1008 on an unknown message type', async () => {
      const { ws } = await openControl(hub);
      ws.send(JSON.stringify({ type: 'bogus' }));
      const closed = await closeOf(ws);
      assert.equal(closed.code, 1008);
      assert.match(closed.reason, /unknown control message type "bogus"/);
    });

    it('closes 1008 on a known type with bad fields', async () => {
      const { ws } = await openControl(hub);
      ws.send(JSON.stringify({ type: 'auth', device: 'good', signature: 'x', agentVersion: 'x', extra: true }));
      const closed = await closeOf(ws);
      assert.equal(closed.code, 1008);
      assert.match(closed.reason, /PROTOCOL_ERROR: invalid "auth" message/);
    });

    it('closes 1009 on a message over 16 KiB', async () => {
      const { ws } = await openControl(hub);
      ws.send(JSON.stringify({ type: 'auth', device: 'good', signature: 'x'.repeat(17 * 1024), agentVersion: 'x' }));
      const closed = await closeOf(ws);
      assert.equal(closed.code, 1009);
    });

    it('closes 1008 on a binary frame', async () => {
      const { ws } = await openControl(hub);
      ws.send(Buffer.from(JSON.stringify({ type: 'auth' })), { binary: true });
      const closed = await closeOf(ws);
      assert.equal(closed.code, 1008);
      assert.match(closed.reason, /PROTOCOL_ERROR: control messages must be text frames/);
    });

    it('closes an authenticated link that sends garbage; the agent keeps serving', async () => {
      const configPath = join(tempDir('db-agent-'), 'agent.yaml');
      // One agent process hosts both devices.
      await addDeviceWithAgent(hub, 'twin-a', target, { configPath, start: false });
      const { agent } = await addDeviceWithAgent(hub, 'twin-b', target, { configPath });
      await waitFor(() => isDeviceOnline(hub, 'twin-a'), 10_000, 'twin-a online');

      // Authenticate as twin-a with its real key (this takes over twin-a's link), then misbehave.
      const key = readFileSync(deviceKeyPath(configPath, 'twin-a'), 'utf8');
      const { ws, nonce } = await openControl(hub);
      const signature = sign(null, authPayload('twin-a', nonce, hub.caPin), key).toString('base64');
      const closedPromise = closeOf(ws);
      let firstReply = '';
      ws.once('message', (data: Buffer) => {
        firstReply = (JSON.parse(data.toString()) as { type: string }).type;
        ws.send('this is not json');
      });
      ws.send(JSON.stringify({ type: 'auth', device: 'twin-a', signature, agentVersion: 'test' }));
      const closed = await closedPromise;
      assert.equal(firstReply, 'ready', 'the hub accepted the real key');
      assert.equal(closed.code, 1008);
      assert.match(closed.reason, /^PROTOCOL_ERROR: control message is not valid JSON/);

      // The misbehaving link is gone; the real agent was told why its twin-a link was taken
      // over (it backs off slowly on DEVICE_REPLACED) and still serves its other device.
      assert.equal(await isDeviceOnline(hub, 'twin-a'), false);
      await waitFor(() => agent?.stderr().includes('DEVICE_REPLACED') ?? false, 5000, 'agent told DEVICE_REPLACED');
      assert.equal(agent?.child.exitCode, null, 'the agent process is alive');
      const tunnelB = await startConnect(hub.env, 'twin-b');
      assert.equal((await exchange(tunnelB.port, 'to twin-b')).toString(), 'to twin-b');
      await stopProcess(tunnelB.child);
    });
  });

  describe('rendezvous tokens', () => {
    const ticket = async (): Promise<{ streamId: string; rendezvousUrl: string; token: string }> => {
      const res = await hubRequest(hub, 'POST', '/v1/streams', { body: { device: 'good' } });
      assert.equal(res.status, 201, res.text);
      return res.json as { streamId: string; rendezvousUrl: string; token: string };
    };
    const bearer = (token: string): { headers: Record<string, string> } => ({ headers: { authorization: `Bearer ${token}` } });

    it('accepts a token once; the second use is refused with 401 RENDEZVOUS_INVALID', async () => {
      const t = await ticket();
      const first = await openHubWebSocket(hub, t.rendezvousUrl, bearer(t.token));
      assert.equal(first.status, 101);
      const ws = first.ws as WebSocket;
      // It is a real stream to the echo target.
      const echoed = nextMessage(ws);
      ws.send(Buffer.from('through the rendezvous'), { binary: true });
      assert.equal(await echoed, 'through the rendezvous');

      const second = await openHubWebSocket(hub, t.rendezvousUrl, bearer(t.token));
      assert.equal(second.status, 401);
      assert.equal((JSON.parse((second as { body: string }).body) as { error: { code: string } }).error.code, 'RENDEZVOUS_INVALID');
      ws.close(1000);
      await closeOf(ws);
    });

    it('refuses a forged token and a token used on the wrong side', async () => {
      const t = await ticket();
      const forged = await openHubWebSocket(hub, t.rendezvousUrl, bearer(Buffer.alloc(32, 7).toString('base64url')));
      assert.equal(forged.status, 401);
      assert.match((forged as { body: string }).body, /"code":"RENDEZVOUS_INVALID"/);

      const wrongSide = await openHubWebSocket(hub, t.rendezvousUrl.replace(/\/client$/, '/agent'), bearer(t.token));
      assert.equal(wrongSide.status, 401);
      assert.match((wrongSide as { body: string }).body, /"code":"RENDEZVOUS_INVALID"/);

      const missing = await openHubWebSocket(hub, t.rendezvousUrl);
      assert.equal(missing.status, 401);

      // Refusals did not consume the genuine token.
      const genuine = await openHubWebSocket(hub, t.rendezvousUrl, bearer(t.token));
      assert.equal(genuine.status, 101);
      const ws = genuine.ws as WebSocket;
      ws.close(1000);
      await closeOf(ws);
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
