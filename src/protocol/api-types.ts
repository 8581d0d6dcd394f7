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
  /** Security monitoring at a glance (null for roles that may not read monitoring). */
  monitoring?: EdgeMonitoringView | null;
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

// ---- edge security monitoring ----

export type SeverityName = 'low' | 'medium' | 'high' | 'critical';

export interface EdgeMonitoringView {
  openAlerts: number;
  alertsBySeverity: Partial<Record<SeverityName, number>>;
  /** Open findings that are not muted */
  openFindings: number;
  /** Failed SSH logins (and attempts for unknown users) in the last 24 hours */
  failedLogins24h: number;
}

export interface AlertView {
  id: string;
  rule: string;
  severity: SeverityName;
  edge: string;
  status: 'open' | 'acked' | 'resolved';
  count: number;
  firstSeen: string;
  lastSeen: string;
  /** Key facts: sourceAddress, user, port, ... as the rule found them */
  facts: Record<string, unknown>;
  /** The log lines or state that made the rule fire (alerts show only) */
  evidence?: string[];
  ackedBy: string | null;
  ackedAt: string | null;
  resolvedBy: string | null;
  resolvedAt: string | null;
  note: string | null;
}

export interface FindingView {
  id: string;
  rule: string;
  severity: SeverityName;
  edge: string;
  /** muted: open, but muted on this edge with a reason */
  status: 'open' | 'resolved' | 'muted';
  facts: Record<string, unknown>;
  firstSeen: string;
  lastSeen: string;
  resolvedAt: string | null;
  mute: { by: string; at: string; reason: string } | null;
}

/** An edge's security posture, as its collector last reported it (edges show). */
export interface PostureView {
  lastTelemetryAt: string | null;
  telemetryBytesReceived: number;
  /** Events the edge dropped because its offline queue overflowed */
  eventsDropped: number;
  facts: Record<string, unknown> | null;
  uptimeSeconds: number | null;
  sshd: Record<string, unknown> | null;
  firewall: (Record<string, unknown> & { permissive: boolean }) | null;
  listeningPorts: { protocol: string; address: string; port: number; process: string | null }[];
  privilegedAccounts: { user: string; via: string }[];
  accounts: number;
  /** What each collector source could read, and why not */
  sources: { source: string; state: string; message: string | null }[];
  openAlerts: AlertView[];
  findings: FindingView[];
}
