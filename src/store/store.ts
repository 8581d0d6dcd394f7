/**
 * The store interface: everything the hub persists. One engine per folder (sqlite now,
 * postgres later). Methods are async so a networked engine fits without changing callers.
 *
 * Every mutation that is an auditable action takes the audit entry with it, and the engine
 * writes both in one transaction: the action and its record land together or not at all
 * (fail closed).
 */

export type Role = 'admin' | 'operator' | 'approver' | 'auditor';
export const ROLES: readonly Role[] = ['admin', 'operator', 'approver', 'auditor'];

export interface DeviceRecord {
  name: string;
  tags: Record<string, string>;
  enabled: boolean;
  /** Ed25519 public key, SPKI DER base64; null until enrolled. */
  publicKey: string | null;
  createdAt: number;
  enrolledAt: number | null;
  lastSeenAt: number | null;
  agentVersion: string | null;
  remoteAddress: string | null;
  /** The edge (agent host) the device was enrolled on; null until enrolled. */
  edgeId: string | null;
}

/** An edge: the host an agent runs on, with its own keys (generated there; only public keys here). */
export interface EdgeRecord {
  /** Hex SHA-256 of the signing public key (SPKI DER), first 32 digits. */
  id: string;
  name: string;
  /** Ed25519 public key, SPKI DER base64 */
  signingKey: string;
  /** X25519 public key, SPKI DER base64: secrets are encrypted to it */
  encryptionKey: string;
  enabled: boolean;
  hostname: string | null;
  createdAt: number;
  lastSeenAt: number | null;
  agentVersion: string | null;
  remoteAddress: string | null;
}

export interface EnrollmentRecord {
  id: string;
  device: string;
  secretHash: string;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
  /** When a newer enrollment token for the device replaced this one unused (it no longer works). */
  replacedAt?: number | null;
}

export interface PrincipalRecord {
  name: string;
  role: Role;
  createdAt: number;
  tokenId: string;
  tokenHash: string;
  tokenCreatedAt: number;
}

export type AccessStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'revoked';

export interface AccessRequestRecord {
  id: string;
  principal: string;
  device: string;
  durationMs: number;
  reason: string;
  status: AccessStatus;
  createdAt: number;
  requestExpiresAt: number;
  reviewedBy: string | null;
  reviewedAt: number | null;
  reviewNote: string | null;
  autoApproved: boolean;
  grantStartsAt: number | null;
  grantEndsAt: number | null;
  endedAt: number | null;
}

export interface SessionRecord {
  id: string;
  principal: string;
  device: string;
  target: string | null;
  clientAddress: string;
  grantId: string | null;
  startedAt: number;
  endedAt: number | null;
  bytesToDevice: number;
  bytesFromDevice: number;
  closeReason: string | null;
}

/**
 * A committed change to which edge a device belongs to, or to the standing of a device or
 * an edge: a device enrolled (or enrolled again elsewhere), enabled, disabled or removed; an
 * edge enabled, disabled or removed. Whatever derives state per edge from devices and edges
 * (secret delivery: which edges may hold which secret) listens here, so every cause reaches
 * it, whoever made the change. Tags are set when a device is added and never change.
 */
export interface MembershipChange {
  cause: 'device.enroll' | 'device.enable' | 'device.disable' | 'device.remove' | 'edge.enable' | 'edge.disable' | 'edge.remove';
  /** The edges concerned: a device's edge before and after the change, or the edge itself. */
  edgeIds: string[];
}

export interface AuditEntry {
  actor: string;
  action: string;
  device?: string | null;
  /** Free-form, JSON-serialisable facts. Never secrets. */
  details?: Record<string, unknown>;
}

export interface AuditRecord {
  seq: number;
  ts: number;
  actor: string;
  action: string;
  device: string | null;
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export interface AuditQuery {
  device?: string;
  actor?: string;
  action?: string;
  since?: number;
  until?: number;
  /** Keyset paging: records with seq > afterSeq (ascending) */
  afterSeq?: number;
  /** Keyset paging: records with seq < beforeSeq (descending) */
  beforeSeq?: number;
  order?: 'asc' | 'desc';
  limit: number;
}

export type ChainReport =
  | { ok: true; checked: number; headHash: string }
  | { ok: false; checked: number; firstBadSeq: number; problem: string; message: string };

export interface AccessQuery {
  status?: AccessStatus;
  principal?: string;
  device?: string;
  /** only approved grants whose window contains this instant */
  activeAt?: number;
  /** only records not yet marked ended (open grants, live requests) */
  notEnded?: boolean;
  limit?: number;
}

export interface Store {
  readonly engine: string;
  close(): Promise<void>;
  /** Periodic upkeep (planner statistics and the like); called hourly by the hub. */
  maintain(): Promise<void>;

