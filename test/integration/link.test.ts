/**
 * The link on its own, over a real TCP connection: control requests and replies, unknown
 * and invalid messages, capabilities, size limits, priority of control over stream data,
 * send-side backpressure and liveness (with a manual clock).
 */
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { z } from 'zod';
import { DrawbridgeError } from '../../src/errors.js';
import { defineMessage, encodeEnvelope } from '../../src/protocol/control.js';
import { encodeText } from '../../src/protocol/frames.js';
import { Link, type LinkCloseInfo } from '../../src/transport/link.js';
import { ManualClock, systemClock, type Clock } from '../../src/util/clock.js';

const Echo = defineMessage({
  type: 'test.echo', from: 'client', to: ['hub'], summary: 'test', body: z.strictObject({ text: z.string().max(100) }),
  result: z.strictObject({ text: z.string() }), maxBytes: 256,
});
const Note = defineMessage({ type: 'test.note', from: 'hub', to: ['client'], summary: 'test', capability: 'test-feature', body: z.strictObject({ n: z.number() }) });
const Ping = defineMessage({ type: 'test.ping', from: 'hub', to: ['client'], summary: 'test', body: z.strictObject({ n: z.number() }) });

function captureLogger(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines: () => lines };
}

const sockets: Socket[] = [];
after(() => {
  for (const s of sockets) s.destroy();
});

/** A hub-side and a client-side Link over one real TCP connection. */
async function pair(options: { clock?: Clock; pingIntervalMs?: number; clientClock?: Clock } = {}): Promise<{ hub: Link; client: Link; hubLog: ReturnType<typeof captureLogger>; closed: { hub?: LinkCloseInfo; client?: LinkCloseInfo }; hubSocket: Socket; clientSocket: Socket }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const clientSocket = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1' });
  const hubSocket = await accepted;
  server.close();
  sockets.push(clientSocket, hubSocket);
  const hubLog = captureLogger();
  const closed: { hub?: LinkCloseInfo; client?: LinkCloseInfo } = {};
  const common = { clock: options.clock ?? systemClock, pingIntervalMs: options.pingIntervalMs ?? 60_000 };
  const hub = new Link({ ...common, socket: hubSocket, side: 'server', self: 'hub', peer: 'client', logger: hubLog.logger, onClose: (i) => (closed.hub = i) });
  const client = new Link({ ...common, clock: options.clientClock ?? common.clock, socket: clientSocket, side: 'client', self: 'client', peer: 'hub', logger: captureLogger().logger, onClose: (i) => (closed.client = i) });
  return { hub, client, hubLog, closed, hubSocket, clientSocket };
}

const until = async (check: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), what);
};

