/**
 * Aggregated audit for what strangers can cause (failed authentication, refused stream
 * attempts): one record per (action, key) per window, with a count, instead of one record
 * per event. A key's window opens with its first event and its record is written when the
 * window ends (checked every second) or at close(), so nothing counted is lost at shutdown.
 * At most `maxKeys` keys are open at once; events for further keys fold into one overflow
 * record per action. Whatever the number of events or of source addresses, the audit growth
 * (and the write cost) an unauthenticated caller can impose is bounded: about
 * 2 x (maxKeys + 1) records per action per window.
 */
import type { AuditEntry } from '../store/store.js';
import type { Clock, TimerHandle } from '../util/clock.js';

export interface AuditAggregatorOptions {
  /** One record per key per window, which opens with the key's first event. */
  windowMs: number;
  /** Distinct keys per window; events for further keys fold into one overflow record per action. */
  maxKeys: number;
  clock: Clock;
  /** Writes one record (store.appendAudit); a failure is reported to onError and not retried. */
  write(entry: AuditEntry): Promise<unknown>;
  onError?(error: unknown): void;
}

/** What the first event of a key says; later events of the window only add to the counts. */
export interface AggregateSample {
  actor: string;
  device?: string | null;
  details?: Record<string, unknown>;
}

/** How many distinct tally values (e.g. failure reasons) one record keeps counts for. */
const MAX_TALLIES = 8;

interface Aggregate {
  action: string;
  sample: AggregateSample;
  count: number;
  firstAt: number;
  lastAt: number;
  tallies: Map<string, number>;
}

export class AuditAggregator {
  private readonly window = new Map<string, Aggregate>();
  private readonly overflow = new Map<string, Aggregate>();
  private readonly timer: TimerHandle;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: AuditAggregatorOptions) {
    this.timer = options.clock.setInterval(() => void this.flush(false), Math.min(options.windowMs, 1000));
    this.timer.unref();
  }

  /**
   * Counts one event. Returns true for the first event of its (action, key) in this window:
   * the caller may log that one and stay quiet for the rest.
   */
  record(action: string, key: string, sample: AggregateSample, tally?: string): boolean {
    const now = this.options.clock.now();
    const id = `${action}\u0000${key}`;
    let aggregate = this.window.get(id);
    const first = aggregate === undefined;
    if (!aggregate) {
      if (this.window.size >= this.options.maxKeys) {
        aggregate = this.overflow.get(action);
        if (!aggregate) {
          aggregate = { action, sample: { actor: 'anonymous', details: { otherKeys: true } }, count: 0, firstAt: now, lastAt: now, tallies: new Map() };
          this.overflow.set(action, aggregate);
        }
      } else {
        aggregate = { action, sample, count: 0, firstAt: now, lastAt: now, tallies: new Map() };
        this.window.set(id, aggregate);
      }
    }
    aggregate.count++;
    aggregate.lastAt = now;
    if (tally !== undefined && (aggregate.tallies.has(tally) || aggregate.tallies.size < MAX_TALLIES)) {
      aggregate.tallies.set(tally, (aggregate.tallies.get(tally) ?? 0) + 1);
    }
    return first && this.window.has(id);
  }

  /** Events counted and not yet written. */
  get pendingKeys(): number {
    return this.window.size + this.overflow.size;
  }

  /** Writes the records of the windows that have ended, or of every window when `all`. */
  flush(all = true): Promise<void> {
    const due = all ? 0 : this.options.clock.now() - this.options.windowMs;
    const aggregates: Aggregate[] = [];
    for (const map of [this.window, this.overflow]) {
      for (const [id, aggregate] of map) {
        if (all || aggregate.firstAt <= due) {
          aggregates.push(aggregate);
          map.delete(id);
        }
      }
    }
    if (aggregates.length === 0) return this.writing;
    // Writes are chained, so a slow store never runs two flushes side by side.
    this.writing = this.writing.then(async () => {
      for (const aggregate of aggregates) {
        try {
          await this.options.write(this.entryOf(aggregate));
        } catch (error) {
          this.options.onError?.(error);
        }
      }
    });
    return this.writing;
  }

  /** Stops the window timer and writes what was counted. */
  async close(): Promise<void> {
    if (this.closed) return this.writing;
    this.closed = true;
    this.options.clock.clearInterval(this.timer);
    await this.flush();
  }

  private entryOf(aggregate: Aggregate): AuditEntry {
    return {
      actor: aggregate.sample.actor,
      action: aggregate.action,
      device: aggregate.sample.device ?? null,
      details: {
        ...aggregate.sample.details,
        count: aggregate.count,
        firstAt: new Date(aggregate.firstAt).toISOString(),
        lastAt: new Date(aggregate.lastAt).toISOString(),
        windowSeconds: Math.round(this.options.windowMs / 1000),
        ...(aggregate.tallies.size > 0 ? { counts: Object.fromEntries(aggregate.tallies) } : {}),
      },
    };
  }
}
