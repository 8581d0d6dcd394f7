/**
 * Connection limits at the socket level: a TLS connection that never sends a request is
 * closed, and concurrent connections are capped in total and per source address; over a
 * cap a new connection is closed at once. Each closed connection is counted in a metric.
 */
import assert from 'node:assert/strict';
import type { TLSSocket } from 'node:tls';
import { after, afterEach, before, describe, it } from 'node:test';
import { closed, openTls } from './raw-http.js';
import { startHarness, type Harness } from './stream-harness.js';

async function metric(h: Harness, reason: string): Promise<number> {
  const { text } = await h.admin.raw('GET', '/metrics');
  return Number(new RegExp(`^drawbridge_connections_closed_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
}

describe('connections that never send a request', { timeout: 60_000 }, () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ config: { server: { firstRequestTimeout: '1s' } } });
  });
  after(() => h.close());

  it('are closed after server.firstRequestTimeout, counted in the metric', async () => {
    const socket = await openTls(h.hub.port, h.hub.caPem, '127.0.0.5');
    // Before the fix this socket stayed open (70 s and more); the test would run into its timeout.
    await closed(socket);
    assert.equal(await metric(h, 'first_request_timeout'), 1);
  });

  it('leave connections that do send a request alone', async () => {
    const socket = await openTls(h.hub.port, h.hub.caPem, '127.0.0.6');
    socket.write('GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
    const answered = await new Promise<string>((resolve) => socket.once('data', (c: Buffer) => resolve(c.toString())));
    assert.match(answered, /^HTTP\/1.1 200/);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(socket.destroyed, false, 'a kept-alive connection that made a request is not cut by the first-request timeout');
    socket.destroy();
  });
});

describe('connection caps', { timeout: 60_000 }, () => {
  let h: Harness;
  const open: TLSSocket[] = [];
  before(async () => {
    // The harness's own admin client uses 127.0.0.1; the test's connections come from 127.0.0.x.
    h = await startHarness({ config: { server: { maxConnections: 12, maxConnectionsPerAddress: 4, firstRequestTimeout: '1m' } } });
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.destroy();
  });
  after(() => h.close());

  it('closes a new connection from an address that holds its share, and only from that address', async () => {
    for (let i = 0; i < 4; i++) open.push(await openTls(h.hub.port, h.hub.caPem, '127.0.0.7'));
    await assert.rejects(openTls(h.hub.port, h.hub.caPem, '127.0.0.7'), 'the fifth connection from one address is closed at once');
    open.push(await openTls(h.hub.port, h.hub.caPem, '127.0.0.8'));
    assert.equal(await metric(h, 'over_address_cap'), 1);
    // A closed connection frees its place.
    const first = open.shift() as TLSSocket;
    first.destroy();
    await closed(first);
    await new Promise((resolve) => setTimeout(resolve, 50));
    open.push(await openTls(h.hub.port, h.hub.caPem, '127.0.0.7'));
  });

  it('closes new connections over the total cap', async () => {
    await new Promise((resolve) => setTimeout(resolve, 200)); // the hub sees the last test's sockets close
    // Each from its own address, so no per-address cap is near; the admin client holds one or two more.
    let opened = 0;
    let refused = 0;
    for (let i = 0; i < 16; i++) {
      await openTls(h.hub.port, h.hub.caPem, `127.0.1.${10 + i}`).then((s) => (open.push(s), opened++), () => refused++);
    }
    assert.ok(opened >= 9 && opened <= 12, `${opened} connections were let in under a total cap of 12`);
    assert.equal(refused, 16 - opened);
    for (const s of open.splice(0)) s.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(await metric(h, 'over_total_cap'), refused);
  });
});
