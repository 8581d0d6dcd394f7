/**
 * Edge security monitoring in the hub: the `telemetry` capability on edge links (ingest of
 * checkpoints, inventory deltas and event batches), per-edge rule state, the hub's own alert
 * (telemetry-silent), retention of raw events, and the operations behind the REST API.
 *
 * Messages from one edge are handled one at a time, in the order they arrived (sequence
 * numbers depend on it); edges are independent. Each message is one bounded transaction.
 * Bad input (undecodable, invalid, a gap, a removed or disabled edge) is refused with a
 * coded error, counted in drawbridge_telemetry_rejected_total and logged in one line;
 * nothing stored is touched by it.
 */
import { DrawbridgeError, type ErrorCode } from '../errors.js';
import type { BodyOf, ResultOf } from '../protocol/control.js';
import {
  EventBatchContentSchema,
  INVENTORIES,
  InventoryContentSchema,
  ROW_SCHEMAS,
  TELEMETRY_CAPABILITY,
  TelemetryEvents,
  TelemetryInventory,
  TelemetryState,
  type InventoryName,
  type InventoryRow,
  type TelemetryEvent,
} from '../protocol/messages/telemetry.js';
import { checkpointDigest, decodePayload } from '../protocol/telemetry-codec.js';
import type { AlertQuery, AlertRecord, AlertStatus, FindingQuery, FindingRecord, MonitorStore } from '../store/monitor-store.js';
import type { AuditEntry, Store } from '../store/store.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { EdgeConnection, EdgeFeature } from '../hub/edge-registry.js';
import type { WebhookSender } from '../hub/webhook.js';
import { issuesText } from '../util/schemas.js';
import { allowedPorts, edgeTags } from './baseline.js';
import type { MonitoringConfig } from './config.js';
import { findingsFor } from './findings/posture.js';
import type { MonitorMetrics } from './metrics.js';
import { inventoryAlerts } from './rules/inventory.js';
import { SshActivity } from './rules/ssh.js';
import { SliceScheduler } from './slices.js';
import { alertView, postureView } from './views.js';
import type { EdgeMonitoringView, PostureView } from '../protocol/api-types.js';

/** How often online edges are checked for silence (at most). */
const SILENCE_SWEEP_MS = 30_000;
/** How often raw events are pruned by age, and how many rows one statement deletes. */
const RETENTION_SWEEP_MS = 3_600_000;
const RETENTION_BATCH = 5000;
/** Refusals logged per edge per minute; the rest are counted, and summed up in one line. */
const REFUSAL_LOG_PER_MINUTE = 10;
/** Open alerts and findings are recounted for the metrics at most this often. */
const METRICS_REFRESH_MS = 1000;

interface EdgeMonitor {
  connection: EdgeConnection;
  ssh: SshActivity;
  /** uid-0 account names, for root-login */
  privileged: Set<string>;
  allowed: ReadonlySet<string> | undefined;
  queueId: string | null;
  lastBatch: number;
  lastTelemetryAt: number;
  checkpointIntervalMs: number;
  silentAlerted: boolean;
  dropped: number;
  /** The tail of this edge's chain of message handling. */
  chain: Promise<unknown>;
  refusalsLogged: number;
  refusalsSuppressed: number;
  refusalWindowStart: number;
}

class Refusal extends DrawbridgeError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly reason: string,
  ) {
    super(code, message);
  }
}

export interface MonitorServiceOptions {
  store: Store;
  monitorStore: MonitorStore;
  config: MonitoringConfig;
  metrics: MonitorMetrics;
  webhook: WebhookSender;
  logger: Logger;
  clock: Clock;
}

