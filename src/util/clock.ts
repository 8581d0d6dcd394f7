/**
 * The seam where time happens. Every timer in the hub and the agent goes through a Clock,
 * so tests can drive expiry, sweeps and timeouts with a ManualClock instead of sleeping.
 */

export interface TimerHandle {
  /** Lets the process exit while this timer is pending (real clock only). */
  unref(): TimerHandle;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle | undefined): void;
}

/** Wall-clock time and Node's own timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms) as unknown as TimerHandle,
  clearTimeout: (handle) => clearTimeout(handle as unknown as NodeJS.Timeout | undefined),
  setInterval: (fn, ms) => setInterval(fn, ms) as unknown as TimerHandle,
  clearInterval: (handle) => clearInterval(handle as unknown as NodeJS.Timeout | undefined),
};

interface ManualTimer extends TimerHandle {
  due: number;
  fn: () => void;
  /** 0 for a one-shot timer */
  every: number;
  cancelled: boolean;
  order: number;
}

/**
 * Time that moves only when told to. `advance(ms)` runs every timer that falls due, in
 * order, including timers that those timers schedule, then settles pending promise jobs
 * so that async work started by a timer has run before it returns.
 */
export class ManualClock implements Clock {
  private current: number;
  private timers: ManualTimer[] = [];
  private order = 0;

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, Math.max(0, ms), 0);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, Math.max(1, ms), Math.max(1, ms));
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle) (handle as ManualTimer).cancelled = true;
  }

  clearInterval(handle: TimerHandle | undefined): void {
    this.clearTimeout(handle);
  }

  /** Timers still waiting to fire. */
  get pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    for (;;) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      const next = this.timers.filter((t) => t.due <= target).sort((a, b) => a.due - b.due || a.order - b.order)[0];
      if (!next) break;
      this.current = Math.max(this.current, next.due);
      if (next.every > 0) next.due += next.every;
      else next.cancelled = true;
      next.fn();
      await settle();
    }
    this.current = target;
    await settle();
  }

  private add(fn: () => void, delay: number, every: number): ManualTimer {
    const timer: ManualTimer = {
      due: this.current + delay,
      fn,
      every,
      cancelled: false,
      order: this.order++,
      unref: () => timer,
    };
    this.timers.push(timer);
    return timer;
  }
}

/** Lets queued promise jobs and I/O callbacks that are already due run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
