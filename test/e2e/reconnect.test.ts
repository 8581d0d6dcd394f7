/**
 * Liveness with real processes: the agent comes back by itself after the hub restarts
 * (same port, same data directory), and a killed agent shows as offline with a clear
 * DEVICE_OFFLINE refusal for new streams.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  addDeviceWithAgent,
  cleanup,
  exchange,
  freePort,
  hubRequest,
  runCli,
  startConnect,
  startEchoServer,
  startHubProcess,
  stopProcess,
  tempDir,
  waitFor,
  type HubProcess,
} from '../helpers.js';

interface DeviceRow {
  name: string;
  online: boolean;
}

async function deviceOnline(hub: HubProcess, name: string): Promise<boolean | undefined> {
  const listed = await runCli(['devices', 'list', '--json'], { env: hub.env });
  if (listed.code !== 0) return undefined;
  return (JSON.parse(listed.stdout) as DeviceRow[]).find((d) => d.name === name)?.online;
}

/** One stream through `drawbridge proxy`: stdin goes to the echo target and comes back. */
async function proxyRoundTrip(hub: HubProcess, device: string, text: string): Promise<void> {
  const result = await runCli(['proxy', device], { env: hub.env, input: text });
  assert.equal(result.code, 0, `drawbridge proxy failed: ${result.stderr}`);
  assert.equal(result.stdout, text);
}

describe('reconnects and offline detection', () => {
  let hub: HubProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let agent: Awaited<ReturnType<typeof addDeviceWithAgent>>['agent'];
  let dataDir: string;
  let port: number;

  before(async () => {
    echo = await startEchoServer();
    dataDir = tempDir('db-hub-fixed-');
    port = await freePort();
    hub = await startHubProcess({ dataDir, port });
    ({ agent } = await addDeviceWithAgent(hub, 'phoenix', `127.0.0.1:${echo.port}`));
  });

  after(async () => {
    await cleanup();
    await echo?.close();
  });

  it('the agent reconnects by itself after the hub restarts on the same port and data dir', async () => {
    await proxyRoundTrip(hub, 'phoenix', 'before-restart');
    // A long-running `drawbridge connect` started before the restart must serve new connections after it.
    const tunnel = await startConnect(hub.env, 'phoenix');
    assert.equal((await exchange(tunnel.port, 'via-connect-1')).toString(), 'via-connect-1');

    await stopProcess(hub.child, 'SIGTERM');
    assert.equal(hub.child.exitCode, 0, `hub exit status after SIGTERM\n${hub.stderr()}`);
    const stoppedAt = Date.now();

    const restarted = await startHubProcess({ dataDir, port });
    assert.equal(restarted.url, hub.url);
    assert.equal(restarted.caPin, hub.caPin, 'the CA survives a restart');
    assert.equal(restarted.adminToken, hub.adminToken);
    hub = { ...restarted, env: hub.env };

    await waitFor(async () => (await deviceOnline(hub, 'phoenix')) === true, 25_000, 'device online again after hub restart');
    const elapsedMs = Date.now() - stoppedAt;
    assert.ok(elapsedMs < 20_000 + 5_000, `the agent took ${elapsedMs} ms to come back (bound: ~20 s)`);

    await proxyRoundTrip(hub, 'phoenix', 'after-restart');
    assert.equal((await exchange(tunnel.port, 'via-connect-2')).toString(), 'via-connect-2');
    await stopProcess(tunnel.child);
  });

  it('a killed agent makes the device offline, and new streams fail with DEVICE_OFFLINE', async () => {
    assert.ok(agent, 'agent process');
    assert.equal(await deviceOnline(hub, 'phoenix'), true);
    // A stream is open when the agent dies: its close record must name the real reason.
    const held = connect({ host: '127.0.0.1', port: (await startConnect(hub.env, 'phoenix')).port });
    held.on('error', () => undefined);
    await new Promise((r) => held.once('connect', r));
    held.write('x');
    await new Promise((r) => held.once('data', r));
    await stopProcess(agent.child, 'SIGKILL');
    await waitFor(async () => (await deviceOnline(hub, 'phoenix')) === false, 15_000, 'device offline after agent SIGKILL');
    await new Promise((r) => (held.destroyed ? r(undefined) : held.once('close', r)));
    const res = await hubRequest(hub, 'GET', '/v1/audit?action=stream.close&device=phoenix&order=desc&limit=1');
    assert.equal((res.json as { records: { details: { reason: unknown } }[] }).records[0]?.details.reason, 'EDGE_DISCONNECTED');

    const result = await runCli(['proxy', 'phoenix'], { env: hub.env, input: 'nobody home' });
    assert.notEqual(result.code, 0);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /offline/);
    assert.match(result.stderr, /\[DEVICE_OFFLINE\]/);
  });
});
