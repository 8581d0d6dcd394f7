/**
 * Who holds a secret: pure functions over the allow rules, an edge and the devices enrolled
 * on it, shared by delivery and `secrets status`.
 *
 * An edge is entitled to a secret when a rule names the edge, one of its virtual devices, or
 * a tag one of its devices carries. The entitlement is *active* (the edge receives every new
 * version) when the edge is enabled and, for device and tag rules, the matching device is
 * enabled too; it is *paused* when it holds only through a disabled edge or disabled
 * devices: the edge keeps the version it already holds (apps keep working, as when the hub
 * is away) but is sent nothing new. Anything else is removed from the edge: a rule denied,
 * a device removed or enrolled on another edge, an edge removed.
 *
 * A rule naming a device or an edge is honoured only if it is not older than the device or
 * edge it names: a device added again under a removed one's name, or an edge re-created
 * after removal, inherits nothing (as grants do not).
 */
import type { DeviceRecord, EdgeRecord } from '../store/store.js';
import type { SecretAccessRule } from '../store/vault-store.js';

export type DeviceFacts = Pick<DeviceRecord, 'name' | 'tags' | 'edgeId' | 'enabled' | 'createdAt'>;
export type EdgeFacts = Pick<EdgeRecord, 'id' | 'enabled' | 'createdAt'>;

export interface Entitlement {
  /** Secrets the edge receives, every new version */
  active: Set<string>;
  /** Secrets it may keep as it holds them but receives nothing new for (disabled edge or devices) */
  paused: Set<string>;
}

function deviceMatches(rule: SecretAccessRule, device: DeviceFacts): boolean {
  if (rule.kind === 'device') return rule.subject === device.name && rule.createdAt >= device.createdAt;
  if (rule.kind === 'tag') {
    const at = rule.subject.indexOf('=');
    return device.tags[rule.subject.slice(0, at)] === rule.subject.slice(at + 1);
  }
  return false;
}

/**
 * What an edge (undefined: removed) with these devices is entitled to under these rules
 * (every secret's, or one secret's).
 */
export function entitlementOf(edge: EdgeFacts | undefined, rules: readonly SecretAccessRule[], devicesOfEdge: readonly DeviceFacts[]): Entitlement {
  const active = new Set<string>();
  const paused = new Set<string>();
  if (!edge) return { active, paused };
  const devices = devicesOfEdge.filter((d) => d.edgeId === edge.id);
  for (const rule of rules) {
    if (active.has(rule.name)) continue;
    if (rule.kind === 'edge') {
      if (rule.subject !== edge.id || rule.createdAt < edge.createdAt) continue;
      (edge.enabled ? active : paused).add(rule.name);
      continue;
    }
    for (const device of devices) {
      if (!deviceMatches(rule, device)) continue;
      if (edge.enabled && device.enabled) {
        active.add(rule.name);
        break;
      }
      paused.add(rule.name);
    }
  }
  for (const name of active) paused.delete(name);
  return { active, paused };
}

/** Devices by the edge they are enrolled on. */
export function groupDevicesByEdge<D extends Pick<DeviceRecord, 'edgeId'>>(devices: readonly D[]): Map<string, D[]> {
  const map = new Map<string, D[]>();
  for (const device of devices) {
    if (!device.edgeId) continue;
    const list = map.get(device.edgeId) ?? [];
    list.push(device);
    map.set(device.edgeId, list);
  }
  return map;
}
