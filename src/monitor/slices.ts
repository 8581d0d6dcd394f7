/**
 * Runs store work a bounded slice at a time. The embedded store is synchronous underneath,
 * and promise continuations do not yield to I/O: ten thousand edges reporting at once would
 * chain ten thousand transactions into one uninterrupted stretch of the event loop, and every
 * stream on the hub would stall behind it. Here each call starts in a macrotask slice of at
 * most `sliceMs` (and `maxPerSlice` calls); the event loop serves I/O between slices.
 *
 * A slice's calls may share one store transaction (`group`): one commit instead of one per
 * message. Their outcomes are delivered only after that commit, and if it fails every call of
 * the slice fails with it (the edges send again), so nothing is acknowledged that did not land.
 */
interface Task {
  run: () => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export interface SliceOptions {
  sliceMs?: number;
  maxPerSlice?: number;
  /** Runs one slice's calls inside one transaction; throws if it could not commit. */
  group?: (runAll: () => void) => void;
}

export class SliceScheduler {
  private queue: Task[] = [];
  private head = 0;
  private scheduled = false;
  private readonly sliceMs: number;
  private readonly maxPerSlice: number;

  constructor(private readonly options: SliceOptions = {}) {
    this.sliceMs = options.sliceMs ?? 5;
    this.maxPerSlice = options.maxPerSlice ?? 8;
  }

  /** Calls `fn` in a later slice (its synchronous part runs there); settles as its promise does. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run: fn, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  get waiting(): number {
    return this.queue.length - this.head;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.pump());
  }

  private pump(): void {
    this.scheduled = false;
    const started = performance.now();
    const ran: { task: Task; outcome: Promise<unknown> }[] = [];
    const runAll = (): void => {
      for (let n = 0; this.head < this.queue.length && n < this.maxPerSlice && performance.now() - started < this.sliceMs; n++) {
        const task = this.queue[this.head++] as Task;
        let outcome: Promise<unknown>;
        try {
          outcome = task.run();
        } catch (error) {
          outcome = Promise.reject(error);
        }
        // Observed at once, so a failure is never reported as unhandled while the slice commits.
        outcome.catch(() => undefined);
        ran.push({ task, outcome });
      }
    };
    let failure: unknown;
    try {
      if (this.options.group) this.options.group(runAll);
      else runAll();
    } catch (error) {
      failure = error;
    }
    for (const { task, outcome } of ran) {
      if (failure !== undefined) task.reject(failure);
      else outcome.then(task.resolve, task.reject);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (this.head < this.queue.length) this.schedule();
  }
}
