/**
 * Monitoring persistence on the embedded engine (see src/store/monitor-store.ts). Shares the
 * SqliteStore's connection, so a telemetry message, the alerts it raises and their audit
 * records commit together. Every statement is bounded by an index and a row limit: the hub
 * must never hold its event loop for long (the 50 ms rule), whatever an edge sends.
 */
import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { AlertRule, FindingRule, Severity } from '../../monitor/config.js';
import { canonicalRow, stateHash } from '../../protocol/telemetry-codec.js';
import type { InventoryName, InventoryRow, TelemetryEvent } from '../../protocol/messages/telemetry.js';
import type {
  AlertFire,
  AlertQuery,
  AlertRecord,
  AlertStatus,
  EdgeMonitorSummary,
  EventsApplied,
  EventsBatch,
  FindingFire,
  FindingQuery,
  FindingRecord,
  InventoryApplied,
  InventoryChange,
  InventoryDiff,
  InventoryOutcome,
  MonitorEdgeState,
  MonitorStore,
} from '../monitor-store.js';
import { MAX_EVIDENCE } from '../monitor-store.js';
import type { AuditEntry } from '../store.js';
import { retryWhileBusy, type Row, type SqliteStore } from './sqlite-store.js';

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
const HOUR = 3_600_000;
/** Oldest events deleted per statement when an edge is over its cap. */
const TRIM_BATCH = 5000;
const FAILURE_KINDS = new Set(['ssh.failure', 'ssh.invalid-user']);

function toAlert(r: Row): AlertRecord {
  return {
    id: String(r['id']),
    edgeId: String(r['edge_id']),
    edgeName: String(r['edge_name']),
    rule: String(r['rule']) as AlertRule,
    key: String(r['key']),
    severity: String(r['severity']) as Severity,
    status: String(r['status']) as AlertStatus,
    facts: JSON.parse(String(r['facts'])) as Record<string, unknown>,
    evidence: JSON.parse(String(r['evidence'])) as string[],
    count: num(r['count']),
    firstSeen: num(r['first_seen']),
    lastSeen: num(r['last_seen']),
    ackedBy: strOrNull(r['acked_by']),
    ackedAt: numOrNull(r['acked_at']),
    resolvedBy: strOrNull(r['resolved_by']),
    resolvedAt: numOrNull(r['resolved_at']),
    note: strOrNull(r['note']),
  };
}

function toFinding(r: Row): FindingRecord {
  return {
    id: String(r['id']),
    edgeId: String(r['edge_id']),
    edgeName: String(r['edge_name']),
    rule: String(r['rule']) as FindingRule,
    key: String(r['key']),
    severity: String(r['severity']) as Severity,
    status: String(r['status']) as FindingRecord['status'],
    facts: JSON.parse(String(r['facts'])) as Record<string, unknown>,
    firstSeen: num(r['first_seen']),
    lastSeen: num(r['last_seen']),
    resolvedAt: numOrNull(r['resolved_at']),
    mutedBy: strOrNull(r['muted_by']),
    mutedAt: numOrNull(r['muted_at']),
    muteReason: strOrNull(r['mute_reason']),
  };
}

/** Keeps the first evidence lines and, once full, the newest in the last place. */
function appendEvidence(existing: string[], lines: string[]): string[] {
  const out = [...existing];
  for (const line of lines) {
    if (out.length < MAX_EVIDENCE) out.push(line);
    else out[MAX_EVIDENCE - 1] = line;
  }
  return out;
}

/** The fields a new alert and a new finding share: an id with its kind's prefix, the edge, the firing, open now. */
function newRecord(prefix: 'al' | 'fd', edge: { id: string; name: string }, fire: { key: string; severity: Severity; facts: Record<string, unknown> }, at: number) {
  return {
    id: `${prefix}_${randomBytes(8).toString('hex')}`,
    edgeId: edge.id,
    edgeName: edge.name,
    key: fire.key,
    severity: fire.severity,
    status: 'open' as const,
    facts: fire.facts,
    firstSeen: at,
    lastSeen: at,
  };
}