export class MonitorService implements EdgeFeature {
  readonly capability = TELEMETRY_CAPABILITY;
  private readonly edges = new Map<string, EdgeMonitor>();
  private readonly timers: TimerHandle[] = [];
  private metricsRefresh: Promise<void> | undefined;
  private metricsTimer: TimerHandle | undefined;
  private lastMetricsRefresh = 0;
  private metricsDirty = false;
  private pruning = false;
  /** Messages being handled, across edges (including edges that went offline meanwhile). */
  private readonly inflight = new Set<Promise<unknown>>();
  /** Store work from every edge, a bounded slice at a time (the 50 ms rule). */
  private readonly slices: SliceScheduler;
  /** Events edges reported dropped, summed over the edges online (kept as a running total). */
  private droppedTotal = 0;

  constructor(private readonly options: MonitorServiceOptions) {
    this.slices = new SliceScheduler({ group: (runAll) => options.monitorStore.group(runAll) });
  }

  private get config(): MonitoringConfig {
    return this.options.config;
  }

  private get repo(): MonitorStore {
    return this.options.monitorStore;
  }

  private now(): number {
    return this.options.clock.now();
  }

  start(): void {
    const { clock } = this.options;
    // Checked often enough that a silent edge is noticed within a quarter of the configured time.
    const silenceSweep = Math.min(SILENCE_SWEEP_MS, Math.max(500, this.config.rules['telemetry-silent'].after / 4));
    this.timers.push(clock.setInterval(() => void this.sweepSilence(), silenceSweep));
    this.timers.push(clock.setInterval(() => void this.sweepRetention(), RETENTION_SWEEP_MS));
    for (const timer of this.timers) timer.unref();
    this.refreshMetrics();
  }

  stop(): void {
    for (const timer of this.timers.splice(0)) this.options.clock.clearInterval(timer);
    this.options.clock.clearTimeout(this.metricsTimer);
  }

  /** Waits until every edge's queued telemetry has been handled (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
    if (this.metricsTimer) {
      this.options.clock.clearTimeout(this.metricsTimer);
      this.metricsTimer = undefined;
      this.runMetricsRefresh();
    }
    await this.metricsRefresh;
  }

  // ---- the edge feature ----

  online(connection: EdgeConnection): void {
    const edge: EdgeMonitor = {
      connection,
      ssh: new SshActivity(this.config.rules),
      privileged: new Set(),
      allowed: undefined,
      queueId: null,
      lastBatch: 0,
      lastTelemetryAt: this.now(),
      checkpointIntervalMs: 0,
      silentAlerted: false,
      dropped: 0,
      chain: Promise.resolve(),
      refusalsLogged: 0,
      refusalsSuppressed: 0,
      refusalWindowStart: this.now(),
    };
    this.edges.set(connection.edge.id, edge);
    // Everything the rules need about this edge is loaded before its first message is handled.
    edge.chain = this.load(edge).catch((error: unknown) => this.options.logger.error({ err: error, edge: connection.edge.name }, 'could not load the edge monitoring state'));
    const link = connection.link;
    link.handle(TelemetryState, (body) => this.enqueue(edge, 'telemetry.state', body, (bytes) => this.onState(edge, body, bytes)));
    link.handle(TelemetryInventory, (body) => this.enqueue(edge, 'telemetry.inventory', body, (bytes) => this.onInventory(edge, body, bytes)));
    link.handle(TelemetryEvents, (body) => this.enqueue(edge, 'telemetry.events', body, (bytes) => this.onEvents(edge, body, bytes)));
  }

  offline(connection: EdgeConnection): void {
    const edge = this.edges.get(connection.edge.id);
    if (edge?.connection !== connection) return;
    this.edges.delete(connection.edge.id);
    this.setDropped(edge, 0);
  }

  private async load(edge: EdgeMonitor): Promise<void> {
    const id = edge.connection.edge.id;
    const [state, admins, devices] = await this.slices.run(() => Promise.all([this.repo.edgeState(id), this.repo.inventoryRows(id, 'admins'), this.options.store.devicesOfEdge(id)]));
    // Rule windows are kept in memory: after a hub restart they start from the stored events.
    const since = (state?.lastTelemetryAt ?? this.now()) - edge.ssh.windowMs;
    edge.ssh.seed(await this.slices.run(() => this.repo.recentEvents(id, since, ['ssh.failure', 'ssh.invalid-user'], 4096)));
    edge.queueId = state?.queueId ?? null;
    edge.lastBatch = state?.lastBatch ?? 0;
    this.setDropped(edge, state?.dropped ?? 0);
    edge.privileged = privilegedAccounts(admins);
    edge.allowed = allowedPorts(this.config.baseline, edgeTags(devices));
  }

  /** Runs `work` after this edge's earlier messages; counts and logs a refusal. */
  private enqueue<T>(edge: EdgeMonitor, type: string, body: unknown, work: (bytes: number) => Promise<T>): Promise<T> {
    const bytes = bodyBytes(body);
    this.options.metrics.telemetryBytes.inc({ type }, bytes);
    this.options.metrics.telemetryMessages.inc({ type });
    // Decoding and validating start in a slice too: ten thousand edges reporting at once must
    // not turn into one long stretch of synchronous work.
    const run = edge.chain.then(() => this.slices.run(() => work(bytes)));
    edge.chain = run.catch(() => undefined);
    const settled = edge.chain.finally(() => this.inflight.delete(settled));
    this.inflight.add(settled);
    return run.catch((error: unknown) => {
      const refusal = error instanceof Refusal ? error : undefined;
      if (refusal) this.refused(edge, type, refusal);
      else this.options.logger.error({ err: error, edge: edge.connection.edge.name, type }, 'telemetry could not be stored');
      throw error;
    });
  }

