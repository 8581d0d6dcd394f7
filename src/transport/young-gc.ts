/**
 * Paces young-generation collections to the bytes a process reads, so that buffers it is
 * done with are freed before V8 counts them as external-memory pressure.
 *
 * Every chunk read from a socket is a fresh ArrayBuffer outside V8's heap. Dead ones are
 * freed by the next scavenge, but a relay allocates little on the JS heap per byte it moves,
 * so with the default 16-32 MiB semi-space a scavenge comes only after hundreds of MiB of
 * reads. Meanwhile the dead buffers' bytes count as external memory, and past a limit V8
 * answers with full mark-compact collections: about 30 per 512 MiB in each of hub, agent and
 * client, measured with --trace-gc. A minor collection every few MiB read costs a fraction of
 * a millisecond (the young generation of a relay holds little that is live) and keeps the
 * external count low: the same effect as starting node with --max-semi-space-size=2, which
 * a program cannot set for itself once running.
 *
 * The collector is reached through V8's documented --expose-gc flag, set at run time and
 * taken from a fresh context, so no global `gc` appears. Where that fails, pacing is off.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type CollectGarbage = (options: { type: 'minor' | 'major' }) => void;

/** Bytes read between minor collections. */
export const YOUNG_GC_EVERY_BYTES = 4 * 1024 * 1024;

let collect: CollectGarbage | null | undefined;

function collector(): CollectGarbage | null {
  if (collect !== undefined) return collect;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    collect = typeof gc === 'function' ? (gc as CollectGarbage) : null;
  } catch {
    collect = null;
  }
  return collect;
}

/** Counts bytes read and runs a minor collection each `everyBytes`. */
export class YoungGcPacer {
  private pending = 0;
  collections = 0;

  /** `gc` for tests; by default V8's own, looked up at the first collection. */
  constructor(
    private readonly everyBytes = YOUNG_GC_EVERY_BYTES,
    private gc?: CollectGarbage | null,
  ) {}

  /** Notes `bytes` read; collects when enough has been read since the last collection. */
  read(bytes: number): void {
    this.pending += bytes;
    if (this.pending < this.everyBytes) return;
    this.pending = 0;
    if (this.gc === undefined) this.gc = collector();
    if (!this.gc) return;
    this.collections++;
    this.gc({ type: 'minor' });
  }
}

/** One pacer per process: what counts is the bytes the whole process reads. */
export const youngGc = new YoungGcPacer();
