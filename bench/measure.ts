/**
 * The load generator: throughput, round-trip latency, stream setup time and new streams
 * per second against a TCP port that leads (directly or through a relay) to the target
 * server in bench/target-server.ts. Every operation has a deadline, so a stuck relay fails
 * the run instead of hanging it.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { cpuSecondsBetween, treeCpuSeconds } from './processes.js';
import type { RelayProcess } from './sshd.js';

const HOST = '127.0.0.1';
const OP_TIMEOUT_MS = 15_000;
const WRITE_CHUNK_BYTES = 1024 * 1024;
const PING = Buffer.from('p');

export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
}

export function percentiles(samples: number[]): Percentiles {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
  const mean = sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1);
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), min: sorted[0] ?? NaN, max: sorted[sorted.length - 1] ?? NaN, mean };
}

function deadline<T>(promise: Promise<T>, what: string, ms = OP_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Reads a socket as a byte counter: wait until `n` more bytes have arrived. */
class Reader {
  private received = 0;
  private waiting: { until: number; resolve: () => void } | undefined;
  private failure: Error | undefined;
  private rejecter: ((e: Error) => void) | undefined;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length;
      if (this.waiting && this.received >= this.waiting.until) {
        const { resolve } = this.waiting;
        this.waiting = undefined;
        this.rejecter = undefined;
        resolve();
      }
    });
    const fail = (error: Error): void => {
      this.failure ??= error;
      this.rejecter?.(this.failure);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed by the peer')));
  }

  bytes(n: number): Promise<void> {
    const until = this.received + n;
    if (this.received >= until) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting = { until, resolve };
      this.rejecter = reject;
    });
  }
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port, noDelay: true });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Ends our side and waits for the full close (the peer's FIN travels back through the relay). */
function closeGracefully(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    socket.once('close', () => resolve());
    socket.end();
    setTimeout(() => socket.destroy(), 5000).unref();
  });
}

/**
 * CPU seconds (user + system) that each relay process (with its children) uses from now
 * until `read()`, from /proc: unlike wall time, this hardly depends on other load.
 */
export function cpuMeter(relays: RelayProcess[]): { read(): Record<string, number> } {
  const before = relays.map((r) => treeCpuSeconds([r.pid]));
  return {
    read: () => {
      const used: Record<string, number> = {};
      relays.forEach((relay, i) => {
        used[relay.name] = cpuSecondsBetween(before[i] as Map<number, number>, treeCpuSeconds([relay.pid]));
      });
      return used;
    },
  };
}

const sum = (values: Record<string, number>): number => Object.values(values).reduce((a, b) => a + b, 0);

export interface ThroughputResult {
  bytes: number;
  seconds: number;
  megabytesPerSecond: number;
  /** CPU seconds per GiB moved, for each relay process (with its children); empty for direct TCP */
  cpuSecondsPerGiB: Record<string, number>;
  /** the sum over the relay processes */
  cpuSecondsPerGiBTotal: number;
}

function waitDrain(socket: Socket): Promise<void> {
  return deadline(
    new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      socket.once('drain', () => {
        socket.off('error', onError);
        resolve();
      });
      socket.once('error', onError);
    }),
    'write drain',
  );
}

function request(mode: 'S' | 'G', bytes: number): Buffer {
  const header = Buffer.alloc(9);
  header[0] = mode.charCodeAt(0);
  header.writeBigUInt64BE(BigInt(bytes), 1);
  return header;
}