describe('link control messages', () => {
  it('matches replies to requests and validates both', async () => {
    const { hub, client } = await pair();
    hub.handle(Echo, (body) => ({ text: body.text.toUpperCase() }));
    const results = await Promise.all(['a', 'b', 'c'].map((text) => client.request(Echo, { text })));
    assert.deepEqual(results, [{ text: 'A' }, { text: 'B' }, { text: 'C' }]);
  });

  it('answers a refused request with its error code and message', async () => {
    const { hub, client } = await pair();
    hub.handle(Echo, () => {
      throw new DrawbridgeError('NOT_AUTHORIZED', 'no grant here');
    });
    await assert.rejects(client.request(Echo, { text: 'x' }), (e: DrawbridgeError) => e.code === 'NOT_AUTHORIZED' && e.message === 'no grant here');
  });

  it('ignores an unknown type (logged, not fatal) and answers an unknown request with UNSUPPORTED', async () => {
    const { hub, client, hubLog, clientSocket } = await pair();
    hub.handle(Echo, (body) => body);
    // Raw frames a newer peer might send.
    clientSocket.write(encodeText(encodeEnvelope({ v: 2, type: 'future.thing', body: { x: 1 } }), true));
    const replies: string[] = [];
    clientSocket.write(encodeText(encodeEnvelope({ v: 2, type: 'future.request', id: 99, body: {} }), true));
    clientSocket.on('data', (c: Buffer) => replies.push(c.toString()));
    await until(() => replies.join('').includes('UNSUPPORTED'), 'UNSUPPORTED error reply');
    assert.match(replies.join(''), /"re":99/);
    assert.ok(hubLog.lines().some((l) => l['msg'] === 'ignored a control message of a type not handled here' && l['type'] === 'future.thing'));
    assert.equal(hub.isOpen, true, 'the link stays open');
    assert.deepEqual(await client.request(Echo, { text: 'still here' }), { text: 'still here' });
  });

  it('refuses a request over its type size limit (PAYLOAD_TOO_LARGE) and an invalid body (VALIDATION_FAILED), and stays open', async () => {
    const { hub, client, clientSocket } = await pair();
    hub.handle(Echo, (body) => body);
    const replies: string[] = [];
    clientSocket.on('data', (c: Buffer) => replies.push(c.toString()));
    clientSocket.write(encodeText(encodeEnvelope({ v: 2, type: 'test.echo', id: 5, body: { text: 'y'.repeat(300) } }), true));
    clientSocket.write(encodeText(encodeEnvelope({ v: 2, type: 'test.echo', id: 6, body: { text: 1 } }), true));
    await until(() => replies.join('').includes('"re":6'), 'two error replies');
    assert.match(replies.join(''), /"re":5,"body":\{"code":"PAYLOAD_TOO_LARGE"/);
    assert.match(replies.join(''), /"re":6,"body":\{"code":"VALIDATION_FAILED","message":"invalid \\"test.echo\\": text/);
    assert.deepEqual(await client.request(Echo, { text: 'ok' }), { text: 'ok' });
  });

  it('sends a type only to a peer that announced its capability', async () => {
    const { hub, client } = await pair();
    const got: number[] = [];
    client.handle(Note, (b) => void got.push(b.n));
    client.handle(Ping, (b) => void got.push(b.n));
    assert.equal(hub.send(Note, { n: 1 }), false, 'peer lacks test-feature');
    hub.peerCapabilities.add('test-feature');
    assert.equal(hub.send(Note, { n: 2 }), true);
    assert.equal(hub.send(Ping, { n: 3 }), true);
    await until(() => got.length === 2, 'two notifications');
    assert.deepEqual(got, [2, 3]);
  });

  it('closes 1008 PROTOCOL_ERROR on a malformed envelope', async () => {
    const { hub, clientSocket, closed } = await pair();
    void hub;
    clientSocket.write(encodeText('{not json', true));
    await until(() => closed.hub !== undefined, 'hub closed the link');
    assert.equal(closed.hub?.code, 1008);
    assert.equal(closed.hub?.errorCode, 'PROTOCOL_ERROR');
  });

  it('fails pending requests at once when the link closes', async () => {
    const { hub, client } = await pair();
    hub.handle(Echo, () => new Promise(() => undefined));
    const pending = client.request(Echo, { text: 'never answered' });
    hub.closeWithError(new DrawbridgeError('HUB_SHUTTING_DOWN'));
    await assert.rejects(pending, (e: DrawbridgeError) => e.code === 'HUB_SHUTTING_DOWN');
  });
});

describe('link writing', () => {
  it('puts a control message ahead of stream data already queued behind a slow reader', async () => {
    const { hub, client, clientSocket } = await pair();
    const order: string[] = [];
    let dataBytes = 0;
    client.streams = {
      onData: (_id, d) => {
        dataBytes += d.length;
        if (order[order.length - 1] !== 'data') order.push('data');
      },
      onCredit: () => undefined,
      onEof: () => order.push('eof'),
      onReset: () => undefined,
    };
    client.handle(Ping, () => void order.push('control'));
    clientSocket.pause();
    const chunk = Buffer.alloc(16_000, 1);
    for (let i = 0; i < 400; i++) hub.sendData(1, chunk); // 6.4 MB: most of it waits in the link's queue
    hub.sendEof(1);
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(hub.backlogBytes > 1_000_000, 'data is backed up');
    hub.send(Ping, { n: 1 });
    clientSocket.resume();
    await until(() => order.includes('eof'), 'everything arrived');
    assert.equal(dataBytes, 400 * 16_000);
    // The control message overtook the queued data; EOF stayed behind it.
    assert.deepEqual(order, ['data', 'control', 'data', 'eof']);
  });

  it('writable() waits while the socket is backed up and resolves once it drains', async () => {
    const { hub, clientSocket } = await pair();
    clientSocket.pause();
    for (let i = 0; i < 400; i++) hub.sendData(1, Buffer.alloc(16_000));
    await new Promise((r) => setTimeout(r, 20));
    let ready = false;
    const waiting = hub.writable().then(() => (ready = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(ready, false, 'still backed up');
    clientSocket.resume();
    await waiting;
  });
});

describe('link liveness', () => {
  it('cuts a link that stays silent for two ping intervals, and not before', async () => {
    const clock = new ManualClock();
    // A frozen peer: its timers never run (its own clock stands still) and it reads nothing.
    const { hub, clientSocket, closed } = await pair({ clock, clientClock: new ManualClock(), pingIntervalMs: 10_000 });
    clientSocket.pause();
    await clock.advance(10_000);
    await clock.advance(10_000);
    assert.equal(hub.isOpen, true, 'one silent interval is tolerated');
    await clock.advance(10_000);
    await until(() => closed.hub !== undefined, 'link cut');
    assert.equal(closed.hub?.errorCode, 'LINK_LOST', JSON.stringify(closed.hub));
  });

  it('keeps a link whose peer answers pings', async () => {
    const clock = new ManualClock();
    const { hub } = await pair({ clock, pingIntervalMs: 10_000 });
    for (let i = 0; i < 6; i++) {
      await clock.advance(10_000);
      await new Promise((r) => setTimeout(r, 20)); // the pong travels over the real socket
    }
    assert.equal(hub.isOpen, true);
    assert.ok(hub.rttMs !== undefined && hub.rttMs >= 0, 'round-trip time measured');
  });

  it('sends no ping over an interval in which the peer was heard: a quiet link carries at most one ping (and its pong) per interval in all, not one each way', async () => {
    const clock = new ManualClock();
    const { hub, client, hubSocket, clientSocket } = await pair({ clock, pingIntervalMs: 10_000 });
    let fromClient = 0;
    let fromHub = 0;
    hubSocket.on('data', (chunk: Buffer) => void (fromClient += chunk.length));
    clientSocket.on('data', (chunk: Buffer) => void (fromHub += chunk.length));
    const intervals = 12;
    for (let i = 0; i < intervals; i++) {
      await clock.advance(10_000);
      await new Promise((r) => setTimeout(r, 20));
    }
    // A ping or pong with its 8-byte payload: 14 bytes from the client (masked), 10 from the hub.
    const frames = fromClient / 14 + fromHub / 10;
    assert.ok(Number.isInteger(frames), `only pings and pongs crossed (${fromClient} + ${fromHub} bytes)`);
    assert.ok(frames > 0, 'a quiet link still pings');
    assert.ok(frames <= 2 * intervals, `${frames} ping and pong frames in ${intervals} intervals (both ends pinging every interval would make ${4 * intervals})`);
    assert.ok(hub.isOpen && client.isOpen);
  });
});
