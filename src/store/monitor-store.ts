/**
 * Persistence for edge security monitoring: each edge's inventories (rows, sequence number,
 * state hash), raw events (bounded by age and count), alerts and findings. One interface,
 * one implementation per engine (src/store/sqlite/monitor-repository.ts; PostgreSQL later).
 *
 * Telemetry is applied in one transaction per message: the inventory change or the events,
 * the alerts and findings they raise or resolve, and the audit records of alerts opened. The
 * rules themselves are pure functions handed in as `evaluate` (synchronous, no I/O), so every
 * engine can run them inside its transaction on the state it just read.
 */
import type { InventoryName, InventoryRow, TelemetryEvent } from '../protocol/messages/telemetry.js';
import type { AlertRule, FindingRule, Severity } from '../monitor/config.js';
import type { AuditEntry } from './store.js';

export type AlertStatus = 'open' | 'acked' | 'resolved';
export type FindingStatus = 'open' | 'resolved';

export interface AlertRecord {
  id: string;
  edgeId: string;
  edgeName: string;
  rule: AlertRule;
  /** What makes two firings the same alert (e.g. the source address); unique among unresolved alerts of an edge and rule. */
  key: string;
  severity: Severity;
  status: AlertStatus;
  facts: Record<string, unknown>;
  /** Log lines and state that made the rule fire, at most MAX_EVIDENCE of them. */
  evidence: string[];
  count: number;
  firstSeen: number;
  lastSeen: number;
  ackedBy: string | null;
  ackedAt: number | null;
  resolvedBy: string | null;
  resolvedAt: number | null;
  note: string | null;
}

export interface FindingRecord {
  id: string;
  edgeId: string;
  edgeName: string;
  rule: FindingRule;
  key: string;
  severity: Severity;
  status: FindingStatus;
  facts: Record<string, unknown>;
  firstSeen: number;
  lastSeen: number;
  resolvedAt: number | null;
  mutedBy: string | null;
  mutedAt: number | null;
  muteReason: string | null;
}

/** Evidence lines kept per alert: the first ones, then the newest in the last place. */
export const MAX_EVIDENCE = 20;

/** A rule firing: opens an alert, or updates the unresolved one with the same key. */
export interface AlertFire {
  rule: AlertRule;
  key: string;
  severity: Severity;
  facts: Record<string, unknown>;
  /** Added to the count of an alert that is already open. */
  count: number;
  /** The count of a newly opened alert (e.g. every failure in the window), default `count`. */
  initialCount?: number;
  /** When it happened (the edge's time of the event, or the hub's). */
  at: number;
  evidence: string[];
}

/** A finding that holds in the current state. */
export interface FindingFire {
  rule: FindingRule;
  key: string;
  severity: Severity;
  facts: Record<string, unknown>;
}

/** What an inventory change did, as the store computed it against its own copy. */
export interface InventoryDiff {
  inventory: InventoryName;
  /** No state was stored for this inventory before: this is the edge's first report of it. */
  first: boolean;
  before: ReadonlyMap<string, InventoryRow>;
  after: ReadonlyMap<string, InventoryRow>;
  added: InventoryRow[];
  changed: { before: InventoryRow; after: InventoryRow }[];
  removed: InventoryRow[];
}

export interface InventoryOutcome {
  alerts: AlertFire[];
  /** The finding rules this inventory decides, and those that hold now: the rest of those rules resolve. */
  findings: { rules: readonly FindingRule[]; holding: FindingFire[] };
}

export interface InventoryChange {
  edgeId: string;
  inventory: InventoryName;
  seq: number;
  full: boolean;
  /** Full state (`full`), or rows set by a delta. */
  rows: InventoryRow[];
  removed: string[];
  /** The agent's hash of its state after the change. */
  hash: string;
  at: number;
  bytes: number;
}

export type InventoryApplied =
  | { applied: true; hash: string; opened: AlertRecord[]; updated: AlertRecord[]; findingsOpened: FindingRecord[]; findingsResolved: FindingRecord[] }
  | { applied: false; reason: 'gap' | 'hash-mismatch' | 'unknown-edge' | 'edge-disabled'; hash?: string };

export interface EventsBatch {
  edgeId: string;
  queueId: string;
  batch: number;
  events: TelemetryEvent[];
  at: number;
  bytes: number;
  maxEventsPerEdge: number;
}

export type EventsApplied =
  | { accepted: true; duplicate: boolean; opened: AlertRecord[]; updated: AlertRecord[] }
  | { accepted: false; reason: 'unknown-edge' | 'edge-disabled' };

