/**
 * The hub's anchors for its audit chain outside the database: signed checkpoints (on
 * demand, and periodically when the head moved, sent by webhook) and its own record of the
 * last head it wrote (DATA_DIR/audit-head.json), checked at start so that a database that
 * fell behind is reported loudly.
 */
import { appendFileSync, chmodSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Store } from '../store/store.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { AuditSigner, HeadFile, type Checkpoint } from './checkpoints.js';

/** How many issued checkpoints the list API returns at most. */
const LIST_LIMIT = 200;

export interface HeadStatus {
  /** false when the database lacks the head the hub last recorded */
  ok: boolean;
  recorded?: { seq: number; hash: string; at: string };
  message: string;
}

export class AuditAnchor {
  private readonly signer: AuditSigner;
  private readonly head: HeadFile;
  private readonly logFile: string;
  private headStatus: HeadStatus = { ok: true, message: 'not checked yet' };
  private lastWritten = { seq: -1, hash: '' };
  private lastCheckpointSeq = -1;
  private timer: TimerHandle | undefined;
  private sinceCheckpointMs = 0;

  constructor(
    dataDir: string,
    private readonly store: Store,
    private readonly hubId: string,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly onCheckpoint: (checkpoint: Checkpoint) => void,
  ) {
    this.signer = AuditSigner.load(dataDir);
    this.head = new HeadFile(dataDir);
    this.logFile = join(dataDir, 'audit-checkpoints.jsonl');
  }

  get keyId(): string {
    return this.signer.keyId;
  }

  get status(): HeadStatus {
    return this.headStatus;
  }

  /** Compares the recorded head with the database; logs an error when it fell behind. */
  async checkHead(): Promise<HeadStatus> {
    const recorded = this.head.read();
    if (!recorded) {
      this.headStatus = { ok: true, message: 'no head recorded yet (first start)' };
      return this.headStatus;
    }
    const [record] = await this.store.scanAudit(recorded.seq - 1, 1);
    const [newest] = await this.store.queryAudit({ order: 'desc', limit: 1 });
    if (!record || record.seq !== recorded.seq) {
      this.headStatus = {
        ok: false,
        recorded,
        message: `the audit log ends at record ${newest?.seq ?? 0}, but this hub wrote record ${recorded.seq} (at ${recorded.at}): records were removed from the database`,
      };
    } else if (record.hash !== recorded.hash) {
      this.headStatus = { ok: false, recorded, message: `audit record ${recorded.seq} is not the one this hub wrote (its hash changed): the chain was rewritten` };
    } else {
      this.headStatus = { ok: true, recorded, message: `the database holds the head this hub last recorded (record ${recorded.seq})` };
    }
    if (!this.headStatus.ok) this.logger.error({ recordedHead: recorded, newestSeq: newest?.seq ?? 0 }, `AUDIT LOG TAMPERED OR ROLLED BACK: ${this.headStatus.message}`);
    return this.headStatus;
  }

  /**
   * Starts the upkeep: every `headEveryMs` the head file follows the newest record; every
   * `checkpointEveryMs` a checkpoint is made if the head moved (and sent by webhook).
   */
  start(headEveryMs: number, checkpointEveryMs: number): void {
    this.timer = this.clock.setInterval(() => {
      this.sinceCheckpointMs += headEveryMs;
      const due = checkpointEveryMs > 0 && this.sinceCheckpointMs >= checkpointEveryMs;
      if (due) this.sinceCheckpointMs = 0;
      void this.upkeep(due).catch((error: unknown) => this.logger.warn({ err: error }, 'audit head upkeep failed'));
    }, headEveryMs);
    this.timer.unref();
  }

  private async upkeep(checkpointDue: boolean): Promise<void> {
    const [newest] = await this.store.queryAudit({ order: 'desc', limit: 1 });
    if (!newest) return;
    if (newest.seq !== this.lastWritten.seq) this.recordHead(newest.seq, newest.hash);
    if (checkpointDue && newest.seq !== this.lastCheckpointSeq) await this.checkpoint();
  }

  private recordHead(seq: number, hash: string): void {
    // While the database is behind the recorded head, keep the evidence: do not overwrite it.
    if (!this.headStatus.ok) return;
    this.head.write(seq, hash, this.clock.now());
    this.lastWritten = { seq, hash };
  }

  /** Signs the current head, keeps it in the data directory and hands it to the webhook. */
  async checkpoint(): Promise<Checkpoint> {
    const [newest] = await this.store.queryAudit({ order: 'desc', limit: 1 });
    const seq = newest?.seq ?? 0;
    const hash = newest?.hash ?? '0'.repeat(64);
    const checkpoint = this.signer.sign(this.hubId, seq, hash, this.clock.now());
    this.recordHead(seq, hash);
    this.lastCheckpointSeq = seq;
    const fresh = !existsSync(this.logFile);
    appendFileSync(this.logFile, JSON.stringify(checkpoint) + '\n', { mode: 0o600 });
    if (fresh) chmodSync(this.logFile, 0o600);
    this.onCheckpoint(checkpoint);
    return checkpoint;
  }

  /** The checkpoints this hub issued, newest first (a convenience: keep your own copies). */
  list(limit = LIST_LIMIT): Checkpoint[] {
    if (!existsSync(this.logFile)) return [];
    const lines = readFileSync(this.logFile, 'utf8').trimEnd().split('\n').filter(Boolean);
    return lines.slice(-limit).reverse().map((l) => JSON.parse(l) as Checkpoint);
  }

  /** At shutdown: the head file gets the last record written. */
  async stop(): Promise<void> {
    this.clock.clearInterval(this.timer);
    const [newest] = await this.store.queryAudit({ order: 'desc', limit: 1 });
    if (newest) this.recordHead(newest.seq, newest.hash);
  }
}
