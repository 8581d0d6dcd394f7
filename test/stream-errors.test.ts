/**
 * Stream failures with real processes: every way a stream can fail reaches the client as
 * its own code and message; closing either end closes the whole chain; the per-device
 * stream cap holds; a reader that never reads stalls the writer without growing the hub.
 *
 * All traffic stays on loopback:
 * - "unreachable" targets 255.255.255.255: the kernel refuses a TCP connect to the
 *   broadcast address at once (ENETUNREACH) and sends nothing, where a DNS name that fails
 *   would send a query to the resolver;
 * - the timeout case uses a device whose "agent" is a raw WebSocket in this test: it
 *   authenticates with the device's real key and then ignores stream requests (a frozen
 *   edge), so the hub's rendezvous timeout (2 s in this hub's config) is what ends it.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type WebSocket from 'ws';
import { authPayload } from '../src/protocol/messages.js';
import {
  addDevice,
  cleanup,
  closeOf,
  deviceKeyPath,
  enrollAgent,
  exchange,
  freePort,
  nextMessage,
  openHubWebSocket,
  rssBytes,
  runCli,
  startAgentProcess,
  startConnect,
  startEchoServer,
  startHubProcess,
  stopProcess,
  tempDir,
  waitFor,
  type HubProcess,
} from './helpers.js';

const MiB = 1024 * 1024;

/** A TCP server that keeps every accepted socket, for the tests to drive and observe. */
async function startTargetServer(options: { read: boolean; allowHalfOpen?: boolean }): Promise<{
  server: Server;
  port: number;
  sockets: Socket[];
  close(): Promise<void>;
}> {
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: options.allowHalfOpen ?? false }, (socket) => {
    socket.on('error', () => undefined);
    if (!options.read) socket.pause();
    sockets.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function openLocal(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves with the milliseconds until `socket` emits 'close'. */
function timeToClose(socket: Socket, since: number): Promise<number> {
  return new Promise((resolve) => {
    if (socket.destroyed && socket.closed) resolve(performance.now() - since);
    else socket.once('close', () => resolve(performance.now() - since));
  });
}

describe('stream errors reach the client; closes and limits hold', { timeout: 180_000 }, () => {
  let hub: HubProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let closer: Awaited<ReturnType<typeof startTargetServer>>;
  let staller: Awaited<ReturnType<typeof startTargetServer>>;
  let silentLink: WebSocket | undefined;
  let agent: Awaited<ReturnType<typeof startAgentProcess>>;
  const streamOpensToSilent: string[] = [];

  /** `drawbridge proxy DEVICE` with stdin at EOF at once: the outcome is the stream's error. */
  const proxy = (device: string, env: Record<string, string> = hub.env): ReturnType<typeof runCli> =>
    runCli(['proxy', device], { env, input: '' });

  before(async () => {
    const config = join(tempDir('db-hubcfg-'), 'hub.yaml');
    writeFileSync(config, 'limits:\n  rendezvousTimeout: 2s\n');
    hub = await startHubProcess({ config });
    echo = await startEchoServer();
    closer = await startTargetServer({ read: true });
    staller = await startTargetServer({ read: false, allowHalfOpen: true });
    const closedPort = await freePort();

    // One agent process hosts every device that has an agent.
    const configPath = join(tempDir('db-agent-'), 'agent.yaml');
    const devices: [string, string, string[]][] = [
      ['echo', `127.0.0.1:${echo.port}`, []],
      ['refused', `127.0.0.1:${closedPort}`, []],
      ['unreachable', '255.255.255.255:9', []],
      ['capped', `127.0.0.1:${echo.port}`, ['--max-streams', '2']],
      ['closer', `127.0.0.1:${closer.port}`, []],
      ['staller', `127.0.0.1:${staller.port}`, []],
    ];
    for (const [name, target, extra] of devices) {
      const enrolled = await enrollAgent(await addDevice(hub, name), target, configPath, extra);
      assert.equal(enrolled.code, 0, enrolled.stderr);
    }
    agent = await startAgentProcess(configPath, devices.map(([name]) => name));

    // Registered devices without an agent.
    await addDevice(hub, 'offline');
    await addDevice(hub, 'disabled');
    const disabled = await runCli(['devices', 'disable', 'disabled'], { env: hub.env });
    assert.equal(disabled.code, 0, disabled.stderr);

    // The silent device: enrolled for real, its link held by this test, which never answers.
    const silentConfig = join(tempDir('db-agent-'), 'agent.yaml');
    const silentEnrolled = await enrollAgent(await addDevice(hub, 'silent'), `127.0.0.1:${echo.port}`, silentConfig);
    assert.equal(silentEnrolled.code, 0, silentEnrolled.stderr);
    const opened = await openHubWebSocket(hub, '/v1/agent/connect');
    assert.equal(opened.status, 101);
    silentLink = opened.ws as WebSocket;
    const challenge = JSON.parse(await nextMessage(silentLink)) as { nonce: string };
    const key = readFileSync(deviceKeyPath(silentConfig, 'silent'), 'utf8');
    const signature = sign(null, authPayload('silent', challenge.nonce, hub.caPin), key).toString('base64');
    const ready = nextMessage(silentLink);
    silentLink.send(JSON.stringify({ type: 'auth', device: 'silent', signature, agentVersion: 'test-silent' }));
    assert.equal((JSON.parse(await ready) as { type: string }).type, 'ready');
    silentLink.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { type: string; streamId?: string };
      if (message.type === 'stream.open' && message.streamId) streamOpensToSilent.push(message.streamId);
    });
  });

  after(async () => {
    silentLink?.terminate();
    await cleanup();
    await Promise.all([echo?.close(), closer?.close(), staller?.close()]);
  });

  describe('refusals, each with its own code', () => {
    it('unknown device: UNKNOWN_DEVICE', async () => {
      const r = await proxy('no-such-device');
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr, 'drawbridge: unknown device "no-such-device" [UNKNOWN_DEVICE]\n');
    });

    it('disabled device: DEVICE_DISABLED', async () => {
      const r = await proxy('disabled');
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr, 'drawbridge: device "disabled" is disabled [DEVICE_DISABLED]\n');
    });

    it('registered device without an agent: DEVICE_OFFLINE', async () => {
      const r = await proxy('offline');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /^drawbridge: device "offline" is offline .*\[DEVICE_OFFLINE\]\n$/);
    });

    it('operator without a grant: NOT_AUTHORIZED', async () => {
      const added = await runCli(['users', 'add', 'op', '--role', 'operator', '--json'], { env: hub.env });
      assert.equal(added.code, 0, added.stderr);
      const { token } = JSON.parse(added.stdout) as { token: string };
      const r = await proxy('echo', { ...hub.env, DRAWBRIDGE_TOKEN: token });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /^drawbridge: "op" has no active grant for device "echo".*\[NOT_AUTHORIZED\]\n$/);
    });

    it('target port closed at the edge: TARGET_REFUSED', async () => {
      const r = await proxy('refused');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /^drawbridge: the target 127\.0\.0\.1:\d+ refused the connection at the edge \[TARGET_REFUSED\]\n$/);
    });

    it('target unreachable from the edge: TARGET_UNREACHABLE', async () => {
      const r = await proxy('unreachable');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /^drawbridge: the target 255\.255\.255\.255:9 is unreachable from the edge \(ENETUNREACH\) \[TARGET_UNREACHABLE\]\n$/);
    });

    it('device side never answers: TIMEOUT after the rendezvous timeout', async () => {
      const before = streamOpensToSilent.length;
      const r = await proxy('silent');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /^drawbridge: the stream was not set up in time \(rendezvous timed out\) \[TIMEOUT\]\n$/);
      assert.equal(streamOpensToSilent.length, before + 1, 'the hub did ask the device');
    });

    it('the same refusals reach `drawbridge connect` per connection, and it keeps listening', async () => {
      const tunnel = await startConnect(hub.env, 'refused');
      for (let i = 0; i < 2; i++) {
        const socket = await openLocal(tunnel.port);
        const chunks: Buffer[] = [];
        socket.on('data', (c: Buffer) => chunks.push(c));
        socket.on('error', () => undefined);
        await new Promise((r) => socket.once('close', r));
        assert.equal(Buffer.concat(chunks).length, 0);
      }
      await waitFor(() => (tunnel.stderr().match(/TARGET_REFUSED/g) ?? []).length === 2, 5000, 'two TARGET_REFUSED lines');
      assert.match(tunnel.stderr(), /drawbridge: 127\.0\.0\.1:\d+: TARGET_REFUSED: the target 127\.0\.0\.1:\d+ refused the connection at the edge\n/);
      assert.equal(tunnel.child.exitCode, null);
      await stopProcess(tunnel.child);
    });
  });

  describe('closing either end closes the chain within 1 s', { timeout: 30_000 }, () => {
    let port: number;
    let tunnel: Awaited<ReturnType<typeof startConnect>>;
    before(async () => {
      tunnel = await startConnect(hub.env, 'closer');
      port = tunnel.port;
    });
    const targetConnection = (seen: number): Promise<void> =>
      waitFor(() => closer.sockets.length > seen, 10_000, 'target connection').catch((e: Error) => {
        throw new Error(`${e.message}\nconnect: ${tunnel.stderr()}\nagent: ${agent.stderr().slice(-3000)}\nhub: ${hub.stderr().slice(-3000)}`);
      });

    it('client destroys its socket: the target sees its connection close', async (t) => {
      const client = await openLocal(port);
      const seen = closer.sockets.length;
      client.write('hello');
      await targetConnection(seen);
      const serverSide = closer.sockets[seen] as Socket;
      await new Promise((r) => serverSide.once('data', r));
      const start = performance.now();
      const closed = timeToClose(serverSide, start);
      client.destroy();
      const ms = await closed;
      t.diagnostic(`target closed ${ms.toFixed(0)} ms after the client`);
      assert.ok(ms < 1500, `target connection closed after ${ms.toFixed(0)} ms`);
    });

    it('target destroys its socket: the client socket closes', async (t) => {
      const client = await openLocal(port);
      client.on('error', () => undefined);
      const seen = closer.sockets.length;
      client.write('hello');
      await targetConnection(seen);
      const serverSide = closer.sockets[seen] as Socket;
      await new Promise((r) => serverSide.once('data', r));
      const start = performance.now();
      const closed = timeToClose(client, start);
      client.resume();
      serverSide.destroy();
      const ms = await closed;
      t.diagnostic(`client closed ${ms.toFixed(0)} ms after the target`);
      assert.ok(ms < 1500, `client connection closed after ${ms.toFixed(0)} ms`);
    });
  });

  it('caps streams per device at the agent: the third of two allowed gets TOO_MANY_STREAMS', { timeout: 30_000 }, async () => {
    const tunnel = await startConnect(hub.env, 'capped');
    const held: Socket[] = [];
    for (let i = 0; i < 2; i++) {
      const socket = await openLocal(tunnel.port);
      socket.write(`held-${i}`);
      await new Promise((r) => socket.once('data', r)); // echoed: the stream is up at the edge
      held.push(socket);
    }
    const third = await openLocal(tunnel.port);
    third.on('error', () => undefined);
    const received: Buffer[] = [];
    third.on('data', (c: Buffer) => received.push(c));
    third.write('third');
    await new Promise((r) => third.once('close', r));
    assert.equal(Buffer.concat(received).length, 0);
    await waitFor(() => tunnel.stderr().includes('TOO_MANY_STREAMS'), 5000, 'TOO_MANY_STREAMS on stderr');
    assert.match(tunnel.stderr(), /TOO_MANY_STREAMS: device "capped" is at its limit of 2 concurrent streams/);

    // The held streams still work, and closing one frees a slot.
    const echoed = new Promise<Buffer>((r) => (held[0] as Socket).once('data', r));
    (held[0] as Socket).write('still-up');
    assert.equal((await echoed).toString(), 'still-up');
    (held[1] as Socket).destroy();
    await waitFor(async () => {
      try {
        return (await exchange(tunnel.port, 'fourth')).toString() === 'fourth';
      } catch {
        return false;
      }
    }, 10_000, 'a slot to free up');
    for (const s of held) s.destroy();
    await stopProcess(tunnel.child);
  });

  it('a target that never reads stalls the writer; the hub does not grow; then every byte arrives', { timeout: 60_000 }, async (t) => {
    const tunnel = await startConnect(hub.env, 'staller');
    const hubPid = hub.child.pid as number;
    const rssBefore = rssBytes(hubPid);

    const client = await openLocal(tunnel.port);
    const seen = staller.sockets.length;
    const sentHash = createHash('sha256');
    let accepted = 0;
    // Write until write() says stop, then wait for 'drain'; stalled = no drain for 2 s.
    let stalled = false;
    while (!stalled && accepted < 256 * MiB) {
      const chunk = randomBytes(256 * 1024);
      sentHash.update(chunk);
      accepted += chunk.length;
      if (!client.write(chunk)) {
        stalled = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => {
            client.off('drain', onDrain);
            resolve(true);
          }, 2000);
          const onDrain = (): void => {
            clearTimeout(timer);
            resolve(false);
          };
          client.once('drain', onDrain);
        });
      }
    }
    const rssStalled = rssBytes(hubPid);
    t.diagnostic(`stalled after ${(accepted / MiB).toFixed(1)} MiB; hub RSS ${(rssBefore / MiB).toFixed(1)} -> ${(rssStalled / MiB).toFixed(1)} MiB`);
    assert.ok(stalled, `the writer never stalled (${(accepted / MiB).toFixed(1)} MiB accepted)`);
    assert.ok(accepted < 64 * MiB, `${(accepted / MiB).toFixed(1)} MiB accepted before the stall`);
    assert.ok(rssStalled - rssBefore < 32 * MiB, `hub RSS grew by ${((rssStalled - rssBefore) / MiB).toFixed(1)} MiB`);

    // Now the target reads: every byte arrives, in order, unchanged.
    const serverSide = staller.sockets[seen] as Socket;
    assert.ok(serverSide, 'the target has the connection');
    const receivedHash = createHash('sha256');
    let received = 0;
    serverSide.on('data', (c: Buffer) => {
      receivedHash.update(c);
      received += c.length;
    });
    const ended = new Promise((r) => serverSide.once('end', r));
    serverSide.resume();
    client.end();
    await ended;
    assert.equal(received, accepted);
    assert.equal(receivedHash.digest('hex'), sentHash.digest('hex'));
    client.destroy();
    await stopProcess(tunnel.child);
  });

  it('the hub still serves normal streams after all of the above', async () => {
    const tunnel = await startConnect(hub.env, 'echo');
    assert.equal((await exchange(tunnel.port, 'after the errors')).toString(), 'after the errors');
    await stopProcess(tunnel.child);
    assert.ok(silentLink, 'the silent link existed');
    silentLink?.close(1000);
    await closeOf(silentLink as WebSocket);
  });
});