  private refused(edge: EdgeMonitor, type: string, refusal: Refusal): void {
    this.options.metrics.telemetryRejected.inc({ reason: refusal.reason });
    const now = this.now();
    if (now - edge.refusalWindowStart >= 60_000) {
      if (edge.refusalsSuppressed > 0) {
        this.options.logger.warn({ edge: edge.connection.edge.name, suppressed: edge.refusalsSuppressed }, 'telemetry refusals not logged in the last minute (counted in drawbridge_telemetry_rejected_total)');
      }
      edge.refusalWindowStart = now;
      edge.refusalsLogged = 0;
      edge.refusalsSuppressed = 0;
    }
    if (edge.refusalsLogged++ < REFUSAL_LOG_PER_MINUTE) {
      this.options.logger.warn({ edge: edge.connection.edge.name, type, reason: refusal.reason, errorCode: refusal.code, err: refusal.message }, 'telemetry refused; nothing stored');
    } else {
      edge.refusalsSuppressed++;
    }
  }

  private touch(edge: EdgeMonitor): void {
    edge.lastTelemetryAt = this.now();
    if (edge.silentAlerted) {
      edge.silentAlerted = false;
      void this.repo
        .resolveAlertByKey(edge.connection.edge.id, 'telemetry-silent', 'telemetry', this.now(), 'telemetry resumed')
        .then((alert) => {
          if (alert) this.alertResolved(alert);
        })
        .catch((error: unknown) => this.options.logger.error({ err: error }, 'could not resolve the telemetry-silent alert'));
    }
  }

  private async onState(edge: EdgeMonitor, body: BodyOf<typeof TelemetryState>, bytes: number): Promise<ResultOf<typeof TelemetryState>> {
    const id = edge.connection.edge.id;
    this.touch(edge);
    edge.checkpointIntervalMs = body.checkpointIntervalMs;
    this.setDropped(edge, body.dropped);
    const checkpoint = { at: this.now(), queueId: body.queueId, queued: body.queued, dropped: body.dropped, checkpointIntervalMs: body.checkpointIntervalMs, bytes };
    const state = await this.slices.run(async () => {
      await this.repo.recordCheckpoint(id, checkpoint);
      return this.repo.edgeState(id);
    });
    const held = state?.inventories ?? {};
    const inventories: NonNullable<ResultOf<typeof TelemetryState>['inventories']> = {};
    for (const name of INVENTORIES) {
      const mine = held[name];
      if (mine) inventories[name] = { seq: mine.seq, hash: mine.hash };
    }
    if (!body.inventories) {
      // A digest: nothing to say when it matches; otherwise what the hub holds, for the edge to compare.
      return body.digest === checkpointDigest(inventories) ? { resync: [] } : { inventories, resync: [] };
    }
    const resync: InventoryName[] = [];
    for (const name of INVENTORIES) {
      const theirs = body.inventories[name];
      if (theirs && inventories[name]?.hash !== theirs.hash) resync.push(name);
    }
    if (resync.length > 0) this.options.logger.info({ edge: edge.connection.edge.name, resync }, 'telemetry: asking the edge for full inventories (new, or drifted)');
    return { inventories, resync };
  }

