/**
 * Streams end to end with real processes: hub, agent and `drawbridge connect`, carrying
 * bytes to a real TCP echo server.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  addDeviceWithAgent,
  cleanup,
  exchange,
  startConnect,
  startEchoServer,
  startHubProcess,
  type HubProcess,
} from './helpers.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('streams through hub and agent', () => {
  let hub: HubProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let replyServer: Awaited<ReturnType<typeof startEchoServer>>;
  let tunnelPort: number;
  let replyTunnelPort: number;

  before(async () => {
    hub = await startHubProcess();
    echo = await startEchoServer();
    replyServer = await startEchoServer({ onEndReply: 'reply-after-eof' });
    await addDeviceWithAgent(hub, 'echo-dev', `127.0.0.1:${echo.port}`);
    await addDeviceWithAgent(hub, 'reply-dev', `127.0.0.1:${replyServer.port}`);
    tunnelPort = (await startConnect(hub.env, 'echo-dev')).port;
    replyTunnelPort = (await startConnect(hub.env, 'reply-dev')).port;
  });

  after(async () => {
    await cleanup();
    await echo?.close();
    await replyServer?.close();
  });

  it('carries 64 MiB of random data both ways unchanged', async () => {
    const data = randomBytes(64 * 1024 * 1024);
    const back = await exchange(tunnelPort, data);
    assert.equal(back.length, data.length);
    assert.equal(sha(back), sha(data));
  });

  it('carries 50 concurrent streams with distinct data intact', async () => {
    const payloads = Array.from({ length: 50 }, (_, i) => Buffer.concat([Buffer.from(`stream-${i}:`), randomBytes(64 * 1024 + i * 1000)]));
    const results = await Promise.all(payloads.map((p) => exchange(tunnelPort, p)));
    results.forEach((r, i) => assert.equal(sha(r), sha(payloads[i] as Buffer), `stream ${i} corrupted`));
  });

  it('carries a half-close: the client stops sending and still receives the reply', async () => {
    const back = await exchange(replyTunnelPort, 'hello');
    assert.equal(back.toString(), 'helloreply-after-eof');
  });

  it('keeps the other direction open after one side half-closes, for a while', async () => {
    const socket = connect({ host: '127.0.0.1', port: replyTunnelPort, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await new Promise((r) => socket.once('connect', r));
    socket.write('part1-');
    await new Promise((r) => setTimeout(r, 300));
    socket.end('part2');
    await new Promise((r) => socket.once('end', r));
    socket.destroy();
    assert.equal(Buffer.concat(chunks).toString(), 'part1-part2reply-after-eof');
  });
});