/** Pushes `bytes` one way into the sink and waits for its one-byte acknowledgement. */
export async function measureThroughput(port: number, bytes: number, relays: RelayProcess[] = []): Promise<ThroughputResult> {
  const payload = randomBytes(WRITE_CHUNK_BYTES);
  const socket = await deadline(open(port), 'connect');
  const reader = new Reader(socket);
  try {
    const cpu = cpuMeter(relays);
    const started = performance.now();
    socket.write(request('S', bytes));
    const acknowledged = reader.bytes(1);
    acknowledged.catch(() => undefined);
    let sent = 0;
    while (sent < bytes) {
      const n = Math.min(WRITE_CHUNK_BYTES, bytes - sent);
      const more = socket.write(n === WRITE_CHUNK_BYTES ? payload : payload.subarray(0, n));
      sent += n;
      if (!more) await waitDrain(socket);
    }
    await deadline(acknowledged, 'sink acknowledgement');
    const seconds = (performance.now() - started) / 1000;
    const gib = bytes / 2 ** 30;
    const cpuSecondsPerGiB = Object.fromEntries(Object.entries(cpu.read()).map(([name, used]) => [name, used / gib]));
    return { bytes, seconds, megabytesPerSecond: bytes / seconds / 1e6, cpuSecondsPerGiB, cpuSecondsPerGiBTotal: sum(cpuSecondsPerGiB) };
  } finally {
    await closeGracefully(socket);
  }
}

/** Pulls `bytes` from the target's source mode; MB/s from the request to the last byte. */
export async function measureDownload(port: number, bytes: number): Promise<number> {
  const socket = await deadline(open(port), 'connect');
  const reader = new Reader(socket);
  try {
    const started = performance.now();
    socket.write(request('G', bytes));
    // A download may take long on a slow path: the deadline grows with its size.
    await deadline(reader.bytes(bytes), 'download', OP_TIMEOUT_MS + bytes / 1e5);
    return bytes / ((performance.now() - started) / 1000) / 1e6;
  } finally {
    await closeGracefully(socket);
  }
}

/**
 * A stream whose reader stops reading: it asks the target for endless data, then never
 * reads another byte. Returns a function that resets it.
 */
export async function openFrozenReader(port: number): Promise<() => void> {
  const socket = await deadline(open(port), 'connect');
  socket.on('error', () => undefined);
  socket.pause();
  socket.write(request('G', 2 ** 50));
  return () => socket.resetAndDestroy();
}

/** 1-byte ping-pong on one connection; samples in microseconds. */
export async function measureLatency(port: number, roundTrips: number, warmup: number): Promise<Percentiles> {
  const socket = await deadline(open(port), 'connect');
  const reader = new Reader(socket);
  const samples: number[] = [];
  try {
    for (let i = 0; i < warmup + roundTrips; i++) {
      const started = performance.now();
      socket.write(PING);
      await deadline(reader.bytes(1), 'echo');
      if (i >= warmup) samples.push((performance.now() - started) * 1000);
    }
  } finally {
    await closeGracefully(socket);
  }
  return percentiles(samples);
}

/** One new connection: connect, send one byte, wait for its echo. Returns ms to the echo. */
async function oneStream(port: number): Promise<number> {
  const started = performance.now();
  const socket = await deadline(open(port), 'connect');
  try {
    const reader = new Reader(socket);
    socket.write(PING);
    await deadline(reader.bytes(1), 'first echoed byte');
    return performance.now() - started;
  } finally {
    await closeGracefully(socket);
  }
}

/** Sequential new connections: connect -> first echoed byte, in milliseconds. */
export async function measureSetup(port: number, count: number, warmup: number): Promise<Percentiles> {
  const samples: number[] = [];
  for (let i = 0; i < warmup + count; i++) {
    const ms = await oneStream(port);
    if (i >= warmup) samples.push(ms);
  }
  return percentiles(samples);
}

export interface RateResult {
  concurrency: number;
  seconds: number;
  completed: number;
  failed: number;
  streamsPerSecond: number;
  /** setup time (ms) of the streams measured under this load */
  setupUnderLoad: Percentiles;
  /** CPU milliseconds per completed stream, for each relay process */
  cpuMsPerStream: Record<string, number>;
  cpuMsPerStreamTotal: number;
  firstError?: string;
}

