/**
 * The access service on its own: a real store (SQLite file), the real relay, and time on a
 * ManualClock, so expiry, grant ends and sweeps are driven without sleeping. Covers review
 * rules, the per-principal cap on open requests, set-based sweeps and revocations with no
 * row ceiling, and that nothing outlives its device or principal.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DrawbridgeError } from '../../src/errors.js';
import { AccessService } from '../../src/hub/access.js';
import { parseHubConfig, type HubConfig } from '../../src/hub/config.js';
import { HubMetrics } from '../../src/hub/metrics.js';
import type { Principal } from '../../src/hub/principals.js';
import { Relay } from '../../src/hub/relay.js';
import { WebhookSender } from '../../src/hub/webhook.js';
import type { AccessRequestRecord, Role } from '../../src/store/store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { ManualClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';

const HOUR = 3_600_000;
const dir = mkdtempSync(join(tmpdir(), 'db-unit-access-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface World {
  clock: ManualClock;
  store: SqliteStore;
  access: AccessService;
  relay: Relay;
  webhook: WebhookSender;
  user(name: string, role: Role): Promise<Principal>;
  device(name: string, tags?: Record<string, string>): Promise<void>;
  close(): Promise<void>;
}

let worlds = 0;
async function world(config: unknown = {}, webhookUrl?: string): Promise<World> {
  const clock = new ManualClock();
  const parsed: HubConfig = parseHubConfig(
    webhookUrl ? { ...(config as object), webhook: { url: webhookUrl, secret: 'a-webhook-secret-for-tests' } } : config,
    'test config',
  );
  const store = new SqliteStore({ path: join(dir, `access-${++worlds}.db`), now: () => clock.now() });
  const relay = new Relay(store, parsed, new HubMetrics(), silentLogger(), clock);
  const webhook = new WebhookSender(parsed.webhook, silentLogger());
  const access = new AccessService(store, parsed, relay, webhook, silentLogger(), () => clock.now());
  return {
    clock,
    store,
    access,
    relay,
    webhook,
    user: async (name, role) => {
      const t = clock.now();
      await store.createPrincipal({ name, role, createdAt: t, tokenId: `id-${name}-${t}`, tokenHash: '0'.repeat(64), tokenCreatedAt: t }, { actor: 'test', action: 'user.add' });
      return { name, role, tokenId: `id-${name}-${t}` };
    },
    device: async (name, tags = {}) => {
      const t = clock.now();
      await store.createDevice(
        { name, tags, enabled: true, publicKey: null, createdAt: t, enrolledAt: null, lastSeenAt: null, agentVersion: null, remoteAddress: null, edgeId: null },
        { id: `en-${name}-${t}`, device: name, secretHash: '0'.repeat(64), createdAt: t, expiresAt: t + HOUR, usedAt: null },
        { actor: 'test', action: 'device.add', device: name },
      );
    },
    close: async () => {
      relay.stop();
      await webhook.flush();
      await store.close();
    },
  };
}

function refusedWith(code: string): (error: unknown) => boolean {
  return (error) => error instanceof DrawbridgeError && error.code === code;
}

/** Rows inserted straight into the store (no cap), for volume tests. */
/** The grant a stream open would find: it reads the principal and the device, then asks. */
async function grantFor(w: World, principal: string, device: string): Promise<AccessRequestRecord | undefined> {
  const [holder, record] = await Promise.all([w.store.getPrincipal(principal), w.store.getDevice(device)]);
  return holder && record ? w.access.activeGrant(holder, record) : undefined;
}

