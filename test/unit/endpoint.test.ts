/**
 * A stream endpoint on its own, joined to a link whose other end plays the hub: credit is
 * granted only as the local side takes bytes, a sender is held to the window, EOF and RESET
 * reach the local side, and local events from before the stream opened are not lost.
 */
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { StreamEndpoint } from '../../src/stream/endpoint.js';
import { linkPair, until, type LinkPair } from './link-pair.js';

const WINDOW = 64 * 1024;

interface HubSide {
  data: number;
  credit: number;
  eof: boolean;
  reset?: string;
}

async function setup(pairs: LinkPair[], output: Writable = new PassThrough()): Promise<{ endpoint: StreamEndpoint; hub: HubSide; pair: LinkPair; input: PassThrough; output: Writable }> {
  const pair = await linkPair('agent');
  pairs.push(pair);
  const hub: HubSide = { data: 0, credit: 0, eof: false };
  pair.hub.streams = {
    onData: (_id, d) => (hub.data += d.length),
    onCredit: (_id, n) => (hub.credit += n),
    onEof: () => (hub.eof = true),
    onReset: (_id, r) => (hub.reset = r),
  };
  const input = new PassThrough();
  const endpoint = new StreamEndpoint({ input, output, destroy: () => input.destroy(), role: 'target' });
  endpoint.bind(pair.peer, 7, WINDOW, () => undefined);
  pair.peer.streams = { onData: (_id, d) => endpoint.onData(d), onCredit: (_id, n) => endpoint.onCredit(n), onEof: () => endpoint.onEof(), onReset: (_id, r) => endpoint.onReset(r) };
  return { endpoint, hub, pair, input, output };
}

describe('stream endpoint', () => {
  const pairs: LinkPair[] = [];
  after(() => {
    for (const p of pairs) for (const s of p.sockets) s.destroy();
  });

  it('sends at most one window until credit comes, then the rest', async () => {
    const { endpoint, hub, pair, input } = await setup(pairs);
    endpoint.start();
    input.write(Buffer.alloc(200 * 1024));
    await until(() => hub.data === WINDOW, 'one window');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(hub.data, WINDOW, 'no more without credit');
    pair.hub.sendCredit(7, 200 * 1024 - WINDOW);
    await until(() => hub.data === 200 * 1024, 'the rest');
  });

  it('grants credit only as the local output takes bytes', async () => {
    const held: (() => void)[] = [];
    const release = (): void => {
      // Releasing one write lets the stream hand over the next: release until none is held.
      while (held.length > 0) (held.shift() as () => void)();
    };
    const slow = new Writable({
      highWaterMark: 1024,
      write(_chunk, _enc, cb) {
        held.push(cb); // holds every write until released
      },
    });
    const { endpoint, hub, pair } = await setup(pairs, slow);
    endpoint.start();
    pair.hub.sendData(7, Buffer.alloc(16_000));
    pair.hub.sendData(7, Buffer.alloc(16_000));
    await until(() => held.length > 0, 'a write pending');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(hub.credit, 0, 'nothing consumed, nothing granted');
    release();
    await until(() => hub.credit === 32_000, 'credit for what was consumed');
  });

  it('resets a peer that sends beyond the window', async () => {
    const { endpoint, hub, pair } = await setup(pairs, new Writable({ write: () => undefined }));
    endpoint.start();
    for (let i = 0; i < 6; i++) pair.hub.sendData(7, Buffer.alloc(16_000));
    await until(() => hub.reset !== undefined, 'a reset');
    assert.match(hub.reset as string, /^PROTOCOL_ERROR: stream protocol violation: the peer sent \d+ bytes beyond its credit/);
    assert.equal((await endpoint.result).errorCode, 'PROTOCOL_ERROR');
  });

  it('an input that ended before the stream opened sends EOF once it opens', async () => {
    const { endpoint, hub, pair, input, output } = await setup(pairs);
    input.end('early bytes');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(hub.data, 0, 'nothing before the open');
    endpoint.start();
    await until(() => hub.eof, 'EOF after start');
    assert.equal(hub.data, 'early bytes'.length);
    pair.hub.sendEof(7);
    (output as PassThrough).resume();
    const result = await endpoint.result;
    assert.deepEqual([result.clean, result.bytesSent], [true, 'early bytes'.length]);
  });

  it('a RESET destroys the local side and reports the reason', async () => {
    const { endpoint, pair, input } = await setup(pairs);
    endpoint.start();
    pair.hub.sendReset(7, 'ACCESS_EXPIRED: access ended: the grant expired');
    const result = await endpoint.result;
    assert.deepEqual([result.errorCode, result.message], ['ACCESS_EXPIRED', 'access ended: the grant expired']);
    assert.equal(input.destroyed, true);
  });

  it('endInput() ends the sending side in order (a stopped program)', async () => {
    const { endpoint, hub, input } = await setup(pairs);
    endpoint.start();
    input.write('partial');
    await until(() => hub.data === 7, 'data');
    endpoint.endInput();
    await until(() => hub.eof, 'EOF');
    input.write('ignored after the end');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(hub.data, 7);
  });
});
