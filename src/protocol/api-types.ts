/**
 * The JSON shapes the REST API v1 answers with. The hub builds them and the CLI (and any
 * other client) reads them, from this one definition. Times are ISO 8601 strings.
 */

export interface DeviceView {
  name: string;
  tags: Record<string, string>;
  enabled: boolean;
  enrolled: boolean;
  online: boolean;
  lastSeenAt: string | null;
  agentVersion: string | null;
  /** The device's target as its agent reports it (known while online) */
  target: string | null;
  remoteAddress: string | null;
  createdAt: string;
  enrolledAt: string | null;
  activeStreams: number;
  /** The edge (agent host) the device is enrolled on */
  edge: string | null;
}

export interface EdgeView {
  id: string;
  name: string;
  enabled: boolean;
  online: boolean;
  hostname: string | null;
  agentVersion: string | null;
  remoteAddress: string | null;
  lastSeenAt: string | null;
  createdAt: string;
  /** Virtual devices enrolled on this edge */
  devices: string[];
  devicesOnline: number;
}

export interface EnrollmentTokenView {
  name: string;
  enrollmentToken: string;
  expiresAt: string;
}

export interface AccessView {
  id: string;
  principal: string;
  device: string;
  status: 'pending' | 'approved' | 'denied' | 'expired' | 'revoked';
  /** approved and inside its window now */
  active: boolean;
  reason: string;
  durationMs: number;
  createdAt: string;
  requestExpiresAt: string;
  reviewedBy: string | null;
  reviewedAt: string | null;
  reviewNote: string | null;
  autoApproved: boolean;
  grantStartsAt: string | null;
  grantEndsAt: string | null;
  endedAt: string | null;
}

export interface SessionView {
  id: string;
  principal: string;
  device: string;
  target: string | null;
  clientAddress: string;
  grantId: string | null;
  grantEndsAt: string | null;
  startedAt: string;
  joined: boolean;
  bytesToDevice: number;
  bytesFromDevice: number;
}

export interface AuditView {
  seq: number;
  ts: string;
  actor: string;
  action: string;
  device: string | null;
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export interface UserView {
  name: string;
  role: string;
  createdAt: string;
  tokenCreatedAt: string;
}