async function seedOpenRequests(w: World, count: number, device: string, status: 'pending' | 'approved'): Promise<void> {
  const now = w.clock.now();
  w.store.database.transaction(() => {
    for (let i = 0; i < count; i++) {
      w.store.database
        .prepare(
          'INSERT INTO access_requests (id, principal, device, duration_ms, reason, status, created_at, request_expires_at, grant_starts_at, grant_ends_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(`ar_seed_${device}_${status}_${i}`, `user-${i % 600}`, device, HOUR, 'seeded', status, now, now + HOUR, status === 'approved' ? now : null, status === 'approved' ? now + HOUR : null);
    }
  })();
}

const openCount = (w: World, where: string): number =>
  Number((w.store.database.prepare(`SELECT COUNT(*) AS n FROM access_requests WHERE ended_at IS NULL AND status IN ('pending', 'approved') AND ${where}`).get() as { n: number }).n);

describe('access service: review', () => {
  let w: World;
  let alice: Principal;
  let bob: Principal;
  beforeEach(async () => {
    w = await world();
    alice = await w.user('alice', 'operator');
    bob = await w.user('bob', 'approver');
    await w.device('plc-1');
  });

  it('grants from approval for the requested duration; the grant ends on the clock', async () => {
    const request = await w.access.request(alice, 'plc-1', HOUR, 'replace the fan');
    assert.equal(request.status, 'pending');
    assert.equal(await grantFor(w, 'alice', 'plc-1'), undefined, 'no access before review');
    await w.clock.advance(60_000);
    const approved = await w.access.approve(bob, request.id, 'ok');
    assert.equal(approved.grantStartsAt, w.clock.now());
    assert.equal(approved.grantEndsAt, w.clock.now() + HOUR);
    assert.equal((await grantFor(w, 'alice', 'plc-1'))?.id, request.id);
    await w.clock.advance(HOUR - 1);
    assert.ok(await grantFor(w, 'alice', 'plc-1'));
    await w.clock.advance(1);
    assert.equal(await grantFor(w, 'alice', 'plc-1'), undefined, 'the grant ends exactly on time');
    await w.access.sweep();
    const ended = await w.access.get(request.id);
    assert.equal(ended.endedAt, approved.grantEndsAt);
    assert.equal((await w.store.queryAudit({ action: 'access.grant_end', limit: 10 })).length, 1);
    await w.close();
  });

  it('never lets a principal review their own request, and lets only one reviewer win', async () => {
    const request = await w.access.request(bob, 'plc-1', HOUR, 'my own change');
    await assert.rejects(w.access.approve(bob, request.id, undefined), refusedWith('FORBIDDEN'));
    const carol = await w.user('carol', 'approver');
    await assert.rejects(w.access.approve(alice, request.id, undefined), refusedWith('FORBIDDEN'), 'an operator cannot approve');
    await w.access.deny(carol, request.id, 'not in the change window');
    await assert.rejects(w.access.approve(carol, request.id, undefined), refusedWith('INVALID_STATE'));
    await assert.rejects(w.access.deny(carol, request.id, '  '), refusedWith('VALIDATION_FAILED'));
    await w.close();
  });

  it('expires a request nobody reviewed within requestTtl, and refuses to approve it afterwards', async () => {
    const request = await w.access.request(alice, 'plc-1', HOUR, 'night shift');
    await w.clock.advance(HOUR - 1);
    await w.access.sweep();
    assert.equal((await w.access.get(request.id)).status, 'pending');
    await w.clock.advance(1);
    await w.access.sweep();
    assert.equal((await w.access.get(request.id)).status, 'expired');
    await assert.rejects(w.access.approve(bob, request.id, undefined), refusedWith('INVALID_STATE'));
    await w.close();
  });

  it('lets the holder give up a grant and ends its streams', async () => {
    const request = await w.access.request(alice, 'plc-1', HOUR, 'done early');
    await w.access.approve(bob, request.id, undefined);
    const revoked = await w.access.revoke(alice, request.id);
    assert.equal(revoked.status, 'revoked');
    assert.equal(await grantFor(w, 'alice', 'plc-1'), undefined);
    await w.close();
  });

  it('auto-approves by tag policy, as "policy", within the rule maximum only', async () => {
    const auto = await world({ access: { autoApprove: [{ tags: { env: 'lab' }, maxDuration: '2h' }] } });
    const op = await auto.user('op', 'operator');
    await auto.device('lab-1', { env: 'lab' });
    await auto.device('prod-1', { env: 'prod' });
    const lab = await auto.access.request(op, 'lab-1', HOUR, 'test');
    assert.equal(lab.status, 'approved');
    assert.equal(lab.reviewedBy, 'policy');
    assert.equal((await auto.access.request(op, 'lab-1', 3 * HOUR, 'long')).status, 'pending');
    assert.equal((await auto.access.request(op, 'prod-1', HOUR, 'prod')).status, 'pending');
    await auto.close();
    await w.close();
  });
});

describe('access service: open requests per principal', () => {
  it('caps pending requests per principal (TOO_MANY_OPEN_REQUESTS), frees a place when one ends, and leaves others alone', async () => {
    const w = await world({ access: { maxPendingRequestsPerPrincipal: 3 } });
    const mallory = await w.user('mallory', 'operator');
    const alice = await w.user('alice', 'operator');
    const bob = await w.user('bob', 'approver');
    await w.device('plc-1');
    const first = await w.access.request(mallory, 'plc-1', HOUR, 'one');
    await w.clock.advance(10 * 60_000);
    await w.access.request(mallory, 'plc-1', HOUR, 'two');
    await w.access.request(mallory, 'plc-1', HOUR, 'three');
    await assert.rejects(w.access.request(mallory, 'plc-1', HOUR, 'four'), (error: unknown) => {
      assert.ok(error instanceof DrawbridgeError);
      assert.equal(error.code, 'TOO_MANY_OPEN_REQUESTS');
      assert.equal(error.status, 429);
      return true;
    });
    assert.equal((await w.store.queryAudit({ action: 'access.request', limit: 100 })).length, 3, 'a refused request leaves no record');
    // Someone else is not affected.
    await w.access.request(alice, 'plc-1', HOUR, 'mine');
    // An approved request is no longer waiting: it frees a place.
    await w.access.approve(bob, first.id, undefined);
    await w.access.request(mallory, 'plc-1', HOUR, 'four');
    await assert.rejects(w.access.request(mallory, 'plc-1', HOUR, 'five'), refusedWith('TOO_MANY_OPEN_REQUESTS'));
    // Expired requests free their places too, even before the sweep marks them.
    await w.clock.advance(HOUR - 10 * 60_000);
    await w.clock.advance(10 * 60_000);
    await w.access.request(mallory, 'plc-1', HOUR, 'after expiry');
    await w.close();
  });
});

/** Counts turns of the event loop (setImmediate callbacks) until stopped. */
function loopTurns(): { stop(): number } {
  let turns = 0;
  let running = true;
  const tick = (): void => {
    if (!running) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  return {
    stop: () => {
      running = false;
      return turns;
    },
  };
}

describe('access service: sweeps and revocations are set-based, with no row ceiling', () => {
  let w: World;
  before(async () => {
    w = await world();
    await w.device('big');
  });
  after(() => w.close());

  it('expires a backlog in bounded batches: each sweep takes at most 500, the next ones the rest', async () => {
    await seedOpenRequests(w, 1200, 'big', 'pending');
    await w.clock.advance(HOUR);
    const left: number[] = [];
    const turns: number[] = [];
    for (let i = 0; i < 3; i++) {
      const loop = loopTurns();
      await w.access.sweep();
      turns.push(loop.stop());
      left.push(openCount(w, "device = 'big'"));
    }
    assert.deepEqual(left, [700, 200, 0]);
    // 500 rows a sweep, 100 a statement: the event loop turns between statements.
    assert.ok((turns[0] as number) >= 4, `the loop turned ${turns[0]} times during a sweep of 500`);
    assert.equal((await w.store.queryAudit({ action: 'access.expire', limit: 10_000 })).length, 1200, 'one audit record per expired request');
  });

  it('a removed device ends every one of its 12,000 open requests and grants, each audited, with the event loop free between chunks', async () => {
    await w.device('crowded');
    await seedOpenRequests(w, 9000, 'crowded', 'pending');
    await seedOpenRequests(w, 3000, 'crowded', 'approved');
    const started = process.hrtime.bigint();
    const loop = loopTurns();
    const ended = await w.store.removeDevice('crowded', { actor: 'admin', action: 'device.remove', device: 'crowded' });
    const turns = loop.stop();
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    // The device and the first chunk go in one transaction, the rest 100 at a time.
    assert.ok(turns >= 100, `the event loop turned only ${turns} times while 12,000 requests were revoked`);
    assert.equal(await w.store.getDevice('crowded'), undefined);
    assert.equal(ended?.length, 12_000, 'no 10,000-row ceiling');
    assert.equal(openCount(w, "device = 'crowded'"), 0);
    const revokes = await w.store.queryAudit({ action: 'access.revoke', device: 'crowded', limit: 20_000 });
    assert.equal(revokes.length, 12_000);
    assert.equal(revokes[0]?.actor, 'admin');
    process.stdout.write(`# removing a device with 12,000 open requests and grants: ${ms.toFixed(0)} ms\n`);
  });
});

describe('access service: nothing outlives its device or principal', () => {
  let server: Server;
  const events: { event: string; data: Record<string, unknown> }[] = [];
  let url: string;
  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        events.push(JSON.parse(body) as { event: string; data: Record<string, unknown> });
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('a re-created device of the same name inherits no grant and no pending request', async () => {
    const w = await world({}, url);
    const alice = await w.user('alice', 'operator');
    const bob = await w.user('bob', 'approver');
    await w.device('plc-7');
    const grant = await w.access.request(alice, 'plc-7', 4 * HOUR, 'maintenance');
    await w.access.approve(bob, grant.id, undefined);
    const pending = await w.access.request(alice, 'plc-7', HOUR, 'later');
    const ended = await w.store.removeDevice('plc-7', { actor: 'admin', action: 'device.remove', device: 'plc-7' });
    w.access.announceBulkRevocation(ended ?? [], 'device "plc-7" was removed');
    assert.deepEqual(ended?.map((r) => r.id).sort(), [grant.id, pending.id].sort());
    await w.clock.advance(1000);
    await w.device('plc-7');
    assert.equal(await grantFor(w, 'alice', 'plc-7'), undefined);
    assert.equal((await w.access.get(pending.id)).status, 'revoked');
    await assert.rejects(w.access.approve(bob, pending.id, undefined), refusedWith('INVALID_STATE'));
    await w.webhook.flush();
    const bulk = events.filter((e) => e.event === 'access.bulk_revoked');
    assert.equal(bulk.length, 1, 'one summary event for the removal');
    assert.equal(bulk[0]?.data['count'], 2);
    await w.close();
  });

  it('a grant somehow left open from before a re-creation is not honoured', async () => {
    const w = await world();
    await w.user('alice', 'operator');
    await w.device('plc-8');
    await seedOpenRequests(w, 1, 'plc-8', 'approved');
    w.store.database.prepare("UPDATE access_requests SET principal = 'alice' WHERE device = 'plc-8'").run();
    assert.ok(await grantFor(w, 'alice', 'plc-8'));
    // The device is dropped behind the store's back (as an old hub would have left it) and re-created.
    w.store.database.prepare("DELETE FROM devices WHERE name = 'plc-8'").run();
    await w.clock.advance(1000);
    await w.device('plc-8');
    assert.equal(await grantFor(w, 'alice', 'plc-8'), undefined);
    await w.close();
  });

  it('a removed user loses pending requests and grants; a new user of the same name starts with nothing', async () => {
    const w = await world();
    const alice = await w.user('alice', 'operator');
    const bob = await w.user('bob', 'approver');
    await w.device('plc-9');
    const grant = await w.access.request(alice, 'plc-9', HOUR, 'a');
    await w.access.approve(bob, grant.id, undefined);
    await w.access.request(alice, 'plc-9', HOUR, 'b');
    const ended = await w.store.removePrincipal('alice', { actor: 'admin', action: 'user.remove', details: { user: 'alice' } });
    assert.equal(ended?.length, 2);
    assert.equal(openCount(w, "principal = 'alice'"), 0);
    await w.clock.advance(1000);
    await w.user('alice', 'operator');
    assert.equal(await grantFor(w, 'alice', 'plc-9'), undefined);
    await w.close();
  });
});
