/**
 * Streams through an in-process hub, agent and client tunnel on real sockets and TLS:
 * integrity, half-close, every way a stream ends (and what the audit says), slots freed at
 * once, and flow control that keeps a frozen reader from stalling anyone else.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { tlsOptions } from '../../src/client/trust.js';
import type { AuditView, SessionView } from '../../src/protocol/api-types.js';
import { Hello, StreamOpen } from '../../src/protocol/messages/index.js';
import { Link } from '../../src/transport/link.js';
import { dialLink } from '../../src/transport/upgrade.js';
import { systemClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';
import { echoServer, startHarness, type Harness } from './stream-harness.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Connects, writes `data`, half-closes, and collects everything until the peer ends. */
function exchange(port: number, data: Buffer | string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      socket.end();
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', reject);
    socket.on('connect', () => socket.end(data));
  });
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A TCP server that runs `onSocket` for each connection. */
async function server(onSocket: (s: Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const srv: Server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    onSocket(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      srv.close(() => r());
    }),
  };
}

async function closeRecord(h: Harness, session: string): Promise<AuditView> {
  let found: AuditView | undefined;
  await until(async () => {
    const { records } = await h.admin.request<{ records: AuditView[] }>('GET', '/v1/audit?action=stream.close&order=desc&limit=200');
    found = records.find((r) => r.details['session'] === session);
    return found !== undefined;
  }, `close record of ${session}`);
  return found as AuditView;
}

