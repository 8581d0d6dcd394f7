/** The REST shapes of alerts, findings and an edge's posture (src/protocol/api-types.ts). */
import type { AlertView, FindingView, PostureView } from '../protocol/api-types.js';
import type { InventoryRow } from '../protocol/messages/telemetry.js';
import type { AlertRecord, FindingRecord, MonitorEdgeState } from '../store/monitor-store.js';
import { isPermissiveFirewall } from './findings/posture.js';

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

export function alertView(a: AlertRecord, withEvidence = false): AlertView {
  return {
    id: a.id,
    rule: a.rule,
    severity: a.severity,
    edge: a.edgeName,
    status: a.status,
    count: a.count,
    firstSeen: new Date(a.firstSeen).toISOString(),
    lastSeen: new Date(a.lastSeen).toISOString(),
    facts: a.facts,
    ...(withEvidence ? { evidence: a.evidence } : {}),
    ackedBy: a.ackedBy,
    ackedAt: iso(a.ackedAt),
    resolvedBy: a.resolvedBy,
    resolvedAt: iso(a.resolvedAt),
    note: a.note,
  };
}

export function findingView(f: FindingRecord): FindingView {
  return {
    id: f.id,
    rule: f.rule,
    severity: f.severity,
    edge: f.edgeName,
    status: f.status === 'open' && f.mutedAt !== null ? 'muted' : f.status,
    facts: f.facts,
    firstSeen: new Date(f.firstSeen).toISOString(),
    lastSeen: new Date(f.lastSeen).toISOString(),
    resolvedAt: iso(f.resolvedAt),
    mute: f.mutedAt !== null ? { by: f.mutedBy ?? '', at: new Date(f.mutedAt).toISOString(), reason: f.muteReason ?? '' } : null,
  };
}

/** Drops the row key from a single-row inventory for display. */
function fields(row: InventoryRow | undefined): Record<string, unknown> | null {
  if (!row) return null;
  const { k: _k, ...rest } = row;
  return rest;
}

export function postureView(
  state: MonitorEdgeState | undefined,
  rows: { ports: InventoryRow[]; admins: InventoryRow[]; users: InventoryRow[]; sshd: InventoryRow[]; firewall: InventoryRow[]; facts: InventoryRow[]; sources: InventoryRow[] },
  alerts: AlertRecord[],
  findings: FindingRecord[],
  now: number,
): PostureView {
  const facts = fields(rows.facts[0]);
  const bootAt = facts && typeof facts['bootAt'] === 'string' ? Date.parse(facts['bootAt']) : NaN;
  const firewall = rows.firewall[0];
  return {
    lastTelemetryAt: iso(state?.lastTelemetryAt ?? null),
    telemetryBytesReceived: state?.bytesReceived ?? 0,
    eventsDropped: state?.dropped ?? 0,
    facts,
    uptimeSeconds: Number.isNaN(bootAt) ? null : Math.max(0, Math.round((now - bootAt) / 1000)),
    sshd: fields(rows.sshd[0]),
    firewall: firewall ? { ...(fields(firewall) as Record<string, unknown>), permissive: isPermissiveFirewall(firewall) } : null,
    listeningPorts: rows.ports
      .map((r) => ({ protocol: String(r['proto']), address: String(r['addr']), port: Number(r['port']), process: (r['proc'] as string | null) ?? null }))
      .sort((a, b) => a.protocol.localeCompare(b.protocol) || a.port - b.port || a.address.localeCompare(b.address)),
    privilegedAccounts: rows.admins.map((r) => ({ user: String(r['user']), via: String(r['via']) })).sort((a, b) => a.user.localeCompare(b.user)),
    accounts: rows.users.length,
    sources: rows.sources.map((r) => ({ source: r.k, state: String(r['state']), message: (r['message'] as string | null) ?? null })).sort((a, b) => a.source.localeCompare(b.source)),
    openAlerts: alerts.map((a) => alertView(a)),
    findings: findings.map(findingView),
  };
}
