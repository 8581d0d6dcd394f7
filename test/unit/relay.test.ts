/**
 * The relay on its own: a client link and an agent link (real TCP, no TLS), an in-memory
 * store. Forwarding within credit, credit capped at one window, a sender beyond its window
 * reset, EOF both ways ending a session with its slot freed at once, kills, link loss, and
 * the per-principal cap on streams being set up.
 */
import assert from 'node:assert/strict';
import { after, beforeEach, describe, it } from 'node:test';
import { DrawbridgeError } from '../../src/errors.js';
import { defaultHubConfig, parseHubConfig, type HubConfig } from '../../src/hub/config.js';
import { HubMetrics } from '../../src/hub/metrics.js';
import { Relay, type LiveSession } from '../../src/hub/relay.js';
import { StreamConnect } from '../../src/protocol/messages/index.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { ManualClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';
import { linkPair, until, type LinkPair } from './link-pair.js';

interface Frames {
  data: Map<number, number>;
  credit: Map<number, number>;
  eof: Set<number>;
  reset: Map<number, string>;
}

function record(pair: LinkPair): Frames {
  const frames: Frames = { data: new Map(), credit: new Map(), eof: new Set(), reset: new Map() };
  pair.peer.streams = {
    onData: (id, d) => frames.data.set(id, (frames.data.get(id) ?? 0) + d.length),
    onCredit: (id, n) => frames.credit.set(id, (frames.credit.get(id) ?? 0) + n),
    onEof: (id) => frames.eof.add(id),
    onReset: (id, reason) => frames.reset.set(id, reason),
  };
  return frames;
}

describe('relay', () => {
  const pairs: LinkPair[] = [];
  let store: SqliteStore;
  let relay: Relay;
  let clock: ManualClock;
  let client: LinkPair;
  let agent: LinkPair;
  let toClient: Frames;
  let toAgent: Frames;
  const window = 64 * 1024;

  const setup = async (config: HubConfig = parseHubConfig({ limits: { streamWindow: window } }, 'test')): Promise<void> => {
    clock = new ManualClock();
    store = new SqliteStore({ path: ':memory:', now: () => clock.now() });
    relay = new Relay(store, config, new HubMetrics(), silentLogger(), clock);
    client = await linkPair('client');
    agent = await linkPair('agent');
    pairs.push(client, agent);
    relay.adopt(client.hub);
    relay.adopt(agent.hub);
    agent.hub.peerCapabilities.add('streams');
    agent.peer.handle(StreamConnect, () => ({}));
    toClient = record(client);
    toAgent = record(agent);
  };

  const open = (stream: number, principal = 'alice'): Promise<LiveSession> =>
    new Promise((resolve, reject) => {
      void relay
        .open(
          { clientLink: client.hub, clientStreamId: stream, principal, device: 'dev', target: 't:1', clientAddress: '127.0.0.1', grantId: null, grantEndsAt: null, agentLink: agent.hub },
          (error, session) => (error ? reject(error) : resolve(session as LiveSession)),
        )
        .catch(reject);
    });

  beforeEach(async () => setup());
  after(() => {
    for (const p of pairs) for (const s of p.sockets) s.destroy();
  });

  it('forwards data both ways and counts bytes', async () => {
    const session = await open(1);
    client.peer.sendData(1, Buffer.alloc(1000));
    agent.peer.sendData(1, Buffer.alloc(300)); // the agent's stream id is the relay's first: 1
    await until(() => toAgent.data.get(1) === 1000 && toClient.data.get(1) === 300, 'data both ways');
    const live = relay.get(session.id) as LiveSession;
    assert.deepEqual([live.bytesToDevice, live.bytesFromDevice], [1000, 300]);
  });

  it('forwards credit, but never lets it pile up beyond one window', async () => {
    await open(1);
    for (let i = 0; i < 4; i++) client.peer.sendData(1, Buffer.alloc(10 * 1024)); // frames of at most 16 KiB
    await until(() => toAgent.data.get(1) === 40 * 1024, 'data');
    agent.peer.sendCredit(1, 10 * 1024); // consumed 10 KiB: fine
    agent.peer.sendCredit(1, 10_000_000); // a receiver that grants far more than it consumed
    await new Promise((r) => setTimeout(r, 50));
    // The client got the honest 10 KiB and only what brings the agent's credit back to one window.
    assert.equal(toClient.credit.get(1), 40 * 1024);
  });

  it('resets a sender that goes beyond the window, on both legs, with PROTOCOL_ERROR', async () => {
    const session = await open(1);
    for (let i = 0; i < 5; i++) client.peer.sendData(1, Buffer.alloc(16_000));
    await until(() => toClient.reset.has(1) && toAgent.reset.has(1), 'resets');
    assert.match(toClient.reset.get(1) as string, /^PROTOCOL_ERROR/);
    assert.equal(relay.get(session.id), undefined);
  });

  it('ends a session when both sides sent EOF, and frees its slot at once', async () => {
    const session = await open(1);
    assert.equal(relay.countForDevice('dev'), 1);
    client.peer.sendEof(1);
    agent.peer.sendEof(1);
    await until(() => relay.get(session.id) === undefined, 'session ended');
    assert.equal(relay.countForDevice('dev'), 0);
    assert.ok(toAgent.eof.has(1) && toClient.eof.has(1));
    await until(() => true, '');
    const closes = (await store.queryAudit({ action: 'stream.close', limit: 10 }));
    assert.equal(closes[0]?.details['reason'], 'closed');
  });

  it('a kill resets both legs with the reason', async () => {
    const session = await open(1);
    relay.endById(session.id, new DrawbridgeError('SESSION_KILLED', 'killed by root'));
    await until(() => toClient.reset.has(1) && toAgent.reset.has(1), 'resets');
    assert.equal(toClient.reset.get(1), 'SESSION_KILLED: killed by root');
  });

  it('a lost link ends its sessions and resets the other leg', async () => {
    await open(1);
    await open(2);
    relay.linkClosed(client.hub, new DrawbridgeError('CLIENT_DISCONNECTED'));
    await until(() => toAgent.reset.size === 2, 'agent legs reset');
    assert.equal(relay.size, 0);
  });

  it('caps streams being set up per principal, not for everyone', async () => {
    await setup(parseHubConfig({ limits: { maxPendingStreamsPerPrincipal: 2 } }, 'test'));
    agent.peer.handle(StreamConnect, () => new Promise(() => undefined)); // the edge never answers
    void open(1, 'greedy').catch(() => undefined);
    void open(2, 'greedy').catch(() => undefined);
    await until(() => relay.size === 2, 'two pending');
    await assert.rejects(open(3, 'greedy'), (e: DrawbridgeError) => e.code === 'TOO_MANY_PENDING');
    void open(4, 'bob').catch(() => undefined);
    await until(() => relay.size === 3, "bob's stream is being set up");
    assert.equal(defaultHubConfig().limits.maxPendingStreamsPerPrincipal, 64);
  });
});
