/**
 * Just-in-time access: requests, reviews, grants, expiry and revocation. A grant is an
 * approved request; it runs from approval to approval + the requested duration. Every
 * transition is a compare-and-set on the request's status with its audit record in the
 * same transaction, so two reviewers racing cannot both win.
 */
import { randomBytes } from 'node:crypto';
import { DrawbridgeError } from '../errors.js';
import type { AccessView } from '../protocol/api-types.js';
import type { AccessRequestRecord, DeviceRecord, PrincipalRecord, Store } from '../store/store.js';
import { formatDuration } from '../util/duration.js';
import type { Logger } from '../util/logger.js';
import type { HubConfig } from './config.js';
import type { Principal } from './principals.js';
import { requireRole } from './principals.js';
import type { Relay } from './relay.js';
import type { WebhookEvent, WebhookSender } from './webhook.js';

export const MAX_REASON_LENGTH = 1000;

export class AccessService {
  constructor(
    private readonly store: Store,
    private readonly config: HubConfig,
    private readonly relay: Relay,
    private readonly webhook: WebhookSender,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  private notify(event: WebhookEvent, request: AccessRequestRecord): void {
    this.webhook.fire(event, { ...publicAccessView(request) });
  }

  async request(principal: Principal, device: string, durationMs: number, reason: string): Promise<AccessRequestRecord> {
    requireRole(principal, ['admin', 'operator', 'approver'], 'requesting access');
    const trimmed = reason.trim();
    if (trimmed.length === 0) throw new DrawbridgeError('VALIDATION_FAILED', 'a reason is required for an access request');
    if (durationMs <= 0) throw new DrawbridgeError('VALIDATION_FAILED', 'the access duration must be positive');
    const max = this.config.access.maxDuration;
    if (durationMs > max) {
      throw new DrawbridgeError(
        'VALIDATION_FAILED',
        `requested ${formatDuration(durationMs)} is longer than the hub's maximum of ${formatDuration(max)}`,
      );
    }
    const record = await this.store.getDevice(device);
    if (!record) throw new DrawbridgeError('UNKNOWN_DEVICE', `unknown device "${device}"`);
    const now = this.now();
    const request: AccessRequestRecord = {
      id: 'ar_' + randomBytes(8).toString('hex'),
      principal: principal.name,
      device,
      durationMs,
      reason: trimmed,
      status: 'pending',
      createdAt: now,
      requestExpiresAt: now + this.config.access.requestTtl,
      reviewedBy: null,
      reviewedAt: null,
      reviewNote: null,
      autoApproved: false,
      grantStartsAt: null,
      grantEndsAt: null,
      endedAt: null,
    };
    const maxPending = this.config.access.maxPendingRequestsPerPrincipal;
    const created = await this.store.createAccessRequest(
      request,
      { actor: principal.name, action: 'access.request', device, details: { request: request.id, durationMs, reason: request.reason } },
      maxPending,
    );
    if (!created) {
      throw new DrawbridgeError(
        'TOO_MANY_OPEN_REQUESTS',
        `"${principal.name}" already has ${maxPending} access requests waiting for review; wait for them to be reviewed or expire`,
      );
    }
    this.notify('access.requested', request);

    const policy = this.config.access.autoApprove.find(
      (rule) => durationMs <= rule.maxDuration && Object.entries(rule.tags).every(([k, v]) => record.tags[k] === v),
    );
    if (!policy) return request;
    const approved = await this.store.transitionAccessRequest(
      request.id,
      'pending',
      {
        status: 'approved',
        autoApproved: true,
        reviewedBy: 'policy',
        reviewedAt: now,
        reviewNote: `auto-approved by policy (tags ${JSON.stringify(policy.tags)}, up to ${formatDuration(policy.maxDuration)})`,
        grantStartsAt: now,
        grantEndsAt: now + durationMs,
      },
      {
        actor: 'policy',
        action: 'access.auto_approve',
        device,
        details: { request: request.id, principal: principal.name, tags: policy.tags, grantEndsAt: now + durationMs },
      },
    );
    if (approved) this.notify('access.approved', approved);
    return approved ?? request;
  }

  async get(id: string): Promise<AccessRequestRecord> {
    const request = await this.store.getAccessRequest(id);
    if (!request) throw new DrawbridgeError('NOT_FOUND', `no access request "${id}"`);
    return request;
  }

  async approve(reviewer: Principal, id: string, note: string | undefined): Promise<AccessRequestRecord> {
    requireRole(reviewer, ['admin', 'approver'], 'approving access');
    const request = await this.pendingForReview(reviewer, id);
    const now = this.now();
    const approved = await this.store.transitionAccessRequest(
      id,
      'pending',
      {
        status: 'approved',
        reviewedBy: reviewer.name,
        reviewedAt: now,
        reviewNote: note ?? null,
        grantStartsAt: now,
        grantEndsAt: now + request.durationMs,
      },
      {
        actor: reviewer.name,
        action: 'access.approve',
        device: request.device,
        details: { request: id, principal: request.principal, note: note ?? null, grantEndsAt: now + request.durationMs },
      },
    );
    if (!approved) throw new DrawbridgeError('INVALID_STATE', `access request ${id} was reviewed by someone else meanwhile`);
    this.notify('access.approved', approved);
    return approved;
  }

  async deny(reviewer: Principal, id: string, reason: string): Promise<AccessRequestRecord> {
    requireRole(reviewer, ['admin', 'approver'], 'denying access');
    if (reason.trim() === '') throw new DrawbridgeError('VALIDATION_FAILED', 'a reason is required to deny a request');
    const request = await this.pendingForReview(reviewer, id);
    const denied = await this.store.transitionAccessRequest(
      id,
      'pending',
      { status: 'denied', reviewedBy: reviewer.name, reviewedAt: this.now(), reviewNote: reason.trim() },
      { actor: reviewer.name, action: 'access.deny', device: request.device, details: { request: id, principal: request.principal, reason: reason.trim() } },
    );
    if (!denied) throw new DrawbridgeError('INVALID_STATE', `access request ${id} was reviewed by someone else meanwhile`);
    this.notify('access.denied', denied);
    return denied;
  }

  private async pendingForReview(reviewer: Principal, id: string): Promise<AccessRequestRecord> {
    const request = await this.get(id);
    if (request.principal === reviewer.name) {
      throw new DrawbridgeError('FORBIDDEN', `"${reviewer.name}" cannot review their own access request; another approver must`);
    }
    if (request.status === 'pending' && request.requestExpiresAt <= this.now()) {
      await this.expire(request);
      throw new DrawbridgeError('INVALID_STATE', `access request ${id} expired unreviewed`);
    }
    if (request.status !== 'pending') {
      throw new DrawbridgeError('INVALID_STATE', `access request ${id} is already ${request.status}`);
    }
    return request;
  }

  async revoke(actor: Principal, id: string): Promise<AccessRequestRecord> {
    const request = await this.get(id);
    // The holder may give up their own grant; otherwise revoking is for admins and approvers.
    if (request.principal !== actor.name) requireRole(actor, ['admin', 'approver'], 'revoking access');
    const now = this.now();
    if (request.status !== 'approved' || (request.grantEndsAt ?? 0) <= now) {
      throw new DrawbridgeError('INVALID_STATE', `access request ${id} is not an active grant (it is ${request.status}${request.status === 'approved' ? ', ended' : ''})`);
    }
    const revoked = await this.store.transitionAccessRequest(
      id,
      'approved',
      { status: 'revoked', endedAt: now },
      { actor: actor.name, action: 'access.revoke', device: request.device, details: { request: id, principal: request.principal } },
    );
    if (!revoked) throw new DrawbridgeError('INVALID_STATE', `access request ${id} changed meanwhile`);
    this.relay.endWhere((s) => s.grantId === id, new DrawbridgeError('ACCESS_REVOKED', `access ended: grant ${id} was revoked by ${actor.name}`));
    this.notify('access.revoked', revoked);
    return revoked;
  }

  /**
   * Announces the requests and grants a removal ended (the store ended them in the removal's
   * own transaction): one summary webhook event, not one per request.
   */
  announceBulkRevocation(ended: readonly AccessRequestRecord[], reason: string): void {
    if (ended.length === 0) return;
    this.webhook.fire('access.bulk_revoked', { reason, count: ended.length, requests: ended.slice(0, 1000).map((r) => r.id) });
  }

  /**
   * The grant that lets `holder` reach `device` now, if any. A grant counts only if it is
   * younger than both the device and the principal: whatever a removed device or user of
   * the same name held is never inherited, even if it was somehow left open. The caller
   * passes the records it has just read (a stream open reads both to authorise it), so they
   * are not read a second time.
   */
  async activeGrant(holder: Pick<PrincipalRecord, 'name' | 'createdAt'>, device: Pick<DeviceRecord, 'name' | 'createdAt'>): Promise<AccessRequestRecord | undefined> {
    const grants = await this.store.listAccessRequests({ principal: holder.name, device: device.name, activeAt: this.now(), limit: 10 });
    const born = Math.max(device.createdAt, holder.createdAt);
    // Prefer the grant that lasts longest.
    return grants.filter((g) => g.createdAt >= born).sort((a, b) => (b.grantEndsAt ?? 0) - (a.grantEndsAt ?? 0))[0];
  }

  private async expire(request: AccessRequestRecord): Promise<void> {
    const expired = await this.store.transitionAccessRequest(
      request.id,
      'pending',
      { status: 'expired', endedAt: this.now() },
      { actor: 'hub', action: 'access.expire', device: request.device, details: { request: request.id, principal: request.principal } },
    );
    if (expired) this.notify('access.expired', expired);
  }

  /**
   * Expires unreviewed requests and records grants whose window closed (the relay ends their
   * streams on its own). Each is a set-based statement over a partial index, so a sweep with
   * nothing due costs microseconds. A backlog is taken SWEEP_CHUNK rows a statement (each
   * row with its audit record), the event loop free between statements, at most SWEEP_BATCH
   * rows a sweep; the next sweep (500 ms later) takes the rest. 500 rows in one statement
   * stalled the hub for 133 ms.
   */
  async sweep(): Promise<void> {
    const now = this.now();
    await inChunks((limit) => this.store.expireAccessRequests(now, limit), (expired) => this.notify('access.expired', expired));
    await inChunks((limit) => this.store.endElapsedGrants(now, limit));
  }
}

/** Rows one sweep may change, and rows one statement may change: about 10 ms of work with their audit records. */
const SWEEP_BATCH = 500;
const SWEEP_CHUNK = 100;

async function inChunks(run: (limit: number) => Promise<AccessRequestRecord[]>, each?: (record: AccessRequestRecord) => void): Promise<void> {
  for (let done = 0; done < SWEEP_BATCH; ) {
    const rows = await run(SWEEP_CHUNK);
    if (each) for (const row of rows) each(row);
    done += rows.length;
    if (rows.length < SWEEP_CHUNK) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The API view of a request: ISO times, a derived `active` flag. */
export function publicAccessView(r: AccessRequestRecord, now = Date.now()): AccessView {
  const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());
  return {
    id: r.id,
    principal: r.principal,
    device: r.device,
    status: r.status,
    active: r.status === 'approved' && (r.grantStartsAt ?? Infinity) <= now && (r.grantEndsAt ?? 0) > now,
    reason: r.reason,
    durationMs: r.durationMs,
    createdAt: new Date(r.createdAt).toISOString(),
    requestExpiresAt: new Date(r.requestExpiresAt).toISOString(),
    reviewedBy: r.reviewedBy,
    reviewedAt: iso(r.reviewedAt),
    reviewNote: r.reviewNote,
    autoApproved: r.autoApproved,
    grantStartsAt: iso(r.grantStartsAt),
    grantEndsAt: iso(r.grantEndsAt),
    endedAt: iso(r.endedAt),
  };
}
