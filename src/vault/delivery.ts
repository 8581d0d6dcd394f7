/**
 * Delivery of secrets to edges, as an EdgeFeature on capability `secrets`.
 *
 * What each edge should hold is derived from the store (the rules and each secret's live
 * version); what it holds is what it reported at link-up plus what it acknowledged since,
 * and the store keeps the same. So nothing about a delivery lives only in memory: after a
 * hub restart the edge reports again, and whatever was not acknowledged is sent again.
 *
 * A change to a secret (put, delete, allow, deny, ...) is planned once for every connected
 * edge in the next turn of the event loop and pushed at once. So is a change to who may hold
 * it that comes from devices and edges (a device enrolled, moved, enabled, disabled or
 * removed; an edge enabled, disabled or removed): the store announces each such change with
 * the edges it concerns, and only those edges are planned again. Each edge gets at most
 * MAX_IN_FLIGHT_PER_EDGE requests at a time, and a failed one is retried with backoff.
 * Every delivery is audited before it is sent, every acknowledgement and removal when it
 * comes back, and never with a value. The records of one fan-out (a thousand edges) are
 * written in one transaction per turn of the event loop, not one each, and a version is
 * opened once for all the edges it goes to (edge-sealer.ts).
 */
import { DrawbridgeError } from '../errors.js';
import type { EdgeConnection, EdgeFeature } from '../hub/edge-registry.js';
import { SecretsDeliver, SecretsReads, SecretsRemove, SecretsSync } from '../protocol/messages/index.js';
import type { BodyOf } from '../protocol/control.js';
import type { AuditEntry, DeviceRecord, EdgeRecord, Store } from '../store/store.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { WriteBatcher } from '../util/write-batcher.js';
import type { DeliveryAck, DeliveryRemoval } from '../store/vault-store.js';
import { EdgeSealer } from './edge-sealer.js';
import { entitlementOf, groupDevicesByEdge } from './access.js';
import type { VaultService } from './vault-service.js';

export const SECRETS_CAPABILITY = 'secrets';
/** Requests outstanding per edge; the rest wait their turn. */
const MAX_IN_FLIGHT_PER_EDGE = 16;
/** An edge that does not answer a delivery within this is retried. */
const DELIVERY_TIMEOUT_MS = 30_000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 60_000;
/** Up to this many edges to plan, their facts are read edge by edge (indexed); beyond, all at once. */
const EDGES_READ_ONE_BY_ONE = 16;

interface EdgeState {
  readonly connection: EdgeConnection;
  /** name -> version the edge holds */
  readonly held: Map<string, number>;
  /** name -> version it should hold (absent: none) */
  readonly wanted: Map<string, number>;
  /** Names to compare and act on */
  readonly queue: Set<string>;
  readonly inFlight: Set<string>;
  failures: number;
  retryTimer?: TimerHandle;
}

export class SecretDelivery implements EdgeFeature {
  readonly capability = SECRETS_CAPABILITY;
  private readonly edges = new Map<string, EdgeState>();
  /** Edges online with this capability, synced or not yet */
  private readonly connected = new Map<string, EdgeConnection>();
  /** Callers waiting for an edge to hold nothing (edge removal) */
  private readonly emptyWaiters = new Map<string, Set<() => void>>();
  private readonly fullPlan = new Set<string>();
  private readonly changedNames = new Set<string>();
  private planScheduled = false;
  private planning: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Each secret's deliverable version as of the last plan */
  private deliverable = new Map<string, number>();
  private readonly sealer: EdgeSealer;
  // The store writes of one fan-out, gathered into one transaction per turn of the event loop.
  private readonly deliveryRecords: WriteBatcher<AuditEntry>;
  private readonly acks: WriteBatcher<DeliveryAck>;
  private readonly removals: WriteBatcher<DeliveryRemoval>;

