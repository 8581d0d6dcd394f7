/**
 * Alert rules over inventory changes: a new listening port, a new account, a new privileged
 * account, the firewall turning permissive. The first report of an inventory is the edge's
 * baseline and raises nothing, except ports outside the allowed ports of the edge's tags
 * when a baseline rule applies to it.
 */
import type { AlertFire, InventoryDiff } from '../../store/monitor-store.js';
import type { MonitoringConfig } from '../config.js';
import { isPermissiveFirewall, portKey } from '../findings/posture.js';

export function inventoryAlerts(diff: InventoryDiff, rules: MonitoringConfig['rules'], allowed: ReadonlySet<string> | undefined, at: number): AlertFire[] {
  const fires: AlertFire[] = [];
  switch (diff.inventory) {
    case 'ports': {
      const rule = rules['new-listening-port'];
      if (!rule.enabled || (diff.first && !allowed)) break;
      for (const row of diff.added) {
        if (allowed?.has(portKey(row))) continue;
        fires.push({
          rule: 'new-listening-port',
          key: row.k,
          severity: rule.severity,
          facts: { protocol: row['proto'], address: row['addr'], port: row['port'], process: row['proc'] ?? null },
          count: 1,
          at,
          evidence: [`${String(row['proto'])} ${String(row['addr'])}:${String(row['port'])} listening${row['proc'] ? ` (${String(row['proc'])})` : ''}`],
        });
      }
      break;
    }
    case 'users': {
      const rule = rules['new-user'];
      if (!rule.enabled || diff.first) break;
      for (const row of diff.added) {
        fires.push({
          rule: 'new-user',
          key: row.k,
          severity: rule.severity,
          facts: { user: row.k, uid: row['uid'], shell: row['shell'] },
          count: 1,
          at,
          evidence: [`account ${row.k} (uid ${String(row['uid'])}, shell ${String(row['shell'])}) appeared`],
        });
      }
      break;
    }
    case 'admins': {
      const rule = rules['new-privileged-user'];
      if (!rule.enabled || diff.first) break;
      for (const row of diff.added) {
        fires.push({
          rule: 'new-privileged-user',
          key: row.k,
          severity: rule.severity,
          facts: { user: row['user'], via: row['via'] },
          count: 1,
          at,
          evidence: [row['via'] === 'uid0' ? `account ${String(row['user'])} has uid 0` : `${String(row['user'])} joined group ${String(row['via'])}`],
        });
      }
      break;
    }
    case 'firewall': {
      const rule = rules['firewall-permissive'];
      if (!rule.enabled || diff.first) break;
      const before = diff.before.get('firewall');
      const after = diff.after.get('firewall');
      if (before && after && !isPermissiveFirewall(before) && isPermissiveFirewall(after)) {
        fires.push({
          rule: 'firewall-permissive',
          key: 'firewall',
          severity: rule.severity,
          facts: { backend: after['backend'], inputPolicy: after['inputPolicy'], acceptAll: after['acceptAll'], dropRules: after['dropRules'], previousPolicy: before['inputPolicy'] },
          count: 1,
          at,
          evidence: [`input policy ${String(before['inputPolicy'])} -> ${String(after['inputPolicy'])}; accept-all rule: ${after['acceptAll'] ? 'yes' : 'no'}; drop/reject rules: ${String(after['dropRules'])}`],
        });
      }
      break;
    }
    default:
      break;
  }
  return fires;
}
