/**
 * Follows a log file like `tail -F`: new lines as they are written (a change notification on
 * its directory, and a poll as the fallback), across rotation (the file's inode changes: the
 * rest of the old file is read first) and truncation (the file shrank: read again from the
 * start). Lines longer than MAX_LINE_BYTES and binary junk are skipped and counted, and
 * reported in one log line at most once a minute. Reads are bounded per round so a huge
 * burst cannot hold the event loop.
 */
import { watch, type FSWatcher } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Clock, TimerHandle } from '../../util/clock.js';
import type { Logger } from '../../util/logger.js';
import { looksBinary } from './auth-log-parser.js';

export const MAX_LINE_BYTES = 8 * 1024;
const CHUNK_BYTES = 64 * 1024;
/** Bytes read per round; the rest waits for the next round (which follows at once). */
const MAX_BYTES_PER_ROUND = 1024 * 1024;
const REPORT_EVERY_MS = 60_000;
const TAIL_BYTES = 64;

export interface FollowPosition {
  inode: number;
  offset: number;
}

export interface LogFollowerOptions {
  path: string;
  pollMs: number;
  clock: Clock;
  logger: Logger;
  /** Where to resume (saved by an earlier run); without it, the file is followed from its end. */
  position?: FollowPosition | undefined;
  onLine(line: string, now: number): void;
  onStatus(state: 'ok' | 'error', message: string | null): void;
  onPosition?(position: FollowPosition): void;
}

export interface FollowerStats {
  lines: number;
  longLines: number;
  binaryLines: number;
  rotations: number;
  truncations: number;
}

export class LogFollower {
  readonly stats: FollowerStats = { lines: 0, longLines: 0, binaryLines: 0, rotations: 0, truncations: 0 };
  private handle: FileHandle | undefined;
  private inode = -1;
  private offset = 0;
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private skippingLong = false;
  /** The last bytes read (ending at the read position), to notice a file rewritten in place. */
  private tail: Buffer = Buffer.alloc(0);
  private timer: TimerHandle | undefined;
  private watcher: FSWatcher | undefined;
  private reading: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private lastError: string | null = null;
  private reported: FollowerStats = { ...this.stats };
  private lastReport = 0;

  constructor(private readonly options: LogFollowerOptions) {}

  start(): void {
    this.stopped = false;
    this.timer = this.options.clock.setInterval(() => void this.poll(), this.options.pollMs);
    this.timer.unref();
    try {
      const name = basename(this.options.path);
      this.watcher = watch(dirname(this.options.path), { persistent: false }, (_event, file) => {
        if (!file || file.toString() === name) void this.poll();
      });
      this.watcher.on('error', () => undefined);
    } catch {
      // No notifications (directory missing, no inotify): the poll still follows the file.
    }
    void this.poll();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.options.clock.clearInterval(this.timer);
    this.watcher?.close();
    await this.reading;
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }

  /** Reads whatever is new; concurrent calls coalesce into one more round. */
  poll(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = (async () => {
      do {
        this.again = false;
        await this.round().catch((error: unknown) => this.fail(`reading ${this.options.path} failed: ${(error as Error).message}`));
      } while (this.again && !this.stopped);
      this.report();
    })().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private fail(message: string): void {
    if (this.lastError !== message) {
      this.lastError = message;
      this.options.logger.warn({ path: this.options.path, err: message }, 'auth log: cannot read it; retrying');
    }
    this.options.onStatus('error', message);
  }

  private async round(): Promise<void> {
    if (this.stopped) return;
    let info;
    try {
      info = await stat(this.options.path);
    } catch (error) {
      // Rotated away and not recreated yet: finish the old file, then wait for the new one.
      if (this.handle) await this.drainAndClose();
      // When it appears, it is new: read it from its start.
      if (this.inode === -1) this.inode = -2;
      this.fail(`cannot read ${this.options.path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      return;
    }
    if (!this.handle || info.ino !== this.inode) {
      const first = !this.handle && this.inode === -1;
      if (this.handle) {
        await this.drainAndClose();
        this.stats.rotations++;
      }
      try {
        this.handle = await open(this.options.path, 'r');
      } catch (error) {
        this.fail(`cannot open ${this.options.path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
        return;
      }
      const saved = this.options.position;
      this.inode = info.ino;
      // At the first start, history is skipped (it was there before the collector); a saved
      // position resumes where the last run stopped; a rotated-in file is read from its start.
      this.offset = first ? (saved && saved.inode === info.ino && saved.offset <= info.size ? saved.offset : info.size) : 0;
      this.tail = Buffer.alloc(0);
      this.resetPartial();
    } else if (info.size < this.offset || !(await this.tailUnchanged())) {
      // Shrunk, or rewritten under us (copy-and-truncate, then more written than we had read).
      this.stats.truncations++;
      this.offset = 0;
      this.resetPartial();
    }
    if (this.lastError !== null) {
      this.lastError = null;
      this.options.logger.info({ path: this.options.path }, 'auth log: reading it');
    }
    this.options.onStatus('ok', null);
    await this.readTo(info.size);
    this.options.onPosition?.({ inode: this.inode, offset: this.offset });
  }

  /** Whether the bytes just before the read position are still the ones read there. */
  private async tailUnchanged(): Promise<boolean> {
    if (!this.handle || this.tail.length === 0) return true;
    const now = Buffer.alloc(this.tail.length);
    const { bytesRead } = await this.handle.read(now, 0, now.length, this.offset - this.tail.length);
    return bytesRead === this.tail.length && now.equals(this.tail);
  }

  private async readTo(size: number): Promise<void> {
    const handle = this.handle;
    if (!handle) return;
    const until = Math.min(size, this.offset + MAX_BYTES_PER_ROUND);
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    while (this.offset < until && !this.stopped) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(CHUNK_BYTES, until - this.offset), this.offset);
      if (bytesRead === 0) break;
      this.offset += bytesRead;
      const read = buffer.subarray(0, bytesRead);
      this.tail = Buffer.concat([this.tail, read]).subarray(-TAIL_BYTES);
      this.feed(read);
    }
    if (this.offset < size) this.again = true;
  }

