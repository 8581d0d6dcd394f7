/**
 * Monitoring persistence on a real SQLite file: inventory deltas against the stored copy
 * (gaps and drift refused, nothing written), alerts opened once and updated after, findings
 * reconciled with the state, events stored once and bounded per edge, refusals for unknown
 * and disabled edges, and audit records in the same transaction.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MonitoringConfigSchema } from '../../../src/monitor/config.js';
import { findingsFor } from '../../../src/monitor/findings/posture.js';
import { inventoryAlerts } from '../../../src/monitor/rules/inventory.js';
import type { InventoryRow } from '../../../src/protocol/messages/telemetry.js';
import { stateHash } from '../../../src/protocol/telemetry-codec.js';
import type { AlertFire, InventoryDiff, InventoryOutcome } from '../../../src/store/monitor-store.js';
import { SqliteMonitorRepository } from '../../../src/store/sqlite/monitor-repository.js';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';

const config = MonitoringConfigSchema.parse({});
const T0 = Date.UTC(2026, 0, 1);
const port = (addr: string, p: number, proto = 'tcp'): InventoryRow => ({ k: `${proto}/${addr}:${p}`, proto, addr, port: p, proc: null });

function evaluate(at: number) {
  return (diff: InventoryDiff): InventoryOutcome => ({
    alerts: inventoryAlerts(diff, config.rules, undefined, at),
    findings: findingsFor(diff.inventory, diff.after, config.findings, undefined),
  });
}

describe('SqliteMonitorRepository', () => {
  let dir: string;
  let store: SqliteStore;
  let repo: SqliteMonitorRepository;

  const addEdge = (id: string, name: string, enabled = true): void => {
    store.database
      .prepare('INSERT INTO edges (id, name, signing_key, encryption_key, enabled, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(id, name, 'k', 'k', enabled ? 1 : 0, T0);
  };
  const auditActions = (): string[] => (store.database.prepare('SELECT action FROM audit ORDER BY seq').all() as { action: string }[]).map((r) => r.action);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'db-monrepo-'));
    store = new SqliteStore({ path: join(dir, 'db.sqlite'), now: () => T0 });
    repo = new SqliteMonitorRepository(store);
    addEdge('e'.repeat(32), 'edge-a');
    addEdge('d'.repeat(32), 'edge-off', false);
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const A = 'e'.repeat(32);

  it('learns the first ports report as the baseline, then alerts on a port added by a delta; findings follow the state', async () => {
    const first = [port('0.0.0.0', 22), port('127.0.0.1', 5432)];
    const r1 = await repo.applyInventory({ edgeId: A, inventory: 'ports', seq: 1, full: true, rows: first, removed: [], hash: stateHash(first), at: T0, bytes: 100 }, evaluate(T0));
    assert.equal(r1.applied, true);
    if (!r1.applied) return;
    assert.equal(r1.opened.length, 0, 'no alert for the baseline');
    assert.deepEqual(r1.findingsOpened.map((f) => `${f.rule} ${f.key}`), ['open-port-all-interfaces tcp/22']);

    const second = [...first, port('0.0.0.0', 8080)];
    const r2 = await repo.applyInventory({ edgeId: A, inventory: 'ports', seq: 2, full: false, rows: [port('0.0.0.0', 8080)], removed: [], hash: stateHash(second), at: T0 + 1, bytes: 50 }, evaluate(T0 + 1));
    assert.ok(r2.applied);
    if (!r2.applied) return;
    assert.deepEqual(r2.opened.map((a) => `${a.rule} ${a.key}`), ['new-listening-port tcp/0.0.0.0:8080']);
    assert.deepEqual(r2.opened[0]?.facts, { protocol: 'tcp', address: '0.0.0.0', port: 8080, process: null });
    assert.deepEqual(r2.findingsOpened.map((f) => f.key), ['tcp/8080']);
    assert.ok(auditActions().includes('alert.open'), 'the alert opening is audited');

    const third = [port('127.0.0.1', 5432), port('0.0.0.0', 8080)];
    const r3 = await repo.applyInventory({ edgeId: A, inventory: 'ports', seq: 3, full: false, rows: [], removed: ['tcp/0.0.0.0:22'], hash: stateHash(third), at: T0 + 2, bytes: 50 }, evaluate(T0 + 2));
    assert.ok(r3.applied);
    if (!r3.applied) return;
    assert.deepEqual(r3.findingsResolved.map((f) => f.key), ['tcp/22'], 'the finding resolves when the port closes');
    assert.deepEqual((await repo.inventoryRows(A, 'ports')).map((r) => r.k).sort(), ['tcp/0.0.0.0:8080', 'tcp/127.0.0.1:5432']);
    assert.equal((await repo.edgeState(A))?.inventories.ports?.seq, 3);
  });

  it('refuses a delta after a sequence gap or one whose result hashes differently, and writes nothing', async () => {
    const before = await repo.inventoryRows(A, 'ports');
    const gap = await repo.applyInventory({ edgeId: A, inventory: 'ports', seq: 9, full: false, rows: [port('0.0.0.0', 1)], removed: [], hash: 'AAAAAAAAAAAAAAAA', at: T0, bytes: 1 }, evaluate(T0));
    assert.deepEqual(gap, { applied: false, reason: 'gap' });
    const drift = await repo.applyInventory({ edgeId: A, inventory: 'ports', seq: 4, full: false, rows: [port('0.0.0.0', 1)], removed: [], hash: 'AAAAAAAAAAAAAAAA', at: T0, bytes: 1 }, evaluate(T0));
    assert.equal(drift.applied, false);
    assert.equal(!drift.applied && drift.reason, 'hash-mismatch');
    assert.deepEqual(await repo.inventoryRows(A, 'ports'), before);
    assert.equal((await repo.edgeState(A))?.inventories.ports?.seq, 3);
  });

  it('refuses telemetry for an unknown or a disabled edge, storing nothing', async () => {
    const rows = [port('0.0.0.0', 22)];
    for (const [edgeId, reason] of [['f'.repeat(32), 'unknown-edge'], ['d'.repeat(32), 'edge-disabled']] as const) {
      const r = await repo.applyInventory({ edgeId, inventory: 'ports', seq: 1, full: true, rows, removed: [], hash: stateHash(rows), at: T0, bytes: 1 }, evaluate(T0));
      assert.deepEqual(r, { applied: false, reason });
      const e = await repo.applyEvents({ edgeId, queueId: '0'.repeat(16), batch: 1, events: [{ kind: 'ssh.failure', t: T0, n: 1 }], at: T0, bytes: 1, maxEventsPerEdge: 100 }, []);
      assert.deepEqual(e, { accepted: false, reason });
      assert.equal(await repo.countEvents(edgeId), 0);
    }
  });

  const fire = (count: number, at: number, line: string): AlertFire => ({ rule: 'ssh-brute-force', key: '203.0.113.1', severity: 'high', facts: { sourceAddress: '203.0.113.1' }, count, initialCount: 8, at, evidence: [line] });

  it('stores an event batch once per queue and batch number, opening an alert and then updating it', async () => {
    const events = [{ kind: 'ssh.failure' as const, t: T0, n: 8, src: '203.0.113.1', user: 'root' }];
    const first = await repo.applyEvents({ edgeId: A, queueId: '1'.repeat(16), batch: 1, events, at: T0, bytes: 10, maxEventsPerEdge: 100 }, [fire(8, T0, 'line 1')]);
    assert.ok(first.accepted && first.opened.length === 1 && first.opened[0]?.count === 8);
    const again = await repo.applyEvents({ edgeId: A, queueId: '1'.repeat(16), batch: 1, events, at: T0, bytes: 10, maxEventsPerEdge: 100 }, [fire(8, T0, 'line 1')]);
    assert.deepEqual(again, { accepted: true, duplicate: true, opened: [], updated: [] });
    const next = await repo.applyEvents({ edgeId: A, queueId: '1'.repeat(16), batch: 2, events, at: T0 + 5, bytes: 10, maxEventsPerEdge: 100 }, [fire(3, T0 + 5, 'line 2')]);
    assert.ok(next.accepted && next.updated.length === 1);
    const alert = next.accepted ? next.updated[0] : undefined;
    assert.equal(alert?.count, 11);
    assert.equal(alert?.lastSeen, T0 + 5);
    assert.deepEqual(alert?.evidence, ['line 1', 'line 2']);
    assert.equal(await repo.countEvents(A), 2);
    // A new queue (the agent lost its state) starts its numbers again.
    const fresh = await repo.applyEvents({ edgeId: A, queueId: '2'.repeat(16), batch: 1, events, at: T0, bytes: 10, maxEventsPerEdge: 100 }, []);
    assert.ok(fresh.accepted && !fresh.duplicate);
  });

  it('acknowledges and resolves by compare-and-set with an audit record; a resolved key opens a new alert', async () => {
    const [open] = await repo.listAlerts({ edgeId: A, rule: 'ssh-brute-force', limit: 10 });
    assert.ok(open);
    const acked = await repo.transitionAlert(open.id, ['open'], 'acked', 'alice', 'looking', T0 + 10, { actor: 'alice', action: 'alert.ack', details: { alert: open.id } });
    assert.equal(acked?.status, 'acked');
    assert.equal(acked?.ackedBy, 'alice');
    assert.equal(await repo.transitionAlert(open.id, ['open'], 'acked', 'bob', null, T0, { actor: 'bob', action: 'alert.ack' }), undefined, 'cannot ack twice');
    const resolved = await repo.transitionAlert(open.id, ['open', 'acked'], 'resolved', 'alice', 'blocked at the edge router', T0 + 20, { actor: 'alice', action: 'alert.resolve' });
    assert.equal(resolved?.status, 'resolved');
    assert.equal(resolved?.note, 'blocked at the edge router');
    const reopened = await repo.raiseAlert({ id: A, name: 'edge-a' }, fire(1, T0 + 30, 'line 3'));
    assert.equal(reopened.opened, true);
    assert.notEqual(reopened.alert.id, open.id);
    const actions = auditActions();
    assert.ok(actions.includes('alert.ack') && actions.includes('alert.resolve'));
    assert.equal(actions.filter((a) => a === 'alert.ack').length, 1, 'the refused ack wrote nothing');
  });

  it('mutes a finding with a reason (audited); muted findings leave the open counts', async () => {
    const [finding] = await repo.listFindings({ edgeId: A, status: 'open', limit: 10 });
    assert.ok(finding);
    const muted = await repo.setFindingMute(finding.id, { by: 'alice', reason: 'kiosk needs it', at: T0 }, { actor: 'alice', action: 'finding.mute' });
    assert.equal(muted?.muteReason, 'kiosk needs it');
    assert.equal((await repo.listFindings({ edgeId: A, status: 'muted', limit: 10 })).length, 1);
    const counts = await repo.openCounts();
    assert.equal(counts.findings.reduce((s, c) => s + c.count, 0), 0);
    assert.ok(auditActions().includes('finding.mute'));
  });

  it('keeps the open counts (migration 6 triggers) equal to a recount through opening, updating, acking, resolving, muting and unmuting', async () => {
    const recount = () => ({
      alerts: (store.database.prepare("SELECT severity, status, COUNT(*) AS count FROM alerts WHERE status IN ('open', 'acked') GROUP BY severity, status ORDER BY severity, status").all() as { severity: string; status: string; count: number }[]),
      findings: (store.database.prepare("SELECT severity, COUNT(*) AS count FROM findings WHERE status = 'open' AND muted_at IS NULL GROUP BY severity ORDER BY severity").all() as { severity: string; count: number }[]),
    });
    const kept = async () => {
      const counts = await repo.openCounts();
      return {
        alerts: [...counts.alerts].sort((a, b) => `${a.severity}/${a.status}`.localeCompare(`${b.severity}/${b.status}`)),
        findings: [...counts.findings].sort((a, b) => a.severity.localeCompare(b.severity)),
      };
    };
    const check = async (step: string) => assert.deepEqual(await kept(), recount(), step);
    await check('as left by the tests before');
    const opened = await repo.raiseAlert({ id: A, name: 'edge-a' }, { ...fire(8, T0 + 40, 'x'), key: 'src:192.0.2.9' });
    assert.ok(opened.opened);
    await check('an alert opened');
    await repo.raiseAlert({ id: A, name: 'edge-a' }, { ...fire(2, T0 + 41, 'y'), key: 'src:192.0.2.9', severity: 'critical' });
    await check('the same alert again, at another severity');
    await repo.transitionAlert(opened.alert.id, ['open'], 'acked', 'alice', null, T0 + 42, { actor: 'alice', action: 'alert.ack' });
    await check('acked');
    await repo.transitionAlert(opened.alert.id, ['open', 'acked'], 'resolved', 'alice', null, T0 + 43, { actor: 'alice', action: 'alert.resolve' });
    await check('resolved');
    const open = [port('0.0.0.0', 22), port('0.0.0.0', 80), port('0.0.0.0', 443)];
    await repo.applyInventory({ edgeId: A, inventory: 'ports', seq: 1, full: true, rows: open, removed: [], hash: stateHash(open), at: T0 + 44, bytes: 1 }, evaluate(T0 + 44));
    await check('findings opened by a full inventory');
    const [finding] = await repo.listFindings({ edgeId: A, status: 'open', limit: 10 });
    assert.ok(finding);
    await repo.setFindingMute(finding.id, { by: 'alice', reason: 'kiosk', at: T0 + 45 }, { actor: 'alice', action: 'finding.mute' });
    await check('a finding muted');
    await repo.setFindingMute(finding.id, null, { actor: 'alice', action: 'finding.unmute' });
    await check('unmuted');
    const closed = [port('127.0.0.1', 22)];
    await repo.applyInventory({ edgeId: A, inventory: 'ports', seq: 2, full: true, rows: closed, removed: [], hash: stateHash(closed), at: T0 + 46, bytes: 1 }, evaluate(T0 + 46));
    await check('findings resolved by the state');
    assert.ok((await kept()).findings.every((c) => c.count > 0), 'rows counted down to zero are not reported');
  });

  it('keeps at most maxEventsPerEdge raw events per edge, oldest dropped, and prunes by age in bounded batches', async () => {
    const many = Array.from({ length: 150 }, (_, i) => ({ kind: 'ssh.failure' as const, t: T0 + i, n: 1, src: '198.51.100.1' }));
    await repo.applyEvents({ edgeId: A, queueId: '3'.repeat(16), batch: 1, events: many, at: T0, bytes: 1, maxEventsPerEdge: 100 }, []);
    assert.equal(await repo.countEvents(A), 100);
    assert.equal(await repo.pruneEvents(T0 + 120, 10, T0), 10);
    // Kept: the batch's events at T0+50..T0+149; older than T0+120: 70, of which 10 went above.
    assert.equal(await repo.pruneEvents(T0 + 120, 1000, T0), 60, 'then the rest that is older');
    assert.equal(await repo.countEvents(A), 30);
    const summary = (await repo.edgeSummaries(T0 - 3_600_000)).find((s) => s.edgeId === A);
    assert.ok(summary && summary.failedLogins >= 150, 'failed logins per hour are counted apart from raw events');
  });
});
