/**
 * The edge's security collector and its delivery (the `telemetry` capability). Collectors
 * run whether or not the hub is reachable: inventories are read on their intervals and login
 * lines as they are written; events are aggregated for `eventFlush` and queued on disk.
 * While the link is up, one message at a time goes out, each a request: a checkpoint at
 * link-up and every `checkpointInterval` (hashes; the hub answers with what it wants in
 * full), inventory deltas as soon as a read differs from what the hub confirmed, and queued
 * event batches oldest first, each deleted once accepted.
 */
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DrawbridgeError } from '../../errors.js';
import { encodeEnvelope, PROTOCOL_VERSION, type MessageSpec } from '../../protocol/control.js';
import {
  INVENTORIES,
  TELEMETRY_CAPABILITY,
  TelemetryEvents,
  TelemetryInventory,
  TelemetryState,
  type InventoryName,
  type InventoryRow,
  type TelemetryEvent,
} from '../../protocol/messages/telemetry.js';
import { checkpointDigest, encodePayload } from '../../protocol/telemetry-codec.js';
import type { Link } from '../../transport/link.js';
import type { Clock, TimerHandle } from '../../util/clock.js';
import type { Logger } from '../../util/logger.js';
import type { AgentFeature } from '../edge-link.js';
import { parseAuthLine, parseSshdMessage } from '../collectors/auth-log-parser.js';
import type { AgentMonitoringConfig } from '../collectors/config.js';
import { JournalFollower } from '../collectors/journald.js';
import { LogFollower, type FollowPosition } from '../collectors/log-follower.js';
import type { InventorySource } from '../collectors/source.js';
import { EventAggregator } from './event-aggregator.js';
import { EventQueue } from './event-queue.js';
import { InventoryTracker, type InventoryChangeToSend } from './inventory-tracker.js';

const REQUEST_TIMEOUT_MS = 30_000;
/** Resyncs in a row for one inventory before waiting for the next checkpoint. */
const MAX_RESYNCS = 3;

export type SourceName = 'logins' | Exclude<InventoryName, 'sources'>;

export interface TelemetryCounters {
  /** Telemetry messages sent and their bytes as WebSocket frames (envelope, frame header, mask). */
  messagesSent: number;
  bytesSent: number;
  /** Replies received and their bytes as frames. */
  bytesReceived: number;
  eventsRead: number;
  batchesQueued: number;
}

export interface TelemetryAgentOptions {
  config: AgentMonitoringConfig;
  /** Absolute directory for the queue and log positions. */
  stateDir: string;
  sources: InventorySource[];
  clock: Clock;
  logger: Logger;
}

/** Bytes of a text message as a WebSocket frame: header (2, 4 or 10), mask key (4 from an agent), payload. */
export function frameBytes(text: string, masked: boolean): number {
  const length = Buffer.byteLength(text);
  return length + (length < 126 ? 2 : length < 65_536 ? 4 : 10) + (masked ? 4 : 0);
}

export class TelemetryAgent implements AgentFeature {
  readonly capability = TELEMETRY_CAPABILITY;
  readonly counters: TelemetryCounters = { messagesSent: 0, bytesSent: 0, bytesReceived: 0, eventsRead: 0, batchesQueued: 0 };
  private readonly trackers = new Map<InventoryName, InventoryTracker>();
  private readonly statuses = new Map<string, { state: 'ok' | 'error' | 'off'; message: string | null }>();
  private readonly aggregator = new EventAggregator();
  private readonly queue: EventQueue;
  private readonly timers: TimerHandle[] = [];
  private flushTimer: TimerHandle | undefined;
  private follower: LogFollower | JournalFollower | undefined;
  private link: Link | undefined;
  private synced = false;
  private chain: Promise<void> = Promise.resolve();
  private scheduled = new Set<string>();
  private pushing: Promise<void> = Promise.resolve();
  private stopped = false;
  private positionSaving: Promise<void> = Promise.resolve();

  constructor(private readonly options: TelemetryAgentOptions) {
    this.queue = new EventQueue(join(options.stateDir, 'queue'), options.config.queueMaxBytes, options.logger);
    // Every inventory has a tracker: one whose source is off reports no rows, so the hub
    // forgets what it held for it (and the findings it made from it resolve).
    for (const name of INVENTORIES) this.trackers.set(name, new InventoryTracker(name));
  }

  // ---- collecting ----