class NotApplied extends Error {
  constructor(readonly result: InventoryApplied | EventsApplied) {
    super('not applied');
  }
}

export class SqliteMonitorRepository implements MonitorStore {
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly store: SqliteStore) {
    this.db = store.database;
  }

  private sql(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  group(runAll: () => void): void {
    let began = false;
    try {
      this.db.transaction(() => {
        began = true;
        runAll();
      }).immediate();
    } catch (error) {
      const code = String((error as { code?: unknown }).code ?? '');
      // Locked by another process before anything ran: run the calls one by one instead, each
      // retrying on its own (see retryWhileBusy).
      if (began || !code.startsWith('SQLITE_BUSY')) throw error;
      runAll();
    }
  }

  /** Runs `fn` in one immediate transaction, retried (asynchronously) while another process holds the database. */
  private tx<T>(fn: () => T): Promise<T> {
    return retryWhileBusy(() => this.db.transaction(fn).immediate());
  }

  /** The edge's name, or the reason telemetry for it is refused. */
  private edgeOrRefusal(edgeId: string): { name: string } | 'unknown-edge' | 'edge-disabled' {
    const row = this.sql('SELECT name, enabled FROM edges WHERE id = ?').get(edgeId) as Row | undefined;
    if (!row) return 'unknown-edge';
    if (row['enabled'] !== 1) return 'edge-disabled';
    return { name: String(row['name']) };
  }

  private ensureEdgeState(edgeId: string): void {
    this.sql('INSERT INTO monitor_edges (edge_id) VALUES (?) ON CONFLICT (edge_id) DO NOTHING').run(edgeId);
  }

  async edgeState(edgeId: string): Promise<MonitorEdgeState | undefined> {
    const row = this.sql('SELECT * FROM monitor_edges WHERE edge_id = ?').get(edgeId) as Row | undefined;
    const inventories: MonitorEdgeState['inventories'] = {};
    for (const r of this.sql('SELECT inventory, seq, hash, updated_at FROM monitor_inventories WHERE edge_id = ?').all(edgeId) as Row[]) {
      inventories[String(r['inventory']) as InventoryName] = { seq: num(r['seq']), hash: String(r['hash']), updatedAt: num(r['updated_at']) };
    }
    if (!row && Object.keys(inventories).length === 0) return undefined;
    return {
      edgeId,
      lastTelemetryAt: numOrNull(row?.['last_telemetry_at']),
      queueId: strOrNull(row?.['queue_id']),
      lastBatch: num(row?.['last_batch'] ?? 0),
      dropped: num(row?.['dropped'] ?? 0),
      queued: num(row?.['queued'] ?? 0),
      bytesReceived: num(row?.['bytes_received'] ?? 0),
      checkpointIntervalMs: numOrNull(row?.['checkpoint_interval_ms']),
      inventories,
    };
  }

  async inventoryRows(edgeId: string, inventory: InventoryName): Promise<InventoryRow[]> {
    return this.readRows(edgeId, inventory);
  }

  private readRows(edgeId: string, inventory: InventoryName): InventoryRow[] {
    return (this.sql('SELECT row FROM monitor_rows WHERE edge_id = ? AND inventory = ?').all(edgeId, inventory) as Row[]).map(
      (r) => JSON.parse(String(r['row'])) as InventoryRow,
    );
  }

  async recordCheckpoint(edgeId: string, facts: { at: number; queueId: string; queued: number; dropped: number; checkpointIntervalMs: number; bytes: number }): Promise<void> {
    await this.tx(() => {
      if (typeof this.edgeOrRefusal(edgeId) === 'string') return;
      this.ensureEdgeState(edgeId);
      this.sql(
        `UPDATE monitor_edges SET last_telemetry_at = ?, queued = ?, dropped = ?, checkpoint_interval_ms = ?, bytes_received = bytes_received + ?,
           queue_id = COALESCE(queue_id, ?) WHERE edge_id = ?`,
      ).run(facts.at, facts.queued, facts.dropped, facts.checkpointIntervalMs, facts.bytes, facts.queueId, edgeId);
    });
  }

  async applyInventory(change: InventoryChange, evaluate: (diff: InventoryDiff) => InventoryOutcome): Promise<InventoryApplied> {
    try {
      return await this.tx(() => this.applyInventorySync(change, evaluate));
    } catch (error) {
      if (error instanceof NotApplied) return error.result as InventoryApplied;
      throw error;
    }
  }

  private applyInventorySync(change: InventoryChange, evaluate: (diff: InventoryDiff) => InventoryOutcome): InventoryApplied {
    const edge = this.edgeOrRefusal(change.edgeId);
    if (typeof edge === 'string') throw new NotApplied({ applied: false, reason: edge });
    const meta = this.sql('SELECT seq, hash FROM monitor_inventories WHERE edge_id = ? AND inventory = ?').get(change.edgeId, change.inventory) as Row | undefined;
    if (!change.full && num(meta?.['seq'] ?? 0) !== change.seq - 1) throw new NotApplied({ applied: false, reason: 'gap' });

    const before = new Map<string, InventoryRow>();
    for (const row of this.readRows(change.edgeId, change.inventory)) before.set(row.k, row);
    const after = new Map<string, InventoryRow>(change.full ? [] : before);
    if (!change.full) for (const key of change.removed) after.delete(key);
    for (const row of change.rows) after.set(row.k, row);
    const hash = stateHash(after.values());
    if (hash !== change.hash) throw new NotApplied({ applied: false, reason: 'hash-mismatch', hash });

    const diff: InventoryDiff = { inventory: change.inventory, first: meta === undefined, before, after, added: [], changed: [], removed: [] };
    for (const [key, row] of after) {
      const old = before.get(key);
      if (!old) diff.added.push(row);
      else if (canonicalRow(old) !== canonicalRow(row)) diff.changed.push({ before: old, after: row });
    }
    for (const [key, row] of before) if (!after.has(key)) diff.removed.push(row);
    const outcome = evaluate(diff);

    const remove = this.sql('DELETE FROM monitor_rows WHERE edge_id = ? AND inventory = ? AND k = ?');
    for (const row of diff.removed) remove.run(change.edgeId, change.inventory, row.k);
    const upsert = this.sql(
      'INSERT INTO monitor_rows (edge_id, inventory, k, row, since) VALUES (?, ?, ?, ?, ?) ON CONFLICT (edge_id, inventory, k) DO UPDATE SET row = excluded.row',
    );
    for (const row of [...diff.added, ...diff.changed.map((c) => c.after)]) upsert.run(change.edgeId, change.inventory, row.k, JSON.stringify(row), change.at);
    this.sql(
      `INSERT INTO monitor_inventories (edge_id, inventory, seq, hash, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (edge_id, inventory) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, updated_at = excluded.updated_at`,
    ).run(change.edgeId, change.inventory, change.seq, hash, change.at);
    this.ensureEdgeState(change.edgeId);
    this.sql('UPDATE monitor_edges SET last_telemetry_at = ?, bytes_received = bytes_received + ? WHERE edge_id = ?').run(change.at, change.bytes, change.edgeId);

    const opened: AlertRecord[] = [];
    const updated: AlertRecord[] = [];
    for (const fire of outcome.alerts) {
      const result = this.upsertAlertSync({ id: change.edgeId, name: edge.name }, fire);
      (result.opened ? opened : updated).push(result.alert);
    }
    const { findingsOpened, findingsResolved } = this.reconcileFindings({ id: change.edgeId, name: edge.name }, outcome.findings.rules, outcome.findings.holding, change.at);
    return { applied: true, hash, opened, updated, findingsOpened, findingsResolved };
  }

  private upsertAlertSync(edge: { id: string; name: string }, fire: AlertFire): { alert: AlertRecord; opened: boolean } {
    const existing = this.sql("SELECT * FROM alerts WHERE edge_id = ? AND rule = ? AND key = ? AND status != 'resolved'").get(edge.id, fire.rule, fire.key) as Row | undefined;
    if (existing) {
      const current = toAlert(existing);
      const facts = { ...current.facts, ...fire.facts };
      const evidence = appendEvidence(current.evidence, fire.evidence);
      const lastSeen = Math.max(current.lastSeen, fire.at);
      this.sql('UPDATE alerts SET count = count + ?, last_seen = ?, facts = ?, evidence = ?, severity = ? WHERE id = ?').run(
        fire.count,
        lastSeen,
        JSON.stringify(facts),
        JSON.stringify(evidence),
        fire.severity,
        current.id,
      );
      return { alert: { ...current, count: current.count + fire.count, lastSeen, facts, evidence, severity: fire.severity }, opened: false };
    }
    const alert: AlertRecord = {
      ...newRecord('al', edge, fire, fire.at),
      rule: fire.rule,
      evidence: appendEvidence([], fire.evidence),
      count: fire.initialCount ?? fire.count,
      ackedBy: null,
      ackedAt: null,
      resolvedBy: null,
      resolvedAt: null,
      note: null,
    };
    this.sql(
      `INSERT INTO alerts (id, edge_id, edge_name, rule, key, severity, status, facts, evidence, count, first_seen, last_seen)
       VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?)`,
    ).run(alert.id, edge.id, edge.name, alert.rule, alert.key, alert.severity, JSON.stringify(alert.facts), JSON.stringify(alert.evidence), alert.count, alert.firstSeen, alert.lastSeen);
    // An alert opened is a security event: it joins the tamper-evident log with the change that raised it.
    this.store.withAudit({ actor: 'hub', action: 'alert.open', details: { alert: alert.id, edge: edge.name, rule: alert.rule, severity: alert.severity, facts: alert.facts } }, () => undefined);
    return { alert, opened: true };
  }

  private reconcileFindings(edge: { id: string; name: string }, rules: readonly FindingRule[], holding: FindingFire[], at: number): { findingsOpened: FindingRecord[]; findingsResolved: FindingRecord[] } {
    const findingsOpened: FindingRecord[] = [];
    const findingsResolved: FindingRecord[] = [];
    if (rules.length === 0) return { findingsOpened, findingsResolved };
    const open = (this.sql(`SELECT * FROM findings WHERE edge_id = ? AND status = 'open'`).all(edge.id) as Row[]).map(toFinding).filter((f) => rules.includes(f.rule));
    const wanted = new Set(holding.map((f) => `${f.rule}\n${f.key}`));
    for (const finding of open) {
      if (wanted.has(`${finding.rule}\n${finding.key}`)) continue;
      this.sql("UPDATE findings SET status = 'resolved', resolved_at = ? WHERE id = ?").run(at, finding.id);
      findingsResolved.push({ ...finding, status: 'resolved', resolvedAt: at });
    }
    for (const fire of holding) {
      const row = this.sql('SELECT * FROM findings WHERE edge_id = ? AND rule = ? AND key = ?').get(edge.id, fire.rule, fire.key) as Row | undefined;
      if (!row) {
        const finding: FindingRecord = {
          ...newRecord('fd', edge, fire, at),
          rule: fire.rule,
          resolvedAt: null,
          mutedBy: null,
          mutedAt: null,
          muteReason: null,
        };
        this.sql(
          `INSERT INTO findings (id, edge_id, edge_name, rule, key, severity, status, facts, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?)`,
        ).run(finding.id, edge.id, edge.name, fire.rule, fire.key, fire.severity, JSON.stringify(fire.facts), at, at);
        findingsOpened.push(finding);
        continue;
      }
      const finding = toFinding(row);
      // A finding that comes back is the same finding (its mute, if any, still applies).
      this.sql("UPDATE findings SET status = 'open', resolved_at = NULL, facts = ?, severity = ?, last_seen = ?, first_seen = CASE WHEN status = 'resolved' THEN ? ELSE first_seen END WHERE id = ?").run(
        JSON.stringify(fire.facts),
        fire.severity,
        at,
        at,
        finding.id,
      );
      if (finding.status === 'resolved') findingsOpened.push({ ...finding, status: 'open', resolvedAt: null, facts: fire.facts, severity: fire.severity, firstSeen: at, lastSeen: at });
    }
    return { findingsOpened, findingsResolved };
  }

  async applyEvents(batch: EventsBatch, fires: AlertFire[]): Promise<EventsApplied> {
    try {
      return await this.tx(() => this.applyEventsSync(batch, fires));
    } catch (error) {
      if (error instanceof NotApplied) return error.result as EventsApplied;
      throw error;
    }
  }

  private applyEventsSync(batch: EventsBatch, fires: AlertFire[]): EventsApplied {
    const edge = this.edgeOrRefusal(batch.edgeId);
    if (typeof edge === 'string') throw new NotApplied({ accepted: false, reason: edge });
    this.ensureEdgeState(batch.edgeId);
    const state = this.sql('SELECT queue_id, last_batch, events_stored FROM monitor_edges WHERE edge_id = ?').get(batch.edgeId) as Row;
    if (state['queue_id'] === batch.queueId && batch.batch <= num(state['last_batch'])) {
      return { accepted: true, duplicate: true, opened: [], updated: [] };
    }
    const insert = this.sql('INSERT INTO monitor_events (edge_id, ts, last_ts, kind, user, source, method, count, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const failuresByHour = new Map<number, number>();
    for (const e of batch.events) {
      insert.run(batch.edgeId, e.t, e.last ?? e.t, e.kind, e.user ?? null, e.src ?? null, e.method ?? null, e.n, e.line ?? null);
      if (FAILURE_KINDS.has(e.kind)) {
        const hour = Math.floor(e.t / HOUR);
        failuresByHour.set(hour, (failuresByHour.get(hour) ?? 0) + e.n);
      }
    }
    const bump = this.sql('INSERT INTO monitor_failures (edge_id, hour, count) VALUES (?, ?, ?) ON CONFLICT (edge_id, hour) DO UPDATE SET count = count + excluded.count');
    for (const [hour, count] of failuresByHour) bump.run(batch.edgeId, hour, count);
    let stored = num(state['events_stored']) + batch.events.length;
    const over = Math.min(stored - batch.maxEventsPerEdge, TRIM_BATCH);
    if (over > 0) {
      stored -= this.sql('DELETE FROM monitor_events WHERE id IN (SELECT id FROM monitor_events WHERE edge_id = ? ORDER BY id LIMIT ?)').run(batch.edgeId, over).changes;
    }
    this.sql('UPDATE monitor_edges SET queue_id = ?, last_batch = ?, last_telemetry_at = ?, bytes_received = bytes_received + ?, events_stored = ? WHERE edge_id = ?').run(
      batch.queueId,
      batch.batch,
      batch.at,
      batch.bytes,
      stored,
      batch.edgeId,
    );
    const opened: AlertRecord[] = [];
    const updated: AlertRecord[] = [];
    for (const fire of fires) {
      const result = this.upsertAlertSync({ id: batch.edgeId, name: edge.name }, fire);
      (result.opened ? opened : updated).push(result.alert);
    }
    return { accepted: true, duplicate: false, opened, updated };
  }

  async raiseAlert(edge: { id: string; name: string }, fire: AlertFire): Promise<{ alert: AlertRecord; opened: boolean }> {
    return this.tx(() => this.upsertAlertSync(edge, fire));
  }

  async resolveAlertByKey(edgeId: string, rule: AlertRule, key: string, at: number, note: string): Promise<AlertRecord | undefined> {
    return this.tx(() => {
      const row = this.sql("SELECT * FROM alerts WHERE edge_id = ? AND rule = ? AND key = ? AND status != 'resolved'").get(edgeId, rule, key) as Row | undefined;
      if (!row) return undefined;
      this.sql("UPDATE alerts SET status = 'resolved', resolved_by = 'hub', resolved_at = ?, note = ? WHERE id = ?").run(at, note, row['id']);
      this.store.withAudit({ actor: 'hub', action: 'alert.resolve', details: { alert: row['id'], edge: row['edge_name'], rule, note } }, () => undefined);
      return toAlert(this.sql('SELECT * FROM alerts WHERE id = ?').get(row['id']) as Row);
    });
  }

  async getAlert(id: string): Promise<AlertRecord | undefined> {
    const row = this.sql('SELECT * FROM alerts WHERE id = ?').get(id) as Row | undefined;
    return row ? toAlert(row) : undefined;
  }

  async listAlerts(q: AlertQuery): Promise<AlertRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const filters: [unknown, string][] = [
      [q.edgeId, 'edge_id = ?'],
      [q.edgeName, 'edge_name = ?'],
      [q.status, 'status = ?'],
      [q.rule, 'rule = ?'],
    ];
    for (const [value, clause] of filters) {
      if (value !== undefined) {
        where.push(clause);
        params.push(value);
      }
    }
    const sql = `SELECT * FROM alerts ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY last_seen DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...params, q.limit) as Row[]).map(toAlert);
  }

  async transitionAlert(id: string, from: readonly AlertStatus[], to: 'acked' | 'resolved', by: string, note: string | null, at: number, audit: AuditEntry): Promise<AlertRecord | undefined> {
    try {
      return await retryWhileBusy(() =>
        this.store.withAudit(audit, () => {
          const columns = to === 'acked' ? 'acked_by = ?, acked_at = ?' : 'resolved_by = ?, resolved_at = ?';
          const result = this.db
            .prepare(`UPDATE alerts SET status = ?, ${columns}, note = COALESCE(?, note) WHERE id = ? AND status IN (${from.map(() => '?').join(', ')})`)
            .run(to, by, at, note, id, ...from);
          if (result.changes !== 1) throw new NotApplied({ accepted: false, reason: 'unknown-edge' });
          return toAlert(this.sql('SELECT * FROM alerts WHERE id = ?').get(id) as Row);
        }),
      );
    } catch (error) {
      if (error instanceof NotApplied) return undefined;
      throw error;
    }
  }

  async getFinding(id: string): Promise<FindingRecord | undefined> {
    const row = this.sql('SELECT * FROM findings WHERE id = ?').get(id) as Row | undefined;
    return row ? toFinding(row) : undefined;
  }

  async listFindings(q: FindingQuery): Promise<FindingRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.edgeId !== undefined) {
      where.push('edge_id = ?');
      params.push(q.edgeId);
    }
    if (q.edgeName !== undefined) {
      where.push('edge_name = ?');
      params.push(q.edgeName);
    }
    if (q.status === 'muted') where.push("status = 'open' AND muted_at IS NOT NULL");
    else if (q.status === 'open') where.push("status = 'open' AND muted_at IS NULL");
    else if (q.status === 'resolved') where.push("status = 'resolved'");
    const sql = `SELECT * FROM findings ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY status, last_seen DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...params, q.limit) as Row[]).map(toFinding);
  }

  async setFindingMute(id: string, mute: { by: string; reason: string; at: number } | null, audit: AuditEntry): Promise<FindingRecord | undefined> {
    try {
      return await retryWhileBusy(() =>
        this.store.withAudit(audit, () => {
          const result = this.sql('UPDATE findings SET muted_by = ?, muted_at = ?, mute_reason = ? WHERE id = ?').run(mute?.by ?? null, mute?.at ?? null, mute?.reason ?? null, id);
          if (result.changes !== 1) throw new NotApplied({ accepted: false, reason: 'unknown-edge' });
          return toFinding(this.sql('SELECT * FROM findings WHERE id = ?').get(id) as Row);
        }),
      );
    } catch (error) {
      if (error instanceof NotApplied) return undefined;
      throw error;
    }
  }

  async edgeSummaries(since: number): Promise<EdgeMonitorSummary[]> {
    const byEdge = new Map<string, EdgeMonitorSummary>();
    const entry = (edgeId: string): EdgeMonitorSummary => {
      let summary = byEdge.get(edgeId);
      if (!summary) {
        summary = { edgeId, openAlerts: 0, alertsBySeverity: {}, openFindings: 0, failedLogins: 0 };
        byEdge.set(edgeId, summary);
      }
      return summary;
    };
    for (const r of this.sql("SELECT edge_id, severity, COUNT(*) AS n FROM alerts WHERE status IN ('open', 'acked') GROUP BY edge_id, severity").all() as Row[]) {
      const summary = entry(String(r['edge_id']));
      summary.openAlerts += num(r['n']);
      summary.alertsBySeverity[String(r['severity']) as Severity] = num(r['n']);
    }
    for (const r of this.sql("SELECT edge_id, COUNT(*) AS n FROM findings WHERE status = 'open' AND muted_at IS NULL GROUP BY edge_id").all() as Row[]) {
      entry(String(r['edge_id'])).openFindings = num(r['n']);
    }
    for (const r of this.sql('SELECT edge_id, SUM(count) AS n FROM monitor_failures WHERE hour >= ? GROUP BY edge_id').all(Math.floor(since / HOUR)) as Row[]) {
      entry(String(r['edge_id'])).failedLogins = num(r['n']);
    }
    return [...byEdge.values()];
  }

  async openCounts(): Promise<{ alerts: { severity: Severity; status: AlertStatus; count: number }[]; findings: { severity: Severity; count: number }[] }> {
    return {
      // Kept by triggers (migration 6) as alerts and findings change: a few rows, never a scan.
      alerts: (this.sql("SELECT severity, status, count AS n FROM monitor_open_counts WHERE kind = 'alert' AND count > 0").all() as Row[]).map((r) => ({
        severity: String(r['severity']) as Severity,
        status: String(r['status']) as AlertStatus,
        count: num(r['n']),
      })),
      findings: (this.sql("SELECT severity, count AS n FROM monitor_open_counts WHERE kind = 'finding' AND count > 0").all() as Row[]).map((r) => ({
        severity: String(r['severity']) as Severity,
        count: num(r['n']),
      })),
    };
  }

  async pruneEvents(before: number, batch: number, now: number): Promise<number> {
    return this.tx(() => {
      const removed = this.sql('DELETE FROM monitor_events WHERE id IN (SELECT id FROM monitor_events WHERE ts < ? ORDER BY ts LIMIT ?) RETURNING edge_id').all(before, batch) as Row[];
      const perEdge = new Map<string, number>();
      for (const r of removed) perEdge.set(String(r['edge_id']), (perEdge.get(String(r['edge_id'])) ?? 0) + 1);
      const lower = this.sql('UPDATE monitor_edges SET events_stored = MAX(0, events_stored - ?) WHERE edge_id = ?');
      for (const [edgeId, n] of perEdge) lower.run(n, edgeId);
      // Hourly failure counts serve "the last 24 hours": two days of them is plenty.
      this.sql('DELETE FROM monitor_failures WHERE hour < ?').run(Math.floor(now / HOUR) - 48);
      return removed.length;
    });
  }

  async recentEvents(edgeId: string, since: number, kinds: readonly string[], limit: number): Promise<TelemetryEvent[]> {
    const rows = this.db
      .prepare(`SELECT * FROM monitor_events WHERE edge_id = ? AND kind IN (${kinds.map(() => '?').join(', ')}) AND last_ts >= ? ORDER BY id DESC LIMIT ?`)
      .all(edgeId, ...kinds, since, limit) as Row[];
    return rows.reverse().map((r) => ({
      kind: String(r['kind']) as TelemetryEvent['kind'],
      t: num(r['ts']),
      ...(num(r['last_ts']) !== num(r['ts']) ? { last: num(r['last_ts']) } : {}),
      n: num(r['count']),
      ...(r['user'] !== null ? { user: String(r['user']) } : {}),
      ...(r['source'] !== null ? { src: String(r['source']) } : {}),
    }));
  }

  async countEvents(edgeId: string): Promise<number> {
    return num((this.sql('SELECT COUNT(*) AS n FROM monitor_events WHERE edge_id = ?').get(edgeId) as Row)['n']);
  }
}