  private async onInventory(edge: EdgeMonitor, body: BodyOf<typeof TelemetryInventory>, bytes: number): Promise<ResultOf<typeof TelemetryInventory>> {
    this.touch(edge);
    const content = await this.decode(body.payload, InventoryContentSchema, body.inventory);
    const rows = 'rows' in content ? content.rows : content.set;
    const validated = validateRows(body.inventory, rows);
    const at = this.now();
    const result = await this.slices.run(() => this.repo.applyInventory(
      {
        edgeId: edge.connection.edge.id,
        inventory: body.inventory,
        seq: body.seq,
        full: body.full,
        rows: validated,
        removed: 'removed' in content ? content.removed : [],
        hash: content.hash,
        at,
        bytes,
      },
      (diff) => ({
        alerts: inventoryAlerts(diff, this.config.rules, edge.allowed, at),
        findings: findingsFor(diff.inventory, diff.after, this.config.findings, edge.allowed),
      }),
    ));
    if (!result.applied) {
      if (result.reason === 'unknown-edge') throw new Refusal('UNKNOWN_EDGE', 'this edge is not registered (removed?)', 'unknown_edge');
      if (result.reason === 'edge-disabled') throw new Refusal('EDGE_DISABLED', 'this edge is disabled', 'edge_disabled');
      this.options.metrics.telemetryRejected.inc({ reason: result.reason === 'gap' ? 'gap' : 'hash_mismatch' });
      this.options.logger.info({ edge: edge.connection.edge.name, inventory: body.inventory, seq: body.seq, full: body.full, reason: result.reason }, 'telemetry: inventory not applied; asking for a full resync');
      // A full state that hashes differently is a disagreement a resync cannot fix: say so.
      if (body.full) throw new Refusal('VALIDATION_FAILED', `the full ${body.inventory} inventory hashes to ${result.hash ?? '?'} here, not ${content.hash}`, 'hash_mismatch');
      return { applied: false, resync: true };
    }
    if (body.inventory === 'admins') edge.privileged = privilegedAccounts(await this.slices.run(() => this.repo.inventoryRows(edge.connection.edge.id, 'admins')));
    for (const alert of result.opened) this.alertOpened(alert);
    if (result.opened.length + result.updated.length + result.findingsOpened.length + result.findingsResolved.length > 0) this.refreshMetrics();
    for (const finding of result.findingsOpened) this.options.logger.info({ edge: finding.edgeName, rule: finding.rule, key: finding.key }, 'finding opened');
    for (const finding of result.findingsResolved) this.options.logger.info({ edge: finding.edgeName, rule: finding.rule, key: finding.key }, 'finding resolved (the state was fixed)');
    return { applied: true, resync: false };
  }