  constructor(
    private readonly vault: VaultService,
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    this.sealer = new EdgeSealer(vault);
    this.deliveryRecords = new WriteBatcher((entries) => vault.repo.appendAuditBatch(entries));
    this.acks = new WriteBatcher((acks) => vault.repo.recordAcks(acks));
    this.removals = new WriteBatcher((removals) => vault.repo.recordRemovals(removals));
    vault.onChange((names) => {
      for (const name of names) this.changedNames.add(name);
      this.schedulePlan();
    });
    // Whoever enrolled, moved, disabled or removed a device or an edge: its edges are planned again.
    store.onMembershipChange((change) => {
      let concerned = false;
      for (const edgeId of change.edgeIds) {
        if (!this.edges.has(edgeId)) continue; // offline or not synced: its next sync plans it in full
        this.fullPlan.add(edgeId);
        concerned = true;
      }
      if (concerned) this.schedulePlan();
    });
  }

  /** Edges that reported their holdings and are being kept up to date. */
  get syncedEdges(): number {
    return this.edges.size;
  }

  online(connection: EdgeConnection): void {
    this.connected.set(connection.edge.id, connection);
    // The edge speaks first (secrets.sync), so no delivery can reach it before its handlers.
    connection.link.handle(SecretsSync, (body) => this.onSync(connection, body));
    connection.link.handle(SecretsReads, (body) => this.onReads(connection, body));
  }

  offline(connection: EdgeConnection): void {
    if (this.connected.get(connection.edge.id) === connection) this.connected.delete(connection.edge.id);
    const state = this.edges.get(connection.edge.id);
    if (state?.connection === connection) {
      this.clock.clearTimeout(state.retryTimer);
      this.edges.delete(connection.edge.id);
    }
    this.notifyEmptyWaiters(connection.edge.id);
  }

