/**
 * The edge's event queue: batches of aggregated events on disk, sent oldest first and deleted
 * once the hub has accepted them, so nothing is lost while the hub is unreachable or the agent
 * restarts. Bounded in bytes: when full, the oldest batches are dropped first and the events
 * they held are counted (and reported to the hub in every checkpoint).
 *
 * Files: QUEUE_DIR/state.json ({queueId, nextBatch, dropped}) and one file per batch named by
 * its number and event count (so dropping one needs no read).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { TelemetryEventSchema, type TelemetryEvent } from '../../protocol/messages/telemetry.js';
import type { Logger } from '../../util/logger.js';

const StateSchema = z.strictObject({ queueId: z.string().regex(/^[0-9a-f]{16}$/), nextBatch: z.number().int().min(1), dropped: z.number().int().min(0) });
const BatchSchema = z.strictObject({ batch: z.number().int().min(1), events: z.array(TelemetryEventSchema) });
const FILE = /^(\d{16})-(\d+)\.json$/;

interface QueuedFile {
  batch: number;
  events: number;
  bytes: number;
  name: string;
}

export class EventQueue {
  private state = { queueId: randomBytes(8).toString('hex'), nextBatch: 1, dropped: 0 };
  private files: QueuedFile[] = [];
  private bytes = 0;

  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly logger: Logger,
  ) {}

  get queueId(): string {
    return this.state.queueId;
  }

  /** Events dropped (queue full, or a batch the hub refused as invalid) since the queue was made. */
  get dropped(): number {
    return this.state.dropped;
  }

  get length(): number {
    return this.files.length;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  /** Loads the queue left by an earlier run (a damaged state file starts a new queue, said once). */
  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    try {
      this.state = StateSchema.parse(JSON.parse(await readFile(join(this.dir, 'state.json'), 'utf8')));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warn({ dir: this.dir, err: (error as Error).message }, 'monitoring: the event queue state was unreadable; starting a new queue');
      await this.saveState();
    }
    for (const name of (await readdir(this.dir)).sort()) {
      const match = FILE.exec(name);
      if (!match) continue;
      const bytes = (await stat(join(this.dir, name)).catch(() => undefined))?.size ?? 0;
      this.files.push({ batch: Number(match[1]), events: Number(match[2]), bytes, name });
      this.bytes += bytes;
    }
    const highest = this.files[this.files.length - 1]?.batch ?? 0;
    if (highest >= this.state.nextBatch) this.state.nextBatch = highest + 1;
  }

  /** Stores a batch; drops the oldest while over the byte bound. */
  async push(events: TelemetryEvent[]): Promise<void> {
    const batch = this.state.nextBatch++;
    const hits = events.reduce((sum, e) => sum + e.n, 0);
    const name = `${String(batch).padStart(16, '0')}-${hits}.json`;
    const content = JSON.stringify({ batch, events });
    const temporary = join(this.dir, `.${name}.tmp`);
    await writeFile(temporary, content, { mode: 0o600 });
    await rename(temporary, join(this.dir, name));
    this.files.push({ batch, events: hits, bytes: Buffer.byteLength(content), name });
    this.bytes += Buffer.byteLength(content);
    let droppedNow = 0;
    while (this.bytes > this.maxBytes && this.files.length > 1) {
      const oldest = this.files.shift() as QueuedFile;
      this.bytes -= oldest.bytes;
      droppedNow += oldest.events;
      await unlink(join(this.dir, oldest.name)).catch(() => undefined);
    }
    if (droppedNow > 0) {
      this.state.dropped += droppedNow;
      this.logger.warn({ dropped: droppedNow, droppedTotal: this.state.dropped, maxBytes: this.maxBytes }, 'monitoring: the event queue is full; the oldest events were dropped');
    }
    await this.saveState();
  }

  /** The oldest batch, or undefined when empty. An unreadable file is dropped (counted) and the next one read. */
  async peek(): Promise<{ batch: number; events: TelemetryEvent[] } | undefined> {
    while (this.files.length > 0) {
      const file = this.files[0] as QueuedFile;
      try {
        return BatchSchema.parse(JSON.parse(await readFile(join(this.dir, file.name), 'utf8')));
      } catch (error) {
        this.logger.warn({ file: file.name, err: (error as Error).message }, 'monitoring: an unreadable queued batch was dropped');
        await this.remove(file.batch, true);
      }
    }
    return undefined;
  }

  /** Removes a batch the hub accepted (or refused for good: `drop` counts its events as dropped). */
  async remove(batch: number, drop = false): Promise<void> {
    const index = this.files.findIndex((f) => f.batch === batch);
    if (index === -1) return;
    const [file] = this.files.splice(index, 1) as [QueuedFile];
    this.bytes -= file.bytes;
    await unlink(join(this.dir, file.name)).catch(() => undefined);
    if (drop) {
      this.state.dropped += file.events;
      await this.saveState();
    }
  }

  private async saveState(): Promise<void> {
    const temporary = join(this.dir, '.state.json.tmp');
    await writeFile(temporary, JSON.stringify(this.state), { mode: 0o600 });
    await rename(temporary, join(this.dir, 'state.json'));
  }
}
