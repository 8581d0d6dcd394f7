/**
 * Audit query times on a large log: fills an embedded store with N sealed, hash-chained
 * records (default 1 million: 200 devices, 50 actors, 12 actions, spread over 30 days),
 * then times the queries the API serves (newest page, by device / actor / action, a time
 * range, a deep keyset page) and a full chain verification.
 *
 *   node dist/bench/audit-query.js [--records N] [--runs N] [--db FILE]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { AuditChainVerifier, GENESIS_HASH, sealAuditRecord } from '../src/store/audit-chain.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { AuditQuery, AuditRecord } from '../src/store/store.js';

const ACTIONS = [
  'stream.open', 'stream.close', 'access.request', 'access.approve', 'access.deny', 'access.revoke',
  'access.expire', 'auth.failure', 'device.add', 'device.disable', 'session.kill', 'token.rotate',
];
// Streams dominate a real log; the rest are rare.
const ACTION_WEIGHTS = [40, 40, 4, 3, 1, 1, 1, 6, 1, 1, 1, 1];
const DAY_MS = 86_400_000;

function pickAction(i: number): string {
  const total = ACTION_WEIGHTS.reduce((a, b) => a + b, 0);
  let r = (i * 2654435761) % total;
  for (let k = 0; k < ACTIONS.length; k++) {
    r -= ACTION_WEIGHTS[k] as number;
    if (r < 0) return ACTIONS[k] as string;
  }
  return ACTIONS[0] as string;
}

function fill(store: SqliteStore, records: number, start: number, span: number): number {
  const db = store.database;
  const insert = db.prepare('INSERT INTO audit (seq, ts, actor, action, device, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const t0 = performance.now();
  let prev = GENESIS_HASH;
  const batch = 50_000;
  for (let from = 1; from <= records; from += batch) {
    db.transaction(() => {
      for (let seq = from; seq < Math.min(from + batch, records + 1); seq++) {
        const action = pickAction(seq);
        const record = sealAuditRecord({
          seq,
          ts: start + Math.floor(((seq - 1) * span) / records),
          actor: action === 'auth.failure' ? `anonymous@10.0.${seq % 7}.${seq % 251}` : `user-${seq % 50}`,
          action,
          device: action === 'auth.failure' || action === 'token.rotate' ? null : `dev-${String(seq % 200).padStart(4, '0')}`,
          details: action.startsWith('stream.')
            ? { session: seq.toString(16).padStart(32, '0'), bytesToDevice: seq * 7, bytesFromDevice: seq * 13, reason: 'closed by client' }
            : { request: `ar_${seq.toString(16).padStart(16, '0')}`, note: 'routine maintenance' },
          prevHash: prev,
        });
        insert.run(record.seq, record.ts, record.actor, record.action, record.device, JSON.stringify(record.details), record.prevHash, record.hash);
        prev = record.hash;
      }
    })();
  }
  return performance.now() - t0;
}

async function time(fn: () => Promise<unknown>, runs: number): Promise<{ median: number; max: number; rows: number }> {
  let rows = 0;
  await fn(); // warm the page cache and the statement
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const result = await fn();
    samples.push(performance.now() - t0);
    rows = Array.isArray(result) ? result.length : Number(result);
  }
  samples.sort((a, b) => a - b);
  return { median: samples[Math.floor(samples.length / 2)] as number, max: samples[samples.length - 1] as number, rows };
}

async function verifyAll(store: SqliteStore): Promise<number> {
  const verifier = new AuditChainVerifier();
  let after = 0;
  for (;;) {
    const batch = await store.scanAudit(after, 5000);
    if (batch.length === 0) break;
    for (const record of batch) {
      const problem = verifier.feed(record);
      if (problem) throw new Error(`chain broken: ${problem.message}`);
    }
    after = (batch[batch.length - 1] as AuditRecord).seq;
  }
  return verifier.count;
}

function plan(store: SqliteStore, q: AuditQuery): string {
  // Mirrors the SQL queryAudit builds, to show which index SQLite picks.
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (v: unknown, clause: string): void => {
    if (v !== undefined) {
      where.push(clause);
      params.push(v);
    }
  };
  add(q.device, 'device = ?');
  add(q.actor, 'actor = ?');
  add(q.action, 'action = ?');
  add(q.since, 'ts >= ?');
  add(q.until, 'ts < ?');
  add(q.afterSeq, 'seq > ?');
  add(q.beforeSeq, 'seq < ?');
  const sql = `EXPLAIN QUERY PLAN SELECT * FROM audit ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq ${q.order === 'desc' ? 'DESC' : 'ASC'} LIMIT ?`;
  return (store.database.prepare(sql).all(...params, q.limit) as { detail: string }[]).map((r) => r.detail).join('; ');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { records: { type: 'string', default: '1000000' }, runs: { type: 'string', default: '9' }, db: { type: 'string' } },
  });
  const records = Number(values.records);
  const runs = Number(values.runs);
  if (!Number.isInteger(records) || records < 1000) throw new Error('--records must be an integer >= 1000');
  const dir = values.db ? undefined : mkdtempSync(join(tmpdir(), 'db-audit-bench-'));
  const path = values.db ?? join(dir as string, 'audit.db');
  let store = new SqliteStore({ path });
  try {
    const end = Date.now();
    const start = end - 30 * DAY_MS;
    const existing = await store.countAudit();
    if (existing === 0) {
      const fillMs = fill(store, records, start, end - start);
      process.stdout.write(`filled ${records.toLocaleString('en')} sealed records in ${(fillMs / 1000).toFixed(1)} s\n`);
    } else if (existing !== records) {
      throw new Error(`${path} already holds ${existing} records (not ${records})`);
    }
    // Reopen, as a hub restart would: opening gathers the planner statistics.
    await store.close();
    store = new SqliteStore({ path });

    const queries: [string, AuditQuery][] = [
      ['newest 100', { order: 'desc', limit: 100 }],
      ['oldest 100', { order: 'asc', limit: 100 }],
      ['by device, newest 100', { device: 'dev-0042', order: 'desc', limit: 100 }],
      ['by actor, newest 100', { actor: 'user-7', order: 'desc', limit: 100 }],
      ['by action (rare), newest 100', { action: 'session.kill', order: 'desc', limit: 100 }],
      ['by action, oldest 100', { action: 'access.approve', order: 'asc', limit: 100 }],
      ['since 1 h ago, oldest 100', { since: end - 3_600_000, order: 'asc', limit: 100 }],
      ['since..until (day 15), oldest 100', { since: start + 15 * DAY_MS, until: start + 16 * DAY_MS, order: 'asc', limit: 100 }],
      ['since 1 h ago, newest 100', { since: end - 3_600_000, order: 'desc', limit: 100 }],
      ['device + action, newest 100', { device: 'dev-0042', action: 'access.deny', order: 'desc', limit: 100 }],
      ['device + since (last day), newest 100', { device: 'dev-0042', since: end - DAY_MS, order: 'desc', limit: 100 }],
      [`keyset page after seq ${Math.floor(records * 0.9)}`, { afterSeq: Math.floor(records * 0.9), order: 'asc', limit: 100 }],
      [`keyset page after seq ${Math.floor(records * 0.9)}, by device`, { device: 'dev-0042', afterSeq: Math.floor(records * 0.9), order: 'asc', limit: 100 }],
      [`1000-record page after seq ${Math.floor(records / 2)}`, { afterSeq: Math.floor(records / 2), order: 'asc', limit: 1000 }],
    ];
    const rows: string[][] = [];
    for (const [name, q] of queries) {
      const result = await time(() => store.queryAudit(q), runs);
      rows.push([name, result.median.toFixed(2), result.max.toFixed(2), String(result.rows), plan(store, q)]);
    }
    const count = await time(() => store.countAudit(), 3);
    rows.push(['count(*)', count.median.toFixed(2), count.max.toFixed(2), String(count.rows), '']);
    const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => (r[i] as string).length), ['query', 'median ms', 'max ms', 'rows'][i]?.length ?? 0));
    const line = (r: string[]): string => r.slice(0, 4).map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ') + (r[4] ? `  [${r[4]}]` : '');
    process.stdout.write(`\naudit queries on ${records.toLocaleString('en')} records (${runs} runs each, after 1 warm-up)\n`);
    process.stdout.write(line(['query', 'median ms', 'max ms', 'rows', 'plan']) + '\n');
    for (const r of rows) process.stdout.write(line(r) + '\n');

    const t0 = performance.now();
    const verified = await verifyAll(store);
    const verifyMs = performance.now() - t0;
    process.stdout.write(`\nfull verify: ${verified.toLocaleString('en')} records in ${(verifyMs / 1000).toFixed(2)} s (${Math.round(verified / (verifyMs / 1000)).toLocaleString('en')} records/s)\n`);
  } finally {
    await store.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