  // devices
  createDevice(device: DeviceRecord, enrollment: EnrollmentRecord, audit: AuditEntry): Promise<void>;
  getDevice(name: string): Promise<DeviceRecord | undefined>;
  /** By name; a page of `limit` devices after `after` when given (every device otherwise). */
  listDevices(page?: { after?: string; limit?: number }): Promise<DeviceRecord[]>;
  setDeviceEnabled(name: string, enabled: boolean, audit: AuditEntry): Promise<boolean>;
  /**
   * Removes the device and, in the same transaction, ends every pending request and open
   * grant for it (one `access.revoke` record each, by the remover): nothing outlives its
   * device. Returns the requests it ended, or undefined when there was no such device.
   */
  removeDevice(name: string, audit: AuditEntry): Promise<AccessRequestRecord[] | undefined>;
  /** Connection facts; not an auditable action on its own. */
  touchDevice(name: string, facts: { lastSeenAt: number; agentVersion?: string; remoteAddress?: string }): Promise<void>;
  /** Stores a new enrollment token; in the same transaction every older unused one of the device is replaced (stops working). */
  createEnrollment(enrollment: EnrollmentRecord, audit: AuditEntry): Promise<void>;
  getEnrollment(id: string): Promise<EnrollmentRecord | undefined>;
  /**
   * Atomically marks the enrollment used and stores the device key, if and only if the
   * enrollment is unused, not replaced and unexpired at `now`. Returns false when it lost that race.
   */
  completeEnrollment(id: string, publicKey: string, now: number, audit: AuditEntry, edge?: EdgeRecord): Promise<boolean>;
  devicesOfEdge(edgeId: string): Promise<DeviceRecord[]>;

  // edges
  getEdge(id: string): Promise<EdgeRecord | undefined>;
  getEdgeByName(name: string): Promise<EdgeRecord | undefined>;
  listEdges(): Promise<EdgeRecord[]>;
  setEdgeEnabled(id: string, enabled: boolean, audit: AuditEntry): Promise<boolean>;
  /** Forgets the edge's keys; its devices stay registered but are no longer enrolled. */
  removeEdge(id: string, audit: AuditEntry): Promise<boolean>;
  touchEdge(id: string, facts: { lastSeenAt: number; agentVersion?: string; remoteAddress?: string; hostname?: string }): Promise<void>;

  /**
   * Calls `listener` after each committed MembershipChange, synchronously and before the
   * changing call resolves. (A networked engine serving several hub processes delivers the
   * changes the others made too, e.g. with PostgreSQL LISTEN/NOTIFY.)
   */
  onMembershipChange(listener: (change: MembershipChange) => void): void;

  // principals
  createPrincipal(principal: PrincipalRecord, audit: AuditEntry): Promise<void>;
  getPrincipal(name: string): Promise<PrincipalRecord | undefined>;
  getPrincipalByTokenId(tokenId: string): Promise<PrincipalRecord | undefined>;
  listPrincipals(): Promise<PrincipalRecord[]>;
  /** Removes the principal and ends its pending requests and open grants, as removeDevice does. */
  removePrincipal(name: string, audit: AuditEntry): Promise<AccessRequestRecord[] | undefined>;
  setPrincipalToken(name: string, tokenId: string, tokenHash: string, now: number, audit: AuditEntry): Promise<boolean>;

  // access requests and grants
  /**
   * Stores a new pending request, unless its principal already has `maxPending` pending
   * requests that have not expired (checked in the same transaction): returns false then.
   */
  createAccessRequest(request: AccessRequestRecord, audit: AuditEntry, maxPending?: number): Promise<boolean>;
  getAccessRequest(id: string): Promise<AccessRequestRecord | undefined>;
  listAccessRequests(query: AccessQuery): Promise<AccessRequestRecord[]>;
  /**
   * Compare-and-set: applies `changes` only if the request is still in `expected` status.
   * Returns the updated record, or undefined if someone else changed it first.
   */
  transitionAccessRequest(
    id: string,
    expected: AccessStatus,
    changes: Partial<AccessRequestRecord>,
    audit: AuditEntry,
  ): Promise<AccessRequestRecord | undefined>;
  /**
   * Expires pending requests whose review time ran out at `now`, the `batch` that expired
   * first, in one statement and one transaction with an `access.expire` record each.
   */
  expireAccessRequests(now: number, batch: number): Promise<AccessRequestRecord[]>;
  /** Marks grants whose window closed by `now` as ended (`access.grant_end` each), like expireAccessRequests. */
  endElapsedGrants(now: number, batch: number): Promise<AccessRequestRecord[]>;

  // sessions (one per stream)
  openSession(session: SessionRecord, audit: AuditEntry): Promise<void>;
  closeSession(
    id: string,
    facts: { endedAt: number; bytesToDevice: number; bytesFromDevice: number; closeReason: string },
    audit: AuditEntry,
  ): Promise<void>;
  listSessions(query: { open?: boolean; limit: number }): Promise<SessionRecord[]>;
  /** After a crash: close every session left open, with one audit record each. */
  closeOrphanedSessions(now: number, reason: string): Promise<number>;

  // audit
  appendAudit(entry: AuditEntry): Promise<AuditRecord>;
  queryAudit(query: AuditQuery): Promise<AuditRecord[]>;
  /** Every record in seq order, in batches, for verification and export. */
  scanAudit(afterSeq: number, batchSize: number): Promise<AuditRecord[]>;
  countAudit(): Promise<number>;
  /** Recomputes the whole chain without blocking the caller's event loop (a worker or chunks). */
  verifyAudit(): Promise<ChainReport>;
}
