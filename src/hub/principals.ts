/**
 * Who is calling: bearer-token authentication with per-source failure limits, and the
 * role checks every route makes. Tokens are stored as SHA-256 hashes and compared in
 * constant time after a lookup by their public id.
 */
import type { IncomingMessage } from 'node:http';
import { DrawbridgeError } from '../errors.js';
import { parseApiToken, secretMatches } from '../protocol/tokens.js';
import type { PrincipalRecord, Role, Store } from '../store/store.js';
import type { Logger } from '../util/logger.js';
import { bearerToken, clientAddress } from './http.js';
import type { HubMetrics } from './metrics.js';
import type { AuthFailureLimiter } from './rate-limiter.js';
import type { AuditAggregator } from './audit-aggregator.js';

export interface Principal {
  name: string;
  /** 'anonymous' on the few routes that take no token: it passes no role check. */
  role: Role | 'anonymous';
  tokenId: string;
}

export const ANONYMOUS: Principal = Object.freeze({ name: 'anonymous', role: 'anonymous', tokenId: '' });

/**
 * Names the hub itself writes as audit actors. No user may take one, or their actions
 * would read in the audit log as the hub's own. (Actors with ":" or "@", such as
 * "device:NAME" and "anonymous@ADDRESS", cannot be user names at all.)
 */
export const RESERVED_USER_NAMES: ReadonlySet<string> = new Set(['hub', 'policy', 'anonymous', 'system']);

export class PrincipalAuth {
  constructor(
    private readonly store: Store,
    private readonly limiter: AuthFailureLimiter,
    private readonly metrics: HubMetrics,
    private readonly logger: Logger,
    /** Failed authentications go to the audit log through this: one record per source and kind per window. */
    private readonly failures: AuditAggregator,
  ) {}

  /**
   * Refuses a source that is over its failure budget (429 with Retry-After). Only for a caller
   * that cannot prove anything yet (an agent link before its challenge); every other path
   * checks the credential first and asks for a refusal() when it fails.
   */
  checkLimit(source: string): void {
    const retryAfter = this.limiter.retryAfterSeconds(source);
    if (retryAfter > 0) throw rateLimited(source, retryAfter);
  }

  /**
   * Counts a failed authentication: the metric, the source's failure budget, and the
   * aggregated audit record (strangers cannot grow the audit log one record per attempt).
   * The first failure of a source and kind in a window is logged; the rest are counted.
   */
  recordFailure(source: string, kind: string, reason: string, device?: string): void {
    this.metrics.authFailures.inc({ kind });
    const budgetUsed = this.limiter.recordFailure(source);
    const sample = { actor: `anonymous@${source}`, device: device ?? null, details: { source, kind } };
    if (this.failures.record('auth.failure', `${kind} ${source}`, sample, reason)) {
      this.logger.warn({ source, kind, reason, device }, 'authentication failed (more failures of this source are counted, audited once a window)');
    }
    if (budgetUsed) this.failures.record('auth.rate_limited', source, { actor: 'hub', details: { source, kind, windowSeconds: 60 } });
  }

  /** A credential failed: counts it and returns the error to throw: `error`, or 429 once the source is over its budget. */
  refusal(source: string, kind: string, reason: string, error: DrawbridgeError, device?: string): DrawbridgeError {
    const retryAfter = this.limiter.retryAfterSeconds(source);
    this.recordFailure(source, kind, reason, device);
    return retryAfter === 0 ? error : rateLimited(source, retryAfter);
  }

  /**
   * The caller's principal. The token is verified before the failure budget is looked at: a
   * valid token is never refused because others failed from the same address.
   */
  async authenticate(req: IncomingMessage): Promise<Principal> {
    const token = bearerToken(req);
    const principal = token ? await this.verifyToken(token) : undefined;
    if (principal) return { name: principal.name, role: principal.role, tokenId: principal.tokenId };
    if (!token) {
      throw this.refusal(clientAddress(req), 'api', 'no bearer token', new DrawbridgeError('UNAUTHENTICATED', 'authentication required: send "Authorization: Bearer <token>" (see drawbridge login)'));
    }
    throw this.refusal(clientAddress(req), 'api', 'invalid token', new DrawbridgeError('UNAUTHENTICATED', 'the token is invalid, rotated or belongs to a removed user'));
  }

  private async verifyToken(token: string): Promise<PrincipalRecord | undefined> {
    const parsed = parseApiToken(token);
    if (!parsed) {
      secretMatches('x', '0'.repeat(64)); // keep the cost of a malformed token similar
      return undefined;
    }
    const record = await this.store.getPrincipalByTokenId(parsed.id);
    const ok = secretMatches(parsed.secret, record?.tokenHash ?? '0'.repeat(64));
    return ok ? record : undefined;
  }
}

function rateLimited(source: string, retryAfterSeconds: number): DrawbridgeError {
  return new DrawbridgeError('RATE_LIMITED', `too many failed authentication attempts from ${source}; retry in ${retryAfterSeconds}s`, {
    details: { retryAfterSeconds },
  });
}

const ROLE_TEXT: Record<Role, string> = { admin: 'admin', operator: 'operator', approver: 'approver', auditor: 'auditor' };

/** Throws FORBIDDEN naming the roles that would be allowed. */
export function requireRole(principal: Principal, allowed: readonly Role[], action: string): void {
  if (principal.role !== 'anonymous' && allowed.includes(principal.role)) return;
  const names = allowed.map((r) => ROLE_TEXT[r]);
  const list = names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
  throw new DrawbridgeError('FORBIDDEN', `${action} needs the ${list} role; "${principal.name}" is ${principal.role}`);
}
