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

/** A secret's metadata: never its value. */
export interface SecretView {
  name: string;
  currentVersion: number;
  /** The current version is neither deleted nor destroyed: edges allowed it hold it */
  live: boolean;
  versions: number;
  rules: number;
  createdAt: string;
  updatedAt: string;
}

export interface SecretVersionView {
  version: number;
  createdAt: string;
  createdBy: string;
  size: number;
  deletedAt: string | null;
  destroyedAt: string | null;
}

export interface SecretRuleView {
  kind: 'edge' | 'device' | 'tag';
  /** edge name, device name, or key=value */
  subject: string;
  createdAt: string;
  createdBy: string;
}

export interface SecretDetailView extends Omit<SecretView, 'versions' | 'rules'> {
  versions: SecretVersionView[];
  rules: SecretRuleView[];
}

export interface SecretStatusEdgeView {
  edge: string;
  /** Virtual devices the edge hosts */
  devices: string[];
  /** The version the edge acknowledged storing, or null */
  version: number | null;
  deliveredAt: string | null;
  /** When an app on the edge last read it (reported in batches) */
  lastReadAt: string | null;
  reads: number;
  /** Allowed now: receives every new version */
  allowed: boolean;
  /** Allowed only through a disabled edge or disabled devices: keeps the version it holds, receives nothing new */
  paused: boolean;
  /** The version it should hold; equal to `version` once delivered (null while allowed: the secret is deleted) */
  wantedVersion: number | null;
  online: boolean;
}

export interface SecretStatusView {
  name: string;
  currentVersion: number;
  edges: SecretStatusEdgeView[];
}

/** A secret an edge holds (edges show). */
export interface EdgeSecretView {
  name: string;
  version: number;
  deliveredAt: string;
  lastReadAt: string | null;
  reads: number;
}