  /** Reads the rest of a file that was rotated away, then lets it go. */
  private async drainAndClose(): Promise<void> {
    const handle = this.handle;
    if (!handle) return;
    try {
      const { size } = await handle.stat();
      for (let guard = 0; this.offset < size && guard < 64; guard++) await this.readTo(size);
      this.flushPartial();
    } finally {
      this.handle = undefined;
      await handle.close().catch(() => undefined);
    }
  }

  private feed(chunk: Buffer): void {
    let start = 0;
    for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, start)) {
      this.append(chunk.subarray(start, i));
      this.emitPartial();
      start = i + 1;
    }
    if (start < chunk.length) this.append(chunk.subarray(start));
  }

  private append(piece: Buffer): void {
    if (this.skippingLong) return;
    if (this.partialBytes + piece.length > MAX_LINE_BYTES) {
      this.skippingLong = true;
      this.partial = [];
      this.partialBytes = 0;
      return;
    }
    // Copied: the read buffer is reused for the next chunk.
    this.partial.push(Buffer.from(piece));
    this.partialBytes += piece.length;
  }

  private emitPartial(): void {
    if (this.skippingLong) {
      this.stats.longLines++;
      this.resetPartial();
      return;
    }
    const line = Buffer.concat(this.partial, this.partialBytes).toString('utf8').replace(/\r$/, '');
    this.resetPartial();
    this.stats.lines++;
    if (looksBinary(line)) {
      this.stats.binaryLines++;
      return;
    }
    this.options.onLine(line, this.options.clock.now());
  }

  /** A last line without its newline, at the end of a rotated file. */
  private flushPartial(): void {
    if (this.partialBytes > 0 || this.skippingLong) this.emitPartial();
  }

  private resetPartial(): void {
    if (this.offset === 0) this.tail = Buffer.alloc(0);
    this.partial = [];
    this.partialBytes = 0;
    this.skippingLong = false;
  }

  /** One line about skipped input and rotations, at most once a minute. */
  private report(): void {
    const now = this.options.clock.now();
    const s = this.stats;
    const r = this.reported;
    const changed = s.longLines !== r.longLines || s.binaryLines !== r.binaryLines || s.rotations !== r.rotations || s.truncations !== r.truncations;
    if (!changed || now - this.lastReport < REPORT_EVERY_MS) return;
    this.options.logger.warn(
      {
        path: this.options.path,
        skippedLongLines: s.longLines - r.longLines,
        skippedBinaryLines: s.binaryLines - r.binaryLines,
        rotations: s.rotations - r.rotations,
        truncations: s.truncations - r.truncations,
      },
      `auth log: skipped ${s.longLines - r.longLines + s.binaryLines - r.binaryLines} unreadable lines (over ${MAX_LINE_BYTES} bytes or binary); followed ${s.rotations - r.rotations} rotations and ${s.truncations - r.truncations} truncations`,
    );
    this.reported = { ...s };
    this.lastReport = now;
  }
}