  private async onEvents(edge: EdgeMonitor, body: BodyOf<typeof TelemetryEvents>, bytes: number): Promise<ResultOf<typeof TelemetryEvents>> {
    this.touch(edge);
    if (edge.queueId === body.queueId && body.batch <= edge.lastBatch) return { accepted: body.batch };
    const content = await this.decode(body.payload, EventBatchContentSchema, 'events');
    const events: TelemetryEvent[] = content.events;
    const fires = edge.ssh.evaluate(events, edge.privileged);
    const result = await this.slices.run(() => this.repo.applyEvents(
      { edgeId: edge.connection.edge.id, queueId: body.queueId, batch: body.batch, events, at: this.now(), bytes, maxEventsPerEdge: this.config.retention.maxEventsPerEdge },
      fires,
    ));
    if (!result.accepted) {
      throw result.reason === 'unknown-edge'
        ? new Refusal('UNKNOWN_EDGE', 'this edge is not registered (removed?)', 'unknown_edge')
        : new Refusal('EDGE_DISABLED', 'this edge is disabled', 'edge_disabled');
    }
    edge.queueId = body.queueId;
    edge.lastBatch = Math.max(edge.lastBatch, body.batch);
    if (!result.duplicate) this.options.metrics.events.inc(events.reduce((sum, e) => sum + e.n, 0));
    for (const alert of result.opened) this.alertOpened(alert);
    if (result.opened.length + result.updated.length > 0) this.refreshMetrics();
    return { accepted: body.batch };
  }

  private async decode<T>(payload: BodyOf<typeof TelemetryEvents>['payload'], schema: { safeParse(value: unknown): { success: true; data: T } | { success: false; error: import('zod').ZodError } }, what: string): Promise<T> {
    let decoded: unknown;
    try {
      decoded = await decodePayload(payload);
    } catch (error) {
      const e = error as DrawbridgeError;
      throw new Refusal(e.code === 'PAYLOAD_TOO_LARGE' ? 'PAYLOAD_TOO_LARGE' : 'VALIDATION_FAILED', `${what}: ${e.message}`, e.code === 'PAYLOAD_TOO_LARGE' ? 'oversized' : 'malformed');
    }
    const parsed = schema.safeParse(decoded);
    if (!parsed.success) throw new Refusal('VALIDATION_FAILED', `${what}: ${issuesText(parsed.error, 'payload')}`.slice(0, 900), 'malformed');
    return parsed.data;
  }

  // ---- the hub's own alert and upkeep ----

  private async sweepSilence(): Promise<void> {
    const rule = this.config.rules['telemetry-silent'];
    if (!rule.enabled) return;
    const now = this.now();
    for (const edge of this.edges.values()) {
      const after = Math.max(rule.after, 3 * edge.checkpointIntervalMs);
      if (edge.silentAlerted || now - edge.lastTelemetryAt < after || !edge.connection.link.isOpen) continue;
      edge.silentAlerted = true;
      const silentFor = Math.round((now - edge.lastTelemetryAt) / 1000);
      try {
        const { alert, opened } = await this.repo.raiseAlert(
          { id: edge.connection.edge.id, name: edge.connection.edge.name },
          {
            rule: 'telemetry-silent',
            key: 'telemetry',
            severity: rule.severity,
            facts: { lastTelemetryAt: new Date(edge.lastTelemetryAt).toISOString(), silentSeconds: silentFor },
            count: 1,
            at: now,
            evidence: [`edge online since ${new Date(edge.connection.connectedAt).toISOString()}, no telemetry for ${silentFor} s`],
          },
        );
        if (opened) this.alertOpened(alert);
        this.refreshMetrics();
      } catch (error) {
        edge.silentAlerted = false;
        this.options.logger.error({ err: error }, 'could not raise the telemetry-silent alert');
      }
    }
  }