/** `concurrency` workers open, use and close streams back to back for `seconds`. */
export async function measureStreamRate(port: number, concurrency: number, seconds: number, relays: RelayProcess[] = []): Promise<RateResult> {
  const samples: number[] = [];
  const cpu = cpuMeter(relays);
  let failed = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const end = started + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      try {
        samples.push(await oneStream(port));
      } catch (error) {
        failed++;
        firstError ??= (error as Error).message;
        // A failing relay must not turn this into a busy loop.
        await new Promise((r) => setTimeout(r, 20));
        if (failed > 1000) return;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  const elapsed = (performance.now() - started) / 1000;
  const cpuMsPerStream = Object.fromEntries(Object.entries(cpu.read()).map(([name, used]) => [name, (used * 1000) / Math.max(1, samples.length)]));
  return {
    concurrency,
    seconds: elapsed,
    completed: samples.length,
    failed,
    streamsPerSecond: samples.length / elapsed,
    setupUnderLoad: percentiles(samples),
    cpuMsPerStream,
    cpuMsPerStreamTotal: sum(cpuMsPerStream),
    ...(firstError ? { firstError } : {}),
  };
}

export interface IsolationResult {
  /** ping-pong round trips (microseconds) on one stream while another stream moves bulk data */
  latencyMicros: Percentiles;
  /** the bulk stream's speed meanwhile */
  bulkMegabytesPerSecond: number;
}

/**
 * Head-of-line delay: a bulk download runs through `bulkPort` (on a worker thread) while
 * 1-byte ping-pongs are timed through `pingPort`.
 */
export async function measureIsolation(bulkPort: number, pingPort: number, roundTrips: number, warmup: number): Promise<IsolationResult> {
  const worker = new Worker(new URL('./bulk-worker.js', import.meta.url), { workerData: { port: bulkPort } });
  const messages: { type: string; message?: string; bytes?: number; seconds?: number }[] = [];
  let notify: (() => void) | undefined;
  worker.on('message', (m: (typeof messages)[number]) => {
    messages.push(m);
    notify?.();
  });
  worker.on('error', (error) => {
    messages.push({ type: 'error', message: error.message });
    notify?.();
  });
  const next = (type: string, what: string): Promise<(typeof messages)[number]> =>
    deadline(
      new Promise((resolve, reject) => {
        const check = (): void => {
          const failure = messages.find((m) => m.type === 'error');
          if (failure) return reject(new Error(`bulk stream: ${failure.message}`));
          const found = messages.find((m) => m.type === type);
          if (found) resolve(found);
        };
        notify = check;
        check();
      }),
      what,
    );
  try {
    await next('flowing', 'bulk stream flowing');
    const latencyMicros = await measureLatency(pingPort, roundTrips, warmup);
    worker.postMessage('stop');
    const done = await next('done', 'bulk stream stopped');
    return { latencyMicros, bulkMegabytesPerSecond: (done.bytes ?? 0) / (done.seconds || 1) / 1e6 };
  } finally {
    await worker.terminate();
  }
}

/** Seconds of new-stream load in a warm-up (see warmUp). */
export const WARMUP_RATE_SECONDS = 6;

/**
 * Brings a path to its steady state before anything on it is measured: round trips, a few
 * set-ups, `rateSeconds` of new streams at `concurrency`, and a push of `bytes`. Long enough
 * for V8 to have optimised the per-stream and per-frame code: a cold Drawbridge path needs
 * 2-3x the CPU per stream of a warm one for its first few thousand streams (measured: 3.5 ms
 * of relay CPU a stream in the first 2 s of load, 1.05 ms from the sixth second), while a hub
 * or agent in service runs warm. OpenSSH has no warm-up, so this changes only the Drawbridge
 * figures, toward what a running hub does.
 */
export async function warmUp(port: number, options: { concurrency: number; rateSeconds: number; bytes: number }): Promise<void> {
  await measureLatency(port, 2000, 0);
  await measureSetup(port, 20, 0);
  await measureStreamRate(port, options.concurrency, options.rateSeconds);
  await measureThroughput(port, options.bytes);
}
