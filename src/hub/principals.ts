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

export interface Principal {
  name: string;
  /** 'anonymous' on the few routes that take no token: it passes no role check. */
  role: Role | 'anonymous';
  tokenId: string;
}

export const ANONYMOUS: Principal = Object.freeze({ name: 'anonymous', role: 'anonymous', tokenId: '' });

export class PrincipalAuth {
  constructor(
    private readonly store: Store,
    private readonly limiter: AuthFailureLimiter,
    private readonly metrics: HubMetrics,
    private readonly logger: Logger,
  ) {}

  /** Refuses a source that is over its failure budget (429 with Retry-After). */
  checkLimit(source: string): void {
    const retryAfter = this.limiter.retryAfterSeconds(source);
    if (retryAfter > 0) {
      throw new DrawbridgeError('RATE_LIMITED', `too many failed authentication attempts from ${source}; retry in ${retryAfter}s`, {
        details: { retryAfterSeconds: retryAfter },
      });
    }
  }

  /** Records a failed authentication: metric, log and audit (fail closed is not needed for a refusal). */
  async recordFailure(source: string, kind: string, reason: string, device?: string): Promise<void> {
    this.metrics.authFailures.inc({ kind });
    const tripped = this.limiter.recordFailure(source);
    this.logger.warn({ source, kind, reason, device }, 'authentication failed');
    try {
      await this.store.appendAudit({
        actor: `anonymous@${source}`,
        action: 'auth.failure',
        device: device ?? null,
        details: { source, kind, reason },
      });
      if (tripped) {
        await this.store.appendAudit({
          actor: 'hub',
          action: 'auth.rate_limited',
          details: { source, kind, windowSeconds: 60 },
        });
      }
    } catch (error) {
      this.logger.error({ err: error }, 'could not audit an authentication failure');
    }
  }

  async authenticate(req: IncomingMessage): Promise<Principal> {
    const source = clientAddress(req);
    this.checkLimit(source);
    const token = bearerToken(req);
    if (!token) {
      await this.recordFailure(source, 'api', 'no bearer token');
      throw new DrawbridgeError('UNAUTHENTICATED', 'authentication required: send "Authorization: Bearer <token>" (see drawbridge login)');
    }
    const principal = await this.verifyToken(token);
    if (!principal) {
      await this.recordFailure(source, 'api', 'invalid token');
      throw new DrawbridgeError('UNAUTHENTICATED', 'the token is invalid, rotated or belongs to a removed user');
    }
    return { name: principal.name, role: principal.role, tokenId: principal.tokenId };
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

const ROLE_TEXT: Record<Role, string> = { admin: 'admin', operator: 'operator', approver: 'approver', auditor: 'auditor' };

/** Throws FORBIDDEN naming the roles that would be allowed. */
export function requireRole(principal: Principal, allowed: readonly Role[], action: string): void {
  if (principal.role !== 'anonymous' && allowed.includes(principal.role)) return;
  const names = allowed.map((r) => ROLE_TEXT[r]);
  const list = names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
  throw new DrawbridgeError('FORBIDDEN', `${action} needs the ${list} role; "${principal.name}" is ${principal.role}`);
}
