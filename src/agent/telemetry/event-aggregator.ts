/**
 * Merges identical events (same kind, user, source and method) seen within one flush window
 * into one with a hit count, its first and last time, and the first line as evidence: a
 * brute force of a thousand attempts a minute from one source costs one event a second.
 */
import { MAX_BATCH_EVENTS, type TelemetryEvent } from '../../protocol/messages/telemetry.js';

/** Distinct events held between flushes; at this many the owner flushes early. */
export const MAX_PENDING_EVENTS = MAX_BATCH_EVENTS;

export class EventAggregator {
  private pending = new Map<string, TelemetryEvent>();

  get size(): number {
    return this.pending.size;
  }

  /** Adds an event; returns true when the window is full and should be flushed now. */
  add(event: TelemetryEvent): boolean {
    const key = `${event.kind}\n${event.user ?? ''}\n${event.src ?? ''}\n${event.method ?? ''}`;
    const held = this.pending.get(key);
    if (held) {
      held.n += event.n;
      const last = Math.max(held.last ?? held.t, event.last ?? event.t);
      held.t = Math.min(held.t, event.t);
      if (last !== held.t) held.last = last;
    } else {
      this.pending.set(key, { ...event });
    }
    return this.pending.size >= MAX_PENDING_EVENTS;
  }

  /** Everything held, oldest first; the window starts again. */
  take(): TelemetryEvent[] {
    const events = [...this.pending.values()].sort((a, b) => a.t - b.t);
    this.pending = new Map();
    return events;
  }
}
