/**
 * Records each event-loop stall over a threshold with when it ended, how much of it was
 * garbage collection, and how the main thread spent it: on a CPU, or runnable but waiting for
 * one. On a shared 2-core machine with the load generator beside the hub, a stall of the loop
 * is often the OS giving both cores to other threads; a stall the hub causes is its main
 * thread running. A 2 ms interval timer notes how late it fires and reads the thread's
 * scheduler statistics (/proc/thread-self/schedstat: ns on CPU, ns waiting on a run queue);
 * a PerformanceObserver collects GC pauses, matched to the stalls they fall in.
 */
import { readFileSync } from 'node:fs';
import { PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';

export interface Stall {
  /** when the stall ended, performance.now() milliseconds */
  endedAt: number;
  /** the same moment on the monotonic clock in microseconds (the time base of a V8 CPU profile) */
  endedAtMonotonicUs: number;
  ms: number;
  /** GC pause time inside the stall */
  gcMs: number;
  /** the GC kinds seen inside it (scavenge, mark-compact, ...) */
  gcKinds: string[];
  /** the main thread's time on a CPU during the stall (undefined where the kernel does not say) */
  cpuMs: number | undefined;
  /** the main thread's time runnable but waiting for a CPU (other threads and processes had them) */
  runQueueMs: number | undefined;
}

/** ns on CPU and ns waiting on a run queue, for the calling thread; undefined if unreadable. */
function schedstat(): [number, number] | undefined {
  try {
    const [run, wait] = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
    return run === undefined || wait === undefined || Number.isNaN(run) || Number.isNaN(wait) ? undefined : [run, wait];
  } catch {
    return undefined;
  }
}

const GC_KINDS: Record<number, string> = { 1: 'scavenge', 2: 'minor-mark-sweep', 4: 'mark-compact', 8: 'incremental', 16: 'weak-callbacks' };
const INTERVAL_MS = 2;

export class StallRecorder {
  private timer: NodeJS.Timeout | undefined;
  private last = 0;
  private readonly gcs: PerformanceEntry[] = [];
  private readonly stalls: Stall[] = [];
  private readonly observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) this.gcs.push(entry);
  });

  constructor(private readonly thresholdMs = 50) {}

  start(): void {
    this.stalls.length = 0;
    this.gcs.length = 0;
    this.observer.observe({ entryTypes: ['gc'] });
    this.last = performance.now();
    let sched = schedstat();
    this.timer = setInterval(() => {
      const now = performance.now();
      const late = now - this.last - INTERVAL_MS;
      this.last = now;
      const next = schedstat();
      if (late > this.thresholdMs) {
        const cpuMs = sched && next ? (next[0] - sched[0]) / 1e6 : undefined;
        const runQueueMs = sched && next ? (next[1] - sched[1]) / 1e6 : undefined;
        this.stalls.push({ endedAt: now, endedAtMonotonicUs: Number(process.hrtime.bigint() / 1000n), ms: late, gcMs: 0, gcKinds: [], cpuMs, runQueueMs });
      }
      sched = next;
    }, INTERVAL_MS);
  }

  /** Stops recording; returns the stalls over the threshold, worst first, each with its GC share. */
  stop(): Stall[] {
    clearInterval(this.timer);
    this.observer.disconnect();
    for (const stall of this.stalls) {
      const from = stall.endedAt - stall.ms - INTERVAL_MS;
      for (const gc of this.gcs) {
        const overlap = Math.min(stall.endedAt, gc.startTime + gc.duration) - Math.max(from, gc.startTime);
        if (overlap <= 0) continue;
        stall.gcMs += overlap;
        const kind = GC_KINDS[(gc as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? 0] ?? 'gc';
        if (!stall.gcKinds.includes(kind)) stall.gcKinds.push(kind);
      }
    }
    return [...this.stalls].sort((a, b) => b.ms - a.ms);
  }
}

/** The longest time the main thread ran within one stall (what the hub itself held the loop for). */
export function worstRunning(stalls: readonly Stall[]): number | undefined {
  if (stalls.some((s) => s.cpuMs === undefined)) return undefined;
  return stalls.reduce((max, s) => Math.max(max, s.cpuMs as number), 0);
}

/** One line about the stalls over the threshold: how many, the worst, and what filled them. */
export function describeStalls(stalls: readonly Stall[], thresholdMs = 50): string {
  if (stalls.length === 0) return `no stall over ${thresholdMs} ms`;
  const total = stalls.reduce((sum, s) => sum + s.ms, 0);
  const gc = stalls.reduce((sum, s) => sum + s.gcMs, 0);
  const worst = stalls[0] as Stall;
  const split = (s: Stall): string => (s.cpuMs === undefined ? '' : `, main thread running ${s.cpuMs.toFixed(0)} ms and waiting for a CPU ${(s.runQueueMs as number).toFixed(0)} ms`);
  const running = worstRunning(stalls);
  return (
    `${stalls.length} stalls over ${thresholdMs} ms (worst ${worst.ms.toFixed(0)} ms: ${worst.gcMs.toFixed(0)} ms of it GC${worst.gcKinds.length ? ` (${worst.gcKinds.join('+')})` : ''}${split(worst)}); ` +
    `GC filled ${((100 * gc) / total).toFixed(0)}% of all stall time` +
    (running === undefined ? '' : `; the longest the main thread ran within one stall: ${running.toFixed(0)} ms`)
  );
}
