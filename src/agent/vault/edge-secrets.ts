/**
 * Secrets on the edge, as an AgentFeature on capability `secrets`: receives deliveries
 * (opens each with the edge's own X25519 key, stores it in the encrypted cache, then
 * acknowledges), removals, reports what it holds at link-up, and reports local reads in
 * batches. Apps and files read through get(); the cache serves them while the hub is away
 * and after a restart with no hub.
 *
 * One hub per agent delivers secrets (the usual case); with devices enrolled on several
 * hubs, the last link up is the one that syncs.
 */
import { DrawbridgeError } from '../../errors.js';
import { MAX_READ_COUNTS_PER_REPORT, SecretsDeliver, SecretsReads, SecretsRemove, SecretsSync } from '../../protocol/messages/index.js';
import type { BodyOf } from '../../protocol/control.js';
import { openAtEdge, recipientKey, type RecipientKey } from '../../protocol/secret-hpke.js';
import type { Link } from '../../transport/link.js';
import type { Clock, TimerHandle } from '../../util/clock.js';
import type { Logger } from '../../util/logger.js';
import type { AgentFeature } from '../edge-link.js';
import type { EdgeIdentity } from '../identity.js';
import type { SecretCache } from './secret-cache.js';

/** Distinct (app, secret, version) read counters kept while the hub is away; beyond, reads are still served but counted as one "overflow". */
const MAX_PENDING_READ_COUNTERS = 10_000;

export type SecretChange = { name: string; version: number | undefined };

interface ReadCounter {
  app: string;
  name: string;
  version: number;
  count: number;
  lastReadAt: number;
}

export class EdgeSecrets implements AgentFeature {
  readonly capability = 'secrets';
  private link: Link | undefined;
  private recipient: RecipientKey | undefined;
  private readonly listeners: ((change: SecretChange) => void)[] = [];
  private readonly reads = new Map<string, ReadCounter>();
  private reportTimer: TimerHandle | undefined;
  private reporting = false;
  /** Deliveries stored since start (for status and tests). */
  stored = 0;

  constructor(
    private readonly edge: EdgeIdentity,
    private readonly cache: SecretCache,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly readReportIntervalMs: number,
  ) {}

  /** Loads the cache (refusing what does not authenticate) and starts read reports. */
  start(): void {
    const refused = this.cache.load();
    this.logger.info({ secrets: this.cache.list().length, refused: Math.max(refused, 0) }, 'secret cache loaded');
    this.reportTimer = this.clock.setInterval(() => void this.reportReads(), this.readReportIntervalMs);
    this.reportTimer.unref();
  }

  /** Stops reporting; counts not yet reported get one last, short chance to go out. */
  async stop(): Promise<void> {
    this.clock.clearInterval(this.reportTimer);
    await Promise.race([this.reportReads(), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
  }

  onChange(listener: (change: SecretChange) => void): void {
    this.listeners.push(listener);
  }

  list(): { name: string; version: number; receivedAt: number }[] {
    return this.cache.list();
  }

  /** The value, or undefined. The caller wipes the buffer when done. */
  get(name: string): { name: string; version: number; value: Buffer } | undefined {
    return this.cache.get(name);
  }

  /** Counts one local read, reported to the hub with the next batch. */
  countRead(app: string, name: string, version: number): void {
    const key = `${app}\0${name}\0${version}`;
    const now = this.clock.now();
    const counter = this.reads.get(key);
    if (counter) {
      counter.count++;
      counter.lastReadAt = now;
    } else if (this.reads.size < MAX_PENDING_READ_COUNTERS) {
      this.reads.set(key, { app, name, version, count: 1, lastReadAt: now });
    }
  }

  online(link: Link): void {
    this.link = link;
    link.handle(SecretsDeliver, (body) => this.onDeliver(body));
    link.handle(SecretsRemove, (body) => this.onRemove(body));
    this.sync(link);
    void this.reportReads();
  }

  offline(): void {
    this.link = undefined;
  }

  /** Tells the hub what this edge holds; it answers with the difference. */
  private sync(link: Link): void {
    link.request(SecretsSync, { held: this.cache.held() }).catch((error: DrawbridgeError) => {
      if (link.isOpen) this.logger.warn({ errorCode: error.code, err: error.message }, 'could not report held secrets to the hub');
    });
  }

  private async onDeliver(body: BodyOf<typeof SecretsDeliver>): Promise<{ stored: true }> {
    let value: Buffer;
    try {
      this.recipient ??= recipientKey(this.edge.encryptionKey);
      value = openAtEdge(this.recipient, this.edge.id, body.name, body.version, { enc: body.enc, ciphertext: body.ciphertext });
    } catch (error) {
      this.logger.error({ secret: body.name, version: body.version, err: (error as Error).message }, 'refused a secret delivery that does not open with this edge\'s key');
      throw error;
    }
    try {
      this.cache.put(body.name, body.version, value, this.clock.now());
    } finally {
      value.fill(0);
    }
    this.stored++;
    this.logger.info({ secret: body.name, version: body.version }, 'secret stored');
    this.emit({ name: body.name, version: body.version });
    return { stored: true };
  }

  private async onRemove(body: BodyOf<typeof SecretsRemove>): Promise<Record<string, never>> {
    if (this.cache.remove(body.name)) {
      this.logger.info({ secret: body.name, reason: body.reason }, 'secret removed from this edge');
      this.emit({ name: body.name, version: undefined });
    }
    return {};
  }

  private emit(change: SecretChange): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (error) {
        this.logger.error({ err: error, secret: change.name }, 'a secret change listener failed');
      }
    }
  }

  /** Sends counted reads in batches; what does not reach the hub is kept for the next try. */
  async reportReads(): Promise<void> {
    const link = this.link;
    if (!link?.isOpen || this.reporting || this.reads.size === 0) return;
    this.reporting = true;
    try {
      while (this.reads.size > 0 && link.isOpen) {
        const batch = [...this.reads.entries()].slice(0, MAX_READ_COUNTS_PER_REPORT);
        for (const [key] of batch) this.reads.delete(key);
        try {
          await link.request(SecretsReads, { reads: batch.map(([, c]) => ({ ...c })) });
        } catch (error) {
          for (const [key, counter] of batch) {
            const newer = this.reads.get(key);
            this.reads.set(key, newer ? { ...newer, count: newer.count + counter.count } : counter);
          }
          this.logger.warn({ err: (error as Error).message }, 'could not report secret reads; kept for the next report');
          return;
        }
      }
    } finally {
      this.reporting = false;
    }
  }
}