  /** Deletes raw events past their age, a bounded batch at a time, yielding between batches. */
  async sweepRetention(): Promise<number> {
    if (this.pruning) return 0;
    this.pruning = true;
    let total = 0;
    try {
      const now = this.now();
      for (let round = 0; round < 200; round++) {
        const removed = await this.repo.pruneEvents(now - this.config.retention.maxAge, RETENTION_BATCH, now);
        total += removed;
        if (removed < RETENTION_BATCH) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (total > 0) this.options.logger.info({ removed: total }, 'monitoring: raw events past their retention removed');
    } catch (error) {
      this.options.logger.error({ err: error }, 'monitoring retention sweep failed');
    } finally {
      this.pruning = false;
    }
    return total;
  }

  private alertOpened(alert: AlertRecord): void {
    this.options.logger.warn({ alert: alert.id, edge: alert.edgeName, rule: alert.rule, severity: alert.severity, facts: alert.facts }, 'security alert opened');
    this.options.webhook.fire('alert.opened', { alert: alertView(alert, true) });
  }

  private alertResolved(alert: AlertRecord): void {
    this.options.webhook.fire('alert.resolved', { alert: alertView(alert) });
    this.refreshMetrics();
  }

  private setDropped(edge: EdgeMonitor, dropped: number): void {
    this.droppedTotal += dropped - edge.dropped;
    edge.dropped = dropped;
    this.options.metrics.eventsDroppedOnEdges.set(this.droppedTotal);
  }

  /**
   * Recounts open alerts and findings (one grouped query each, by index): at most once a
   * second, however many alerts a flood opens.
   */
  private refreshMetrics(): void {
    this.metricsDirty = true;
    if (this.metricsTimer || this.metricsRefresh) return;
    const wait = Math.max(0, this.lastMetricsRefresh + METRICS_REFRESH_MS - this.now());
    if (wait === 0) {
      this.runMetricsRefresh();
      return;
    }
    this.metricsTimer = this.options.clock.setTimeout(() => {
      this.metricsTimer = undefined;
      this.runMetricsRefresh();
    }, wait);
    this.metricsTimer.unref();
  }

  private runMetricsRefresh(): void {
    this.metricsRefresh = (async () => {
      while (this.metricsDirty) {
        this.metricsDirty = false;
        this.lastMetricsRefresh = this.now();
        const counts = await this.slices.run(() => this.repo.openCounts());
        this.options.metrics.alertsOpen.reset();
        for (const c of counts.alerts) this.options.metrics.alertsOpen.set({ severity: c.severity, status: c.status }, c.count);
        this.options.metrics.findingsOpen.reset();
        for (const c of counts.findings) this.options.metrics.findingsOpen.set({ severity: c.severity }, c.count);
      }
    })()
      .catch((error: unknown) => this.options.logger.warn({ err: error }, 'could not count open alerts'))
      .finally(() => {
        this.metricsRefresh = undefined;
        if (this.metricsDirty) this.refreshMetrics();
      });
  }

  // ---- operations behind the REST API ----

  async requireAlert(id: string): Promise<AlertRecord> {
    const alert = /^al_[0-9a-f]{16}$/.test(id) ? await this.repo.getAlert(id) : undefined;
    if (!alert) throw new DrawbridgeError('UNKNOWN_ALERT', `unknown alert "${id.slice(0, 40)}"`);
    return alert;
  }

  async requireFinding(id: string): Promise<FindingRecord> {
    const finding = /^fd_[0-9a-f]{16}$/.test(id) ? await this.repo.getFinding(id) : undefined;
    if (!finding) throw new DrawbridgeError('UNKNOWN_FINDING', `unknown finding "${id.slice(0, 40)}"`);
    return finding;
  }

  /** Acknowledges (open -> acked) or resolves (open or acked -> resolved) an alert, audited. */
  async transitionAlert(actor: string, id: string, to: 'acked' | 'resolved', note: string | undefined): Promise<AlertRecord> {
    const alert = await this.requireAlert(id);
    const from: AlertStatus[] = to === 'acked' ? ['open'] : ['open', 'acked'];
    const audit: AuditEntry = { actor, action: to === 'acked' ? 'alert.ack' : 'alert.resolve', details: { alert: id, edge: alert.edgeName, rule: alert.rule, ...(note ? { note } : {}) } };
    const updated = await this.repo.transitionAlert(id, from, to, actor, note ?? null, this.now(), audit);
    if (!updated) throw new DrawbridgeError('INVALID_STATE', `alert ${id} is ${(await this.requireAlert(id)).status}; it cannot be ${to === 'acked' ? 'acknowledged' : 'resolved'}`);
    if (to === 'resolved') this.alertResolved(updated);
    else this.refreshMetrics();
    return updated;
  }

  async muteFinding(actor: string, id: string, reason: string | null): Promise<FindingRecord> {
    const finding = await this.requireFinding(id);
    const audit: AuditEntry = { actor, action: reason === null ? 'finding.unmute' : 'finding.mute', details: { finding: id, edge: finding.edgeName, rule: finding.rule, key: finding.key, ...(reason ? { reason } : {}) } };
    const updated = await this.repo.setFindingMute(id, reason === null ? null : { by: actor, reason, at: this.now() }, audit);
    if (!updated) throw new DrawbridgeError('UNKNOWN_FINDING', `unknown finding "${id}"`);
    this.refreshMetrics();
    return updated;
  }

  async listAlerts(query: AlertQuery): Promise<AlertRecord[]> {
    return this.repo.listAlerts(query);
  }

  async listFindings(query: FindingQuery): Promise<FindingRecord[]> {
    return this.repo.listFindings(query);
  }

  /** Per edge id: open alerts, findings and failed logins in the last 24 hours. */
  async summaries(): Promise<Map<string, EdgeMonitoringView>> {
    const summaries = await this.repo.edgeSummaries(this.now() - 86_400_000);
    return new Map(summaries.map((s) => [s.edgeId, { openAlerts: s.openAlerts, alertsBySeverity: s.alertsBySeverity, openFindings: s.openFindings, failedLogins24h: s.failedLogins }]));
  }

  /** What the edge's collector last reported, with its unresolved alerts and its findings. */
  async posture(edgeId: string): Promise<PostureView> {
    const names = ['ports', 'admins', 'users', 'sshd', 'firewall', 'facts', 'sources'] as const;
    const [state, alerts, findings, ...rows] = await Promise.all([
      this.repo.edgeState(edgeId),
      this.repo.listAlerts({ edgeId, limit: 1000 }).then((list) => list.filter((a) => a.status !== 'resolved')),
      this.repo.listFindings({ edgeId, limit: 1000 }).then((list) => list.filter((f) => f.status === 'open')),
      ...names.map((name) => this.repo.inventoryRows(edgeId, name)),
    ]);
    const byName = Object.fromEntries(names.map((name, i) => [name, rows[i] as InventoryRow[]])) as Record<(typeof names)[number], InventoryRow[]>;
    return postureView(state, byName, alerts, findings, this.now());
  }
}

/**
 * The size of a message body as received, near enough for the byte counters: a DEFLATE payload
 * by its text (no need to serialise it again), a plain one serialised (such payloads are small).
 */
function bodyBytes(body: unknown): number {
  const payload = (body as { payload?: { deflate?: unknown } }).payload;
  if (payload && typeof payload.deflate === 'string') return payload.deflate.length + 120;
  return JSON.stringify(body).length;
}

function privilegedAccounts(admins: readonly InventoryRow[]): Set<string> {
  return new Set(admins.filter((row) => row['via'] === 'uid0').map((row) => String(row['user'])));
}

/** Validates each row against its inventory's schema; keys must be unique. */
function validateRows(inventory: InventoryName, rows: readonly Record<string, unknown>[]): InventoryRow[] {
  const schema = ROW_SCHEMAS[inventory];
  const keys = new Set<string>();
  return rows.map((row, i) => {
    const parsed = schema.safeParse(row);
    if (!parsed.success) throw new Refusal('VALIDATION_FAILED', `${inventory}: ${issuesText(parsed.error, `payload.rows.${i}`)}`.slice(0, 900), 'malformed');
    const valid = parsed.data as InventoryRow;
    if (keys.has(valid.k)) throw new Refusal('VALIDATION_FAILED', `${inventory}: row key "${valid.k.slice(0, 80)}" appears twice`, 'malformed');
    keys.add(valid.k);
    return valid;
  });
}
