/**
 * Webhooks (access requests, audit checkpoints, security alerts): each body is signed with HMAC-SHA256 under a shared secret
 * (header X-Drawbridge-Signature: sha256=HEX) so the receiver can trust it. Deliveries
 * are queued in order and never block the action that caused them.
 */
import { createHmac } from 'node:crypto';
import type { Logger } from '../util/logger.js';
import type { HubConfig } from './config.js';

export type WebhookEvent =
  | 'access.requested'
  | 'access.approved'
  | 'access.denied'
  | 'access.expired'
  | 'access.revoked'
  | 'access.bulk_revoked'
  | 'audit.checkpoint'
  // edge security monitoring
  | 'alert.opened'
  | 'alert.resolved';

export function signWebhookBody(secret: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

/** Deliveries waiting while the receiver is slow or down; beyond this the newest are dropped (and logged). */
export const MAX_QUEUED_WEBHOOKS = 1000;

export class WebhookSender {
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;

  constructor(
    private readonly config: HubConfig['webhook'],
    private readonly logger: Logger,
  ) {}

  fire(event: WebhookEvent, data: Record<string, unknown>): void {
    const config = this.config;
    if (!config) return;
    if (this.queued >= MAX_QUEUED_WEBHOOKS) {
      this.logger.error({ event, queued: this.queued }, 'webhook queue full; dropping this delivery (the audit log still has the event)');
      return;
    }
    this.queued++;
    const body = JSON.stringify({ event, at: new Date().toISOString(), data });
    this.queue = this.queue.then(async () => {
      try {
        await this.deliver(config, event, body);
      } finally {
        this.queued--;
      }
    });
  }

  private async deliver(config: NonNullable<HubConfig['webhook']>, event: WebhookEvent, body: string): Promise<void> {
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const response = await fetch(config.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-drawbridge-event': event,
            'x-drawbridge-signature': signWebhookBody(config.secret, body),
          },
          body,
          signal: AbortSignal.timeout(config.timeout),
        });
        if (response.ok) return;
        this.logger.warn({ event, status: response.status, attempt }, 'webhook answered with an error status');
      } catch (error) {
        this.logger.warn({ event, attempt, err: (error as Error).message }, 'webhook delivery failed');
      }
      if (attempt < 3) await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
    this.logger.error({ event }, 'webhook not delivered after 3 attempts (the audit log still has the event)');
  }

  /** Waits for queued deliveries (used at shutdown and in tests). */
  async flush(): Promise<void> {
    await this.queue;
  }
}