  /**
   * Resolves true once the edge confirmed it holds no secret and nothing is on its way to it
   * (what an edge removal waits for before it closes the link), false when its link closes
   * first or `withinMs` passes.
   */
  whenEmpty(edgeId: string, withinMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const waiters = this.emptyWaiters.get(edgeId) ?? new Set();
      this.emptyWaiters.set(edgeId, waiters);
      const finish = (result: boolean): void => {
        waiters.delete(check);
        if (waiters.size === 0 && this.emptyWaiters.get(edgeId) === waiters) this.emptyWaiters.delete(edgeId);
        this.clock.clearTimeout(timer);
        resolve(result);
      };
      const check = (): void => {
        if (!this.connected.has(edgeId)) return finish(false);
        const state = this.edges.get(edgeId);
        // Not synced yet: its sync plans it, and the removals follow.
        if (state && state.held.size === 0 && state.queue.size === 0 && state.inFlight.size === 0) finish(true);
      };
      const timer = this.clock.setTimeout(() => finish(false), withinMs);
      waiters.add(check);
      check();
    });
  }

  private notifyEmptyWaiters(edgeId: string): void {
    for (const check of [...(this.emptyWaiters.get(edgeId) ?? [])]) check();
  }

  stop(): void {
    this.stopped = true;
    for (const state of this.edges.values()) this.clock.clearTimeout(state.retryTimer);
    this.edges.clear();
    this.connected.clear();
    for (const edgeId of [...this.emptyWaiters.keys()]) this.notifyEmptyWaiters(edgeId);
  }

  private async onSync(connection: EdgeConnection, body: BodyOf<typeof SecretsSync>): Promise<Record<string, never>> {
    const edgeId = connection.edge.id;
    await this.vault.repo.reconcileHoldings(edgeId, body.held, this.clock.now());
    const previous = this.edges.get(edgeId);
    if (previous && previous.connection !== connection) this.clock.clearTimeout(previous.retryTimer);
    const state: EdgeState = previous?.connection === connection
      ? previous
      : { connection, held: new Map(), wanted: new Map(), queue: new Set(), inFlight: new Set(), failures: 0 };
    state.held.clear();
    for (const entry of body.held) state.held.set(entry.name, entry.version);
    if (connection.link.isOpen) {
      this.edges.set(edgeId, state);
      this.fullPlan.add(edgeId);
      this.schedulePlan();
    }
    return {};
  }

  private async onReads(connection: EdgeConnection, body: BodyOf<typeof SecretsReads>): Promise<Record<string, never>> {
    // Counts per secret and version for the store; per app for the audit record.
    const bySecret = new Map<string, { name: string; version: number; count: number; lastReadAt: number }>();
    for (const r of body.reads) {
      const key = `${r.name}\0${r.version}`;
      const entry = bySecret.get(key) ?? { name: r.name, version: r.version, count: 0, lastReadAt: 0 };
      entry.count += r.count;
      entry.lastReadAt = Math.max(entry.lastReadAt, r.lastReadAt);
      bySecret.set(key, entry);
    }
    const total = body.reads.reduce((n, r) => n + r.count, 0);
    await this.vault.repo.recordReads(connection.edge.id, [...bySecret.values()], {
      actor: `edge:${connection.edge.name}`,
      action: 'secret.reads',
      details: { edge: connection.edge.name, total, reads: body.reads.map((r) => ({ app: r.app, secret: r.name, version: r.version, count: r.count })) },
    });
    return {};
  }

  private schedulePlan(): void {
    if (this.planScheduled || this.stopped) return;
    this.planScheduled = true;
    // Plans run one at a time, each on a fresh read of the store.
    this.planning = this.planning.then(
      () =>
        new Promise<void>((resolve) =>
          setImmediate(() => {
            this.planScheduled = false;
            this.plan()
              .catch((error: unknown) => {
                this.logger.error({ err: error }, 'planning secret deliveries failed; retrying');
                this.clock.setTimeout(() => {
                  for (const id of this.edges.keys()) this.fullPlan.add(id);
                  this.schedulePlan();
                }, RETRY_MIN_MS).unref();
              })
              .finally(resolve);
          }),
        ),
    );
  }

  /**
   * Works out what synced edges should hold now: every edge for the secrets that changed, and
   * everything for the edges that just synced or whose devices or standing changed.
   */
  private async plan(): Promise<void> {
    const full = new Set(this.fullPlan);
    const names = new Set(this.changedNames);
    this.fullPlan.clear();
    this.changedNames.clear();
    const targets = names.size > 0 ? [...this.edges.keys()] : [...full].filter((id) => this.edges.has(id));
    if (targets.length === 0) return;
    const [rules, deliverable, facts] = await Promise.all([this.vault.repo.listRules(), this.vault.repo.deliverableVersions(), this.edgeFacts(targets)]);
    this.deliverable = deliverable;
    for (const edgeId of targets) {
      const state = this.edges.get(edgeId);
      if (!state) continue; // went offline meanwhile
      const { edge, devices } = facts.get(edgeId) ?? { edge: undefined, devices: [] };
      const entitlement = entitlementOf(edge, rules, devices);
      const consider = full.has(edgeId) ? new Set([...entitlement.active, ...entitlement.paused, ...state.held.keys(), ...state.wanted.keys()]) : names;
      for (const name of consider) {
        const held = state.held.get(name);
        const version = await this.vault.wantedVersion(name, deliverable.get(name), entitlement.active.has(name), entitlement.paused.has(name), held);
        if (version === undefined) state.wanted.delete(name);
        else state.wanted.set(name, version);
        if (state.held.get(name) !== version) state.queue.add(name);
      }
      this.pump(state);
      this.notifyEmptyWaiters(edgeId);
    }
  }

  /** The edges as stored now (undefined: removed) and the devices enrolled on each. */
  private async edgeFacts(edgeIds: readonly string[]): Promise<Map<string, { edge: EdgeRecord | undefined; devices: DeviceRecord[] }>> {
    const facts = new Map<string, { edge: EdgeRecord | undefined; devices: DeviceRecord[] }>();
    if (edgeIds.length <= EDGES_READ_ONE_BY_ONE) {
      await Promise.all(edgeIds.map(async (id) => {
        const [edge, devices] = await Promise.all([this.store.getEdge(id), this.store.devicesOfEdge(id)]);
        facts.set(id, { edge, devices });
      }));
      return facts;
    }
    const [edges, devices] = await Promise.all([this.store.listEdges(), this.store.listDevices()]);
    const byId = new Map(edges.map((e) => [e.id, e]));
    const devicesOf = groupDevicesByEdge(devices);
    for (const id of edgeIds) facts.set(id, { edge: byId.get(id), devices: devicesOf.get(id) ?? [] });
    return facts;
  }

  /** Sends what is queued for an edge, up to MAX_IN_FLIGHT_PER_EDGE at a time. */
  private pump(state: EdgeState): void {
    for (const name of state.queue) {
      if (state.inFlight.size >= MAX_IN_FLIGHT_PER_EDGE) return;
      if (state.inFlight.has(name)) continue;
      state.queue.delete(name);
      const want = state.wanted.get(name);
      const have = state.held.get(name);
      if (want === have) continue;
      state.inFlight.add(name);
      const work = want === undefined ? this.removeFrom(state, name, have as number) : this.deliverTo(state, name, want);
      work.then(
        () => {
          state.failures = 0;
        },
        (error: unknown) => this.failed(state, name, error),
      ).finally(() => {
        state.inFlight.delete(name);
        // Whatever changed meanwhile is compared again.
        if (state.wanted.get(name) !== state.held.get(name)) state.queue.add(name);
        if (this.edges.get(state.connection.edge.id) === state && state.connection.link.isOpen) this.pump(state);
        this.notifyEmptyWaiters(state.connection.edge.id);
      });
    }
  }

  private async deliverTo(state: EdgeState, name: string, version: number): Promise<void> {
    const { edge, link } = state.connection;
    const sealed = await this.sealer.seal(edge, name, version);
    if (!sealed) return; // deleted or destroyed meanwhile: the next plan removes it
    await this.deliveryRecords.add({ actor: 'hub', action: 'secret.deliver', details: { secret: name, version, edge: edge.name } });
    await link.request(SecretsDeliver, { name, version, ...sealed }, DELIVERY_TIMEOUT_MS);
    state.held.set(name, version);
    await this.acks.add({
      edgeId: edge.id,
      name,
      version,
      at: this.clock.now(),
      audit: { actor: `edge:${edge.name}`, action: 'secret.ack', details: { secret: name, version, edge: edge.name } },
    });
  }

  private async removeFrom(state: EdgeState, name: string, version: number): Promise<void> {
    const { edge, link } = state.connection;
    // As of the last plan: a secret that is still deliverable left this edge because it is no longer allowed there.
    const reason = this.deliverable.has(name) ? 'denied' : 'deleted';
    await link.request(SecretsRemove, { name, reason }, DELIVERY_TIMEOUT_MS);
    state.held.delete(name);
    await this.removals.add({
      edgeId: edge.id,
      name,
      audit: { actor: `edge:${edge.name}`, action: 'secret.remove', details: { secret: name, version, edge: edge.name, reason } },
    });
  }

  private failed(state: EdgeState, name: string, error: unknown): void {
    if (!state.connection.link.isOpen || this.edges.get(state.connection.edge.id) !== state) return; // it re-syncs on its next link
    state.failures++;
    const code = error instanceof DrawbridgeError ? error.code : undefined;
    this.logger.warn({ edge: state.connection.edge.name, secret: name, errorCode: code, err: (error as Error).message }, 'secret delivery failed; retrying');
    if (state.retryTimer) return;
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(state.failures - 1, 10));
    state.retryTimer = this.clock.setTimeout(() => {
      state.retryTimer = undefined;
      if (this.edges.get(state.connection.edge.id) !== state) return;
      this.fullPlan.add(state.connection.edge.id);
      this.schedulePlan();
    }, delay);
    state.retryTimer.unref();
  }
}
