/**
 * sshd's lines from the systemd journal: runs `journalctl --follow --output=json` (the
 * command is configurable) and reads one JSON object per line. The process is restarted
 * with a growing delay when it ends; what it could not do is reported as the source's state.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Clock, TimerHandle } from '../../util/clock.js';
import type { Logger } from '../../util/logger.js';
import { MAX_LINE_BYTES } from './log-follower.js';

export interface JournalEntry {
  message: string;
  /** ms since the epoch, from __REALTIME_TIMESTAMP */
  t: number | undefined;
}

/** One line of `journalctl -o json`; MESSAGE may be a string or, for non-UTF-8 text, an array of bytes. */
export function parseJournalLine(line: string): JournalEntry | undefined {
  if (line.length > MAX_LINE_BYTES * 4) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  const raw = record['MESSAGE'];
  let message: string | undefined;
  if (typeof raw === 'string') message = raw;
  else if (Array.isArray(raw) && raw.length <= MAX_LINE_BYTES && raw.every((b) => Number.isInteger(b) && b >= 0 && b < 256)) message = Buffer.from(raw as number[]).toString('utf8');
  if (message === undefined) return undefined;
  const micros = Number(record['__REALTIME_TIMESTAMP']);
  return { message: message.slice(0, MAX_LINE_BYTES), t: Number.isFinite(micros) && micros > 0 ? Math.floor(micros / 1000) : undefined };
}

export interface JournalFollowerOptions {
  command: readonly string[];
  clock: Clock;
  logger: Logger;
  onEntry(entry: JournalEntry, now: number): void;
  onStatus(state: 'ok' | 'error', message: string | null): void;
}

const RESTART_MIN_MS = 2000;
const RESTART_MAX_MS = 60_000;

export class JournalFollower {
  private child: ChildProcess | undefined;
  private restartTimer: TimerHandle | undefined;
  private delay = RESTART_MIN_MS;
  private stopped = false;

  constructor(private readonly options: JournalFollowerOptions) {}

  start(): void {
    this.stopped = false;
    this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.options.clock.clearTimeout(this.restartTimer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
    }
  }

  private run(): void {
    const [file, ...args] = this.options.command as [string, ...string[]];
    let stderrTail = '';
    let started = false;
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr?.on('data', (chunk: Buffer) => {
      stderrTail = (stderrTail + chunk.toString('utf8')).slice(-300);
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream, crlfDelay: Infinity });
    lines.on('line', (line) => {
      if (!started) {
        started = true;
        this.delay = RESTART_MIN_MS;
      }
      const entry = parseJournalLine(line);
      if (entry) this.options.onEntry(entry, this.options.clock.now());
    });
    child.once('spawn', () => this.options.onStatus('ok', null));
    const ended = (why: string): void => {
      if (this.child !== child) return;
      this.child = undefined;
      if (this.stopped) return;
      const message = `${this.options.command.join(' ')} ${why}${stderrTail.trim() ? `: ${stderrTail.trim().split('\n').pop()}` : ''}`.slice(0, 300);
      this.options.onStatus('error', message);
      this.options.logger.warn({ err: message, retryInMs: this.delay }, 'auth log: the journal reader stopped; restarting it');
      this.restartTimer = this.options.clock.setTimeout(() => this.run(), this.delay);
      this.restartTimer.unref();
      this.delay = Math.min(this.delay * 2, RESTART_MAX_MS);
    };
    child.once('error', (error: NodeJS.ErrnoException) => ended(`could not run (${error.code ?? error.message})`));
    child.once('exit', (code, signal) => ended(`exited (${signal ?? `status ${code}`})`));
  }
}