describe('streams over the multiplexed links', { timeout: 120_000 }, () => {
  let h: Harness;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let reply: Awaited<ReturnType<typeof echoServer>>;
  let echoPort: number;
  let replyPort: number;
  const events: { type: string; session?: string; code?: string }[] = [];

  before(async () => {
    h = await startHarness();
    echo = await echoServer();
    reply = await echoServer({ onEndReply: 'reply-after-eof' });
    const config = await h.enroll('echo-dev', `127.0.0.1:${echo.port}`);
    await h.enroll('reply-dev', `127.0.0.1:${reply.port}`, { configPath: config });
    await h.startAgent(config);
    const record = (e: { type: string; session?: string; error?: { code: string } }): void => {
      events.push({ type: e.type, ...(e.session ? { session: e.session } : {}), ...(e.error ? { code: e.error.code } : {}) });
    };
    echoPort = (await h.tunnel(h.admin, 'echo-dev', record)).port;
    replyPort = (await h.tunnel(h.admin, 'reply-dev', record)).port;
  });

  after(async () => {
    await h?.close();
    await echo?.close();
    await reply?.close();
  });

  it('two devices of one agent share one edge link, and one client link carries both tunnels', async () => {
    const health = await h.admin.request<{ edgesOnline: number; devicesOnline: number }>('GET', '/healthz');
    assert.equal(health.edgesOnline, 1);
    assert.equal(health.devicesOnline, 2);
    await exchange(echoPort, 'a');
    await exchange(replyPort, 'b');
    assert.equal(h.hub.services.clientLinks.size, 1, 'one client link for both tunnels of this client');
  });

  it('carries 64 MiB of random data both ways unchanged, with exact byte counts in the audit', async () => {
    const data = randomBytes(64 * 1024 * 1024);
    const before = events.length;
    const back = await exchange(echoPort, data);
    assert.equal(back.length, data.length);
    assert.equal(sha(back), sha(data));
    await until(() => events.slice(before).some((e) => e.type === 'close'), 'close event');
    const session = events.slice(before).find((e) => e.type === 'close')?.session as string;
    const record = await closeRecord(h, session);
    assert.equal(record.details['reason'], 'closed');
    assert.equal(record.details['bytesToDevice'], data.length);
    assert.equal(record.details['bytesFromDevice'], data.length);
  });

  it('carries 50 concurrent streams with distinct data intact', async () => {
    const payloads = Array.from({ length: 50 }, (_, i) => Buffer.concat([Buffer.from(`stream-${i}:`), randomBytes(64 * 1024 + i * 1000)]));
    const results = await Promise.all(payloads.map((p) => exchange(echoPort, p)));
    results.forEach((r, i) => assert.equal(sha(r), sha(payloads[i] as Buffer), `stream ${i} corrupted`));
  });

  it('carries a half-close from the client: it stops sending and still receives the reply', async () => {
    assert.equal((await exchange(replyPort, 'hello')).toString(), 'helloreply-after-eof');
  });

  it('carries a half-close from the target: the client still sends after the target finished', async () => {
    const srv = await server((s) => {
      s.end('banner-then-eof');
      const got: Buffer[] = [];
      s.on('data', (c: Buffer) => got.push(c));
      s.on('end', () => {
        received = Buffer.concat(got).toString();
      });
    });
    let received = '';
    const config = await h.enroll('halfclose-dev', `127.0.0.1:${srv.port}`);
    await h.startAgent(config);
    const { port } = await h.tunnel(h.admin, 'halfclose-dev');
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await new Promise((r) => socket.once('end', r));
    assert.equal(Buffer.concat(chunks).toString(), 'banner-then-eof');
    socket.end('written after the target ended');
    await until(() => received === 'written after the target ended', 'target got the late data');
    await srv.close();
  });

  it('clients that connect and leave before their stream is set up (nc -z, a client giving up) never leak a stream', async () => {
    // 200 port checks, more than the device's 64-stream limit: half close in order at once
    // (nc -z), half reset (a client that gives up), some before the stream even opened.
    for (let i = 0; i < 200; i++) {
      await new Promise<void>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: echoPort });
        s.on('connect', () => (i % 2 === 0 ? s.end() : s.resetAndDestroy()));
        s.on('close', () => resolve());
        s.on('error', () => resolve());
      });
    }
    const health = async (): Promise<number> => (await h.admin.request<{ activeStreams: number }>('GET', '/healthz')).activeStreams;
    const sessions = async (): Promise<number> => (await h.admin.request<{ sessions: unknown[] }>('GET', '/v1/sessions')).sessions.length;
    await until(async () => (await health()) === 0 && (await sessions()) === 0, 'healthz activeStreams and sessions list are 0');
    await until(() => echo.sockets.size === 0, 'every target connection closed at the edge');
    assert.equal((await exchange(echoPort, 'still works')).toString(), 'still works');
  });

  it('a closed stream frees its slot at once: 300 back-to-back connections under a limit of 4 are never refused', async () => {
    const limited = await startHarness({ config: { limits: { maxStreamsPerDevice: 4 } } });
    try {
      const config = await limited.enroll('tight', `127.0.0.1:${echo.port}`);
      await limited.startAgent(config);
      const refused: string[] = [];
      const { port } = await limited.tunnel(limited.admin, 'tight', (e) => {
        if (e.error) refused.push(e.error.code);
      });
      for (let i = 0; i < 300; i++) assert.equal((await exchange(port, `n${i}`)).toString(), `n${i}`);
      assert.deepEqual(refused, []);
    } finally {
      await limited.close();
    }
  });

  it('the client resetting its connection closes the target connection, audited as CONNECTION_RESET', async () => {
    const before = events.length;
    const socket = connect({ host: '127.0.0.1', port: echoPort });
    socket.on('error', () => undefined);
    await new Promise((r) => socket.once('connect', r));
    socket.write('x');
    await new Promise((r) => socket.once('data', r));
    const targets = echo.sockets.size;
    const closedAt = Date.now();
    socket.resetAndDestroy();
    await until(() => echo.sockets.size === targets - 1, 'target connection closed');
    assert.ok(Date.now() - closedAt < 2000);
    await until(() => events.slice(before).some((e) => e.type !== 'open'), 'end event');
    const session = events.slice(before).find((e) => e.session)?.session as string;
    assert.equal((await closeRecord(h, session)).details['reason'], 'CONNECTION_RESET');
  });

  it('the target closing while the client keeps writing fails the client within moments, audited as TARGET_CLOSED', async () => {
    const srv = await server((s) => {
      s.once('data', () => s.destroy()); // reads a little, then goes away (RST on further data)
    });
    const config = await h.enroll('closer-dev', `127.0.0.1:${srv.port}`);
    await h.startAgent(config);
    const ended: { code?: string; session?: string }[] = [];
    const { port } = await h.tunnel(h.admin, 'closer-dev', (e) => {
      if (e.type !== 'open') ended.push({ ...(e.error ? { code: e.error.code } : {}), ...(e.session ? { session: e.session } : {}) });
    });
    const socket = connect({ host: '127.0.0.1', port });
    let failed = false;
    socket.on('error', () => (failed = true));
    socket.on('close', () => (failed = true));
    await new Promise((r) => socket.once('connect', r));
    const chunk = Buffer.alloc(64 * 1024);
    let written = 0;
    const started = Date.now();
    while (!failed && Date.now() - started < 10_000) {
      if (!socket.write(chunk)) await new Promise((r) => setTimeout(r, 1));
      written += chunk.length;
      if (written % (1024 * 1024) === 0) await new Promise((r) => setImmediate(r));
    }
    assert.ok(failed, 'the client connection failed');
    assert.ok(Date.now() - started < 5000, `failed after ${Date.now() - started} ms`);
    await until(() => ended.length > 0, 'end event');
    const record = await closeRecord(h, ended[0]?.session as string);
    assert.equal(record.details['reason'], 'TARGET_CLOSED', JSON.stringify(record.details));
    assert.ok(Number(record.details['bytesToDevice']) < 32 * 1024 * 1024, 'no gigabytes dropped silently');
    await srv.close();
  });

  it('kill ends a session at once and the client is told SESSION_KILLED', async () => {
    const before = events.length;
    const socket = connect({ host: '127.0.0.1', port: echoPort });
    socket.on('error', () => undefined);
    await new Promise((r) => socket.once('connect', r));
    socket.write('x');
    await new Promise((r) => socket.once('data', r));
    const { sessions } = await h.admin.request<{ sessions: SessionView[] }>('GET', '/v1/sessions');
    const session = sessions.find((s) => s.device === 'echo-dev' && s.joined) as SessionView;
    const killedAt = Date.now();
    await h.admin.request('DELETE', `/v1/sessions/${session.id}`);
    await new Promise((r) => socket.once('close', r));
    assert.ok(Date.now() - killedAt < 1000);
    await until(() => events.slice(before).some((e) => e.code === 'SESSION_KILLED'), 'SESSION_KILLED event');
  });

  it('a sender that ignores flow control has its stream reset (PROTOCOL_ERROR), and only that stream', async () => {
    const dialed = await dialLink({ hubUrl: h.hub.url, path: '/v1/link/client', tls: tlsOptions({ caPem: h.hub.caPem, caPin: h.hub.caPin }), headers: { authorization: `Bearer ${h.hub.bootstrapAdminToken as string}` } });
    const resets: string[] = [];
    const hostile = new Link({ socket: dialed.socket, head: dialed.head, side: 'client', self: 'client', peer: 'hub', clock: systemClock, logger: silentLogger(), pingIntervalMs: 60_000 });
    hostile.streams = { onData: () => undefined, onCredit: () => undefined, onEof: () => undefined, onReset: (_id, reason) => resets.push(reason) };
    const hello = new Promise<{ streamWindowBytes: number }>((resolve) => hostile.handle(Hello, (b) => resolve(b.limits)));
    hostile.peerCapabilities.add('streams');
    const { streamWindowBytes } = await hello;
    const opened = await hostile.request(StreamOpen, { stream: 1, device: 'echo-dev' });
    const chunk = Buffer.alloc(16_000);
    // The echo target sends everything back, and this end never grants credit for it, so the
    // echo stalls; meanwhile this end sends far beyond its own window.
    // Kernel buffers on loopback absorb a few MiB before the back-pressure reaches the hub.
    for (let sent = 0; resets.length === 0 && sent < 256 * 1024 * 1024; sent += chunk.length) {
      hostile.sendData(1, chunk);
      if (sent % streamWindowBytes < chunk.length) await hostile.writable().then(() => new Promise((r) => setTimeout(r, 5)));
    }
    await until(() => resets.length > 0, 'the hub reset the stream');
    assert.match(resets[0] as string, /^PROTOCOL_ERROR: stream protocol violation/);
    assert.equal((await closeRecord(h, opened.session)).details['reason'], 'PROTOCOL_ERROR');
    assert.equal((await exchange(echoPort, 'others are fine')).toString(), 'others are fine');
    hostile.close(1000, 'done');
  });

  it('a frozen reader stalls only its own stream; the hub and agent hold at most about a window for it', async () => {
    const pushed = { bytes: 0 };
    let blocked = false;
    const firehose = await server((s) => {
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = (): void => {
        while (pushed.bytes < 200 * 1024 * 1024) {
          pushed.bytes += chunk.length;
          if (!s.write(chunk)) {
            blocked = true;
            s.once('drain', pump);
            return;
          }
        }
        s.end();
      };
      s.once('data', pump);
    });
    const config = await h.enroll('firehose-dev', `127.0.0.1:${firehose.port}`);
    await h.startAgent(config);
    const { port } = await h.tunnel(h.admin, 'firehose-dev');
    const frozen = connect({ host: '127.0.0.1', port });
    frozen.on('error', () => undefined);
    await new Promise((r) => frozen.once('connect', r));
    frozen.write('go');
    frozen.pause(); // never reads
    await until(() => blocked, 'the target is blocked by back-pressure');
    await new Promise((r) => setTimeout(r, 300));
    const stalledAt = pushed.bytes;
    const { sessions } = await h.admin.request<{ sessions: SessionView[] }>('GET', '/v1/sessions');
    const relayed = sessions.find((s) => s.device === 'firehose-dev')?.bytesFromDevice ?? 0;
    // Kernel socket buffers on loopback hold a few MiB at each hop; the relay adds one window.
    assert.ok(stalledAt < 64 * 1024 * 1024, `target pushed ${stalledAt} bytes into a frozen reader`);
    assert.ok(relayed < 32 * 1024 * 1024, `hub relayed ${relayed} bytes to a frozen reader`);
    // Meanwhile another stream through the same hub moves data at full speed.
    const data = randomBytes(16 * 1024 * 1024);
    assert.equal(sha(await exchange(echoPort, data)), sha(data));
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(pushed.bytes - stalledAt < 4 * 1024 * 1024, 'the frozen stream did not move meanwhile');
    // Thawed, every byte arrives.
    let received = 0;
    frozen.on('data', (c: Buffer) => (received += c.length));
    frozen.resume();
    await new Promise((r) => frozen.once('end', r));
    assert.equal(received, 200 * 1024 * 1024);
    frozen.destroy();
    await firehose.close();
  });
});