describe('a disabled device does not lock out its neighbours', { timeout: 90_000 }, () => {
  let hub: HubProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;

  after(async () => {
    await cleanup();
    await echo?.close();
  });

  it('its agent retrying with a valid key does not count as failed authentication', async () => {
    // A low limit, so that a few counted failures would lock this source (the agent, and
    // here every client too, all on 127.0.0.1) out of the hub.
    const config = join(tempDir('db-hubcfg-'), 'hub.yaml');
    writeFileSync(config, 'limits:\n  authFailuresPerMinute: 3\n');
    hub = await startHubProcess({ config });
    echo = await startEchoServer();
    const configPath = join(tempDir('db-agent-'), 'agent.yaml');
    for (const name of ['site-off', 'site-on']) {
      const enrolled = await enrollAgent(await addDevice(hub, name), `127.0.0.1:${echo.port}`, configPath);
      assert.equal(enrolled.code, 0, enrolled.stderr);
    }
    const agent = await startAgentProcess(configPath, ['site-off', 'site-on']);
    const logBefore = agent.stderr().length;
    const disabled = await runCli(['devices', 'disable', 'site-off'], { env: hub.env });
    assert.equal(disabled.code, 0, disabled.stderr);
    // The agent keeps retrying site-off (so it is back soon after an enable); each retry is refused.
    const refusals = (): string[] =>
      agent.stderr().slice(logBefore).split('\n').filter((l) => l.includes('"device":"site-off"') && l.includes('"hub link failed; retrying"'));
    await waitFor(() => refusals().length >= 4, 20_000, 'four refused reconnects');
    assert.ok(refusals().every((l) => l.includes('"errorCode":"DEVICE_DISABLED"')), refusals().join('\n'));

    const listed = await runCli(['devices', 'list', '--json'], { env: hub.env });
    assert.equal(listed.code, 0, listed.stderr);
    const tunnel = await startConnect(hub.env, 'site-on');
    assert.equal((await exchange(tunnel.port, 'neighbour')).toString(), 'neighbour');
  });
});