  async start(): Promise<void> {
    const { config, clock } = this.options;
    await this.queue.open();
    for (const name of ['ports', 'users', 'sshd', 'firewall', 'facts'] as const) {
      if (!config[name].enabled) this.setStatus(name, 'off', 'switched off in the agent config');
    }
    const read = new Set(this.options.sources.map((s) => s.inventory));
    for (const name of INVENTORIES) if (name !== 'sources' && !read.has(name)) this.trackers.get(name)?.update([]);
    for (const source of this.options.sources) {
      const timer = clock.setInterval(() => void this.read(source), source.intervalMs);
      timer.unref();
      this.timers.push(timer);
      void this.read(source);
    }
    await this.startLogins();
    const checkpoint = clock.setInterval(() => this.schedule('sync', () => this.sync()), config.checkpointInterval);
    checkpoint.unref();
    this.timers.push(checkpoint);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers.splice(0)) this.options.clock.clearInterval(timer);
    this.options.clock.clearTimeout(this.flushTimer);
    await this.follower?.stop();
    // Events read but not yet flushed go to the queue, so a restart loses nothing.
    await this.flush();
    await this.pushing;
    await this.positionSaving;
    this.link = undefined;
    await this.chain;
  }

  get queuedBatches(): number {
    return this.queue.length;
  }

  get droppedEvents(): number {
    return this.queue.dropped;
  }

  private async read(source: InventorySource): Promise<void> {
    let result;
    try {
      result = await source.collect();
    } catch (error) {
      result = { error: (error as Error).message };
    }
    if (this.stopped) return;
    if ('error' in result) {
      this.setStatus(source.inventory, 'error', result.error);
      return;
    }
    this.setStatus(source.inventory, 'ok', result.note ?? null);
    this.updateInventory(source.inventory, result.rows);
  }

  private updateInventory(name: InventoryName, rows: InventoryRow[]): void {
    const tracker = this.trackers.get(name);
    if (tracker?.update(rows)) this.schedule(`inventory:${name}`, () => this.sendInventory(tracker));
  }

  private setStatus(source: SourceName, state: 'ok' | 'error' | 'off', message: string | null): void {
    const before = this.statuses.get(source);
    if (before?.state === state && before.message === message) return;
    if (state === 'error' && before?.state !== 'error') this.options.logger.warn({ source, err: message }, 'monitoring: a source could not be read');
    this.statuses.set(source, { state, message });
    this.updateInventory(
      'sources',
      [...this.statuses].map(([k, s]) => ({ k, state: s.state, message: s.message === null ? null : s.message.slice(0, 300) })),
    );
  }

  private async startLogins(): Promise<void> {
    const { config, clock, logger } = this.options;
    const target = !config.logins.enabled ? 'off' : resolveAuthLog(config.authLog);
    if (target === 'off') return this.setStatus('logins', 'off', 'switched off in the agent config');
    if (target === 'none') return this.setStatus('logins', 'error', 'no auth log found (tried /var/log/auth.log, /var/log/secure and the systemd journal); set monitoring.authLog');
    if (target === 'journald') {
      const follower = new JournalFollower({
        command: config.logins.journalctl,
        clock,
        logger,
        onEntry: (entry, now) => {
          const t = entry.t !== undefined && entry.t <= now + 300_000 && entry.t >= now - 7 * 86_400_000 ? entry.t : now;
          this.onEvent(parseSshdMessage(entry.message, t));
        },
        onStatus: (state, message) => this.setStatus('logins', state, message),
      });
      this.follower = follower;
      follower.start();
      return;
    }
    const positionFile = join(this.options.stateDir, 'auth-log-position.json');
    const position = await readPosition(positionFile, target);
    let saved = position;
    const follower = new LogFollower({
      path: target,
      pollMs: config.logins.poll,
      clock,
      logger,
      position,
      onLine: (line, now) => this.onEvent(parseAuthLine(line, now)),
      onStatus: (state, message) => this.setStatus('logins', state, message),
      onPosition: (p) => {
        if (saved?.inode === p.inode && saved.offset === p.offset) return;
        saved = p;
        this.positionSaving = this.positionSaving.then(() => savePosition(positionFile, target, p)).catch(() => undefined);
      },
    });
    this.follower = follower;
    follower.start();
  }

  private onEvent(event: TelemetryEvent | undefined): void {
    if (!event || this.stopped) return;
    this.counters.eventsRead++;
    if (this.aggregator.add(event)) {
      void this.flush();
      return;
    }
    this.flushTimer ??= this.options.clock.setTimeout(() => void this.flush(), this.options.config.eventFlush);
  }

  /** Moves the aggregated events into the queue (one batch), then sends if the link is up. */
  private flush(): Promise<void> {
    this.options.clock.clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.aggregator.size === 0) return this.pushing;
    const events = this.aggregator.take();
    this.pushing = this.pushing
      .then(() => this.queue.push(events))
      .then(() => {
        this.counters.batchesQueued++;
        this.schedule('drain', () => this.drain());
      })
      .catch((error: unknown) => this.options.logger.error({ err: (error as Error).message }, 'monitoring: could not queue events on disk'));
    return this.pushing;
  }

  // ---- delivery ----

  online(link: Link): void {
    this.link = link;
    this.synced = false;
    this.schedule('sync', () => this.sync());
  }

  offline(): void {
    this.link = undefined;
    this.synced = false;
  }

  /** Runs `task` after the messages before it, once per name while it waits. */
  private schedule(name: string, task: () => Promise<void>): void {
    if (!this.link || this.scheduled.has(name) || (!this.synced && name !== 'sync')) return;
    this.scheduled.add(name);
    this.chain = this.chain.then(async () => {
      this.scheduled.delete(name);
      if (!this.link) return;
      try {
        await task();
      } catch (error) {
        const e = error as DrawbridgeError;
        if (e.code !== 'LINK_LOST' && e.code !== 'HUB_SHUTTING_DOWN') this.options.logger.warn({ task: name, errorCode: e.code, err: e.message }, 'monitoring: sending telemetry failed; retrying later');
      }
    });
  }

  private async request<B, R>(spec: MessageSpec<B, R>, body: B): Promise<R> {
    const link = this.link;
    if (!link) throw new DrawbridgeError('LINK_LOST', 'offline');
    this.counters.messagesSent++;
    this.counters.bytesSent += frameBytes(encodeEnvelope({ v: PROTOCOL_VERSION, type: spec.type, id: 1_000_000, body }), true);
    const result = await link.request(spec, body, REQUEST_TIMEOUT_MS);
    this.counters.bytesReceived += frameBytes(encodeEnvelope({ v: PROTOCOL_VERSION, type: 'result', re: 1_000_000, body: result }), false);
    return result;
  }

  /**
   * The checkpoint: at link-up every inventory's state, later one digest of them all; the
   * hub answers with its own states where they differ. Then whatever is pending.
   */
  private async sync(): Promise<void> {
    const inventories: Partial<Record<InventoryName, { seq: number; hash: string }>> = {};
    for (const [name, tracker] of this.trackers) {
      const checkpoint = tracker.checkpoint();
      if (checkpoint) inventories[name] = checkpoint;
    }
    const answer = await this.request(TelemetryState, {
      checkpointIntervalMs: this.options.config.checkpointInterval,
      ...(this.synced ? { digest: checkpointDigest(inventories) } : { inventories }),
      queueId: this.queue.queueId,
      queued: this.queue.length,
      dropped: this.queue.dropped,
    });
    if (answer.inventories) {
      for (const [name, tracker] of this.trackers) {
        const mine = inventories[name];
        const hub = answer.inventories[name];
        if (mine) tracker.adopt(hub, answer.resync.includes(name) || hub?.hash !== mine.hash);
      }
    }
    this.synced = true;
    for (const tracker of this.trackers.values()) await this.sendInventory(tracker);
    await this.drain();
  }

  private async sendInventory(tracker: InventoryTracker): Promise<void> {
    for (let attempt = 0; attempt < MAX_RESYNCS; attempt++) {
      const change: InventoryChangeToSend | undefined = tracker.pending();
      if (!change || !this.link) return;
      let result;
      try {
        result = await this.request(TelemetryInventory, { inventory: tracker.name, seq: change.seq, full: change.full, payload: await encodePayload(change.content) });
      } catch (error) {
        // The hub refused the content itself (a bug on one side): say so, and send it whole next time.
        if ((error as DrawbridgeError).code === 'VALIDATION_FAILED') {
          this.options.logger.error({ inventory: tracker.name, err: (error as Error).message }, 'monitoring: the hub refused an inventory');
          tracker.requireFull();
          return;
        }
        throw error;
      }
      if (result.applied) {
        tracker.confirm(change);
        continue;
      }
      tracker.requireFull();
    }
  }

  /** Sends queued batches oldest first; each is deleted once accepted. */
  private async drain(): Promise<void> {
    for (;;) {
      if (!this.link) return;
      const next = await this.queue.peek();
      if (!next) return;
      try {
        await this.request(TelemetryEvents, { queueId: this.queue.queueId, batch: next.batch, payload: await encodePayload({ events: next.events }) });
        await this.queue.remove(next.batch);
      } catch (error) {
        const code = (error as DrawbridgeError).code;
        if (code !== 'VALIDATION_FAILED' && code !== 'PAYLOAD_TOO_LARGE') throw error;
        // It can never be accepted; holding it would block every batch behind it.
        this.options.logger.error({ batch: next.batch, errorCode: code, err: (error as Error).message }, 'monitoring: the hub refused an event batch; dropped (counted)');
        await this.queue.remove(next.batch, true);
      }
    }
  }
}

/** `auto`: the first auth log file that exists, else the journal if journald runs; else none. */
export function resolveAuthLog(setting: string): string {
  if (setting === 'off' || setting === 'journald') return setting;
  if (setting !== 'auto') return setting;
  for (const candidate of ['/var/log/auth.log', '/var/log/secure']) if (existsSync(candidate)) return candidate;
  return existsSync('/run/systemd/journal/socket') ? 'journald' : 'none';
}

async function readPosition(file: string, path: string): Promise<FollowPosition | undefined> {
  try {
    const saved = JSON.parse(await readFile(file, 'utf8')) as { path?: unknown; inode?: unknown; offset?: unknown };
    if (saved.path === path && Number.isSafeInteger(saved.inode) && Number.isSafeInteger(saved.offset)) return { inode: saved.inode as number, offset: saved.offset as number };
  } catch {
    // none yet, or unreadable: follow from the end
  }
  return undefined;
}

async function savePosition(file: string, path: string, position: FollowPosition): Promise<void> {
  await writeFile(`${file}.tmp`, JSON.stringify({ path, ...position }), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}