export interface InventoryState {
  seq: number;
  hash: string;
  updatedAt: number;
}

export interface MonitorEdgeState {
  edgeId: string;
  lastTelemetryAt: number | null;
  queueId: string | null;
  lastBatch: number;
  /** Events the edge reported dropped (its queue overflowed while the hub was away). */
  dropped: number;
  queued: number;
  bytesReceived: number;
  checkpointIntervalMs: number | null;
  inventories: Partial<Record<InventoryName, InventoryState>>;
}

export interface AlertQuery {
  edgeId?: string;
  edgeName?: string;
  status?: AlertStatus;
  rule?: string;
  limit: number;
}

export interface FindingQuery {
  edgeId?: string;
  edgeName?: string;
  status?: FindingStatus | 'muted';
  limit: number;
}

export interface EdgeMonitorSummary {
  edgeId: string;
  openAlerts: number;
  /** Open alerts by severity */
  alertsBySeverity: Partial<Record<Severity, number>>;
  openFindings: number;
  /** Failed logins (and attempts for unknown users) in the window asked for */
  failedLogins: number;
}

export interface MonitorStore {
  /**
   * Runs `runAll` (which calls this store's methods) in one transaction, so a burst of
   * telemetry costs one commit; throws if it could not commit. An engine that cannot group
   * synchronous calls just runs them.
   */
  group(runAll: () => void): void;
  /** The edge's monitoring state (sequence numbers, hashes, queue position); undefined when it never reported. */
  edgeState(edgeId: string): Promise<MonitorEdgeState | undefined>;
  /** Rows of one inventory of an edge. */
  inventoryRows(edgeId: string, inventory: InventoryName): Promise<InventoryRow[]>;
  /** Records a checkpoint (queue counters, time); the caller compares hashes with edgeState(). */
  recordCheckpoint(edgeId: string, facts: { at: number; queueId: string; queued: number; dropped: number; checkpointIntervalMs: number; bytes: number }): Promise<void>;
  applyInventory(change: InventoryChange, evaluate: (diff: InventoryDiff) => InventoryOutcome): Promise<InventoryApplied>;
  /** Stores a batch once (by queue and batch number) with the alerts it raised; trims the edge's oldest events beyond the cap. */
  applyEvents(batch: EventsBatch, fires: AlertFire[]): Promise<EventsApplied>;
  /** Alerts the hub raises or resolves itself (telemetry-silent). */
  raiseAlert(edge: { id: string; name: string }, fire: AlertFire): Promise<{ alert: AlertRecord; opened: boolean }>;
  resolveAlertByKey(edgeId: string, rule: AlertRule, key: string, at: number, note: string): Promise<AlertRecord | undefined>;

  getAlert(id: string): Promise<AlertRecord | undefined>;
  listAlerts(query: AlertQuery): Promise<AlertRecord[]>;
  /** Compare-and-set status change by a person, with its audit record; undefined if the alert is not in one of `from`. */
  transitionAlert(id: string, from: readonly AlertStatus[], to: 'acked' | 'resolved', by: string, note: string | null, at: number, audit: AuditEntry): Promise<AlertRecord | undefined>;

  getFinding(id: string): Promise<FindingRecord | undefined>;
  listFindings(query: FindingQuery): Promise<FindingRecord[]>;
  /** Mutes (reason given) or unmutes (null) a finding, with its audit record. */
  setFindingMute(id: string, mute: { by: string; reason: string; at: number } | null, audit: AuditEntry): Promise<FindingRecord | undefined>;

  /** Per edge: open alerts, open unmuted findings, failed logins since `since`. */
  edgeSummaries(since: number): Promise<EdgeMonitorSummary[]>;
  /** Unresolved alerts by severity and status, and open unmuted findings by severity (for metrics). */
  openCounts(): Promise<{ alerts: { severity: Severity; status: AlertStatus; count: number }[]; findings: { severity: Severity; count: number }[] }>;
  /** Deletes raw events older than `before`, at most `batch` per call, and failure counts older than two days before `now`; returns how many events. */
  pruneEvents(before: number, batch: number, now: number): Promise<number>;
  countEvents(edgeId: string): Promise<number>;
  /** The edge's newest raw events of these kinds since `since` (at most `limit`), oldest first: rule windows survive a hub restart. */
  recentEvents(edgeId: string, since: number, kinds: readonly string[], limit: number): Promise<TelemetryEvent[]>;
}
