/**
 * Agents and clients behind an HTTP proxy (a real tinyproxy from Debian's packages): with
 * HTTPS_PROXY set, enrollment, the agent's link and the client's link all go through it
 * (HTTP CONNECT, TLS end to end); NO_PROXY bypasses it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  addDeviceWithAgent,
  cleanup,
  freePort,
  runCli,
  startEchoServer,
  startHubProcess,
  tempDir,
  waitFor,
  type HubProcess,
} from '../helpers.js';

const TINYPROXY = ['/usr/bin/tinyproxy', '/usr/sbin/tinyproxy'].find((p) => existsSync(p));

describe('through an HTTP proxy (HTTPS_PROXY, NO_PROXY)', { timeout: 90_000 }, () => {
  let hub: HubProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let proxy: ChildProcess;
  let proxyUrl: string;
  let logFile: string;
  const connects = (): number => (readFileSync(logFile, 'utf8').match(new RegExp(`CONNECT 127\\.0\\.0\\.1:${hub.port} `, 'g')) ?? []).length;

  before(async () => {
    // Never skipped: CI installs tinyproxy (.ci/run), and a missing proxy must fail loudly.
    if (!TINYPROXY) throw new Error('tinyproxy is not installed (apt-get install tinyproxy)');
    const dir = tempDir('db-proxy-');
    const port = await freePort();
    logFile = join(dir, 'tinyproxy.log');
    writeFileSync(join(dir, 'tinyproxy.conf'), `Port ${port}\nListen 127.0.0.1\nTimeout 600\nLogLevel Connect\nLogFile "${logFile}"\nMaxClients 100\n`);
    writeFileSync(logFile, '');
    proxy = spawn(TINYPROXY, ['-d', '-c', join(dir, 'tinyproxy.conf')], { stdio: 'ignore' });
    proxyUrl = `http://127.0.0.1:${port}`;
    await waitFor(() => readFileSync(logFile, 'utf8').length > 0 || proxy.exitCode !== null, 10_000, 'tinyproxy to start');
    hub = await startHubProcess();
    echo = await startEchoServer();
  });

  after(async () => {
    proxy?.kill();
    await cleanup();
    await echo?.close();
  });

  it('enrolls, links the agent and carries a stream through the proxy', async () => {
    const viaProxy = { HTTPS_PROXY: proxyUrl, NO_PROXY: '' };
    await addDeviceWithAgent(hub, 'behind-proxy', `127.0.0.1:${echo.port}`, { env: viaProxy });
    const before = connects();
    assert.ok(before >= 2, `enrollment and the agent's link went through the proxy (${before} CONNECTs)`);
    const result = await runCli(['proxy', 'behind-proxy'], { env: { ...hub.env, ...viaProxy }, input: 'through the proxy' });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'through the proxy');
    assert.ok(connects() > before, "the client's link went through the proxy");
  });

  it('NO_PROXY sends a client straight to the hub', async () => {
    const before = connects();
    const result = await runCli(['proxy', 'behind-proxy'], { env: { ...hub.env, HTTPS_PROXY: proxyUrl, NO_PROXY: '127.0.0.1' }, input: 'direct' });
    assert.equal(result.stdout, 'direct', result.stderr);
    assert.equal(connects(), before);
  });

  it('a proxy that is down is named in the error', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const result = await runCli(['proxy', 'behind-proxy'], { env: { ...hub.env, HTTPS_PROXY: dead, NO_PROXY: '' }, input: 'x' });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /HUB_UNREACHABLE/);
    assert.match(result.stderr, /proxy/);
  });
});
