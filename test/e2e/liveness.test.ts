/**
 * Stale-link detection with frozen processes (SIGSTOP): a hub that stops answering is
 * noticed by the agent after two missed pings, and a frozen agent is swept by the hub.
 * Ping intervals are shortened through the config files so the test is quick; the
 * defaults (10 s, two misses) bound detection at 30 s.
 */
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  addDeviceWithAgent,
  cleanup,
  isDeviceOnline,
  runCli,
  spawnCli,
  startEchoServer,
  startHubProcess,
  tempDir,
  waitFor,
  type HubProcess,
} from '../helpers.js';

describe('liveness', () => {
  let hub: HubProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;

  before(async () => {
    const config = join(tempDir('db-live-'), 'hub.yaml');
    writeFileSync(config, 'limits:\n  pingInterval: 500ms\n');
    hub = await startHubProcess({ config });
    echo = await startEchoServer();
  });

  after(async () => {
    hub?.child.kill('SIGCONT');
    await cleanup();
    await echo?.close();
  });

  it('the agent notices a frozen hub within three ping intervals and comes back when it thaws', async () => {
    const { configPath } = await addDeviceWithAgent(hub, 'live-a', `127.0.0.1:${echo.port}`, { start: false });
    appendFileSync(configPath, 'limits:\n  pingInterval: 1s\n');
    const agent = await spawnCli(['agent', 'run', '--config', configPath]);
    await waitFor(() => agent.stderr().includes('"device online"'), 15_000, 'agent online');

    hub.child.kill('SIGSTOP');
    const frozenAt = Date.now();
    try {
      await waitFor(() => agent.stderr().includes('link silent for two ping intervals'), 8_000, 'agent to notice the frozen hub');
    } finally {
      hub.child.kill('SIGCONT');
    }
    // Two missed pings at 1 s intervals: noticed after 2-3 s (slack for a busy machine).
    assert.ok(Date.now() - frozenAt < 6_000, `took ${Date.now() - frozenAt} ms`);

    const onlineCount = (): number => agent.stderr().split('"device online"').length - 1;
    await waitFor(() => onlineCount() >= 2, 20_000, 'agent to reconnect after the hub thawed');
    const echoed = await runCli(['proxy', 'live-a'], { env: hub.env, input: 'still here' });
    assert.equal(echoed.stdout, 'still here', echoed.stderr);
  });

  it('the hub sweeps a frozen agent and shows the device offline', async () => {
    const { agent } = await addDeviceWithAgent(hub, 'live-b', `127.0.0.1:${echo.port}`);
    assert.ok(agent);
    assert.equal(await isDeviceOnline(hub, 'live-b'), true);
    agent.child.kill('SIGSTOP');
    try {
      // Hub pings every 500 ms; two unanswered pings end the link.
      await waitFor(async () => (await isDeviceOnline(hub, 'live-b')) === false, 6_000, 'hub to drop the frozen agent');
      const refused = await runCli(['proxy', 'live-b'], { env: hub.env });
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /\[DEVICE_OFFLINE\]/);
    } finally {
      agent.child.kill('SIGCONT');
    }
    await waitFor(async () => (await isDeviceOnline(hub, 'live-b')) === true, 20_000, 'agent back after thawing');
  });
});
