/**
 * Who receives a secret: an edge does when it is allowed by id, when one of its virtual
 * devices is allowed by name, or when one of its devices carries an allowed tag. Pure
 * functions over the rules and the devices, shared by delivery and `secrets status`.
 */
import type { DeviceRecord } from '../store/store.js';
import type { SecretAccessRule } from '../store/vault-store.js';

type DeviceFacts = Pick<DeviceRecord, 'name' | 'tags' | 'edgeId'>;

function deviceMatches(rule: SecretAccessRule, device: DeviceFacts): boolean {
  if (rule.kind === 'device') return rule.subject === device.name;
  if (rule.kind === 'tag') {
    const at = rule.subject.indexOf('=');
    return device.tags[rule.subject.slice(0, at)] === rule.subject.slice(at + 1);
  }
  return false;
}

/** Does this edge (with these devices) receive a secret under these rules (the secret's own)? */
export function edgeAllowed(rules: readonly SecretAccessRule[], edgeId: string, devices: readonly DeviceFacts[]): boolean {
  return rules.some((rule) => (rule.kind === 'edge' ? rule.subject === edgeId : devices.some((d) => d.edgeId === edgeId && deviceMatches(rule, d))));
}

/** Every edge a secret's rules reach. */
export function edgesAllowed(rules: readonly SecretAccessRule[], devices: readonly DeviceFacts[]): Set<string> {
  const edges = new Set<string>();
  for (const rule of rules) {
    if (rule.kind === 'edge') edges.add(rule.subject);
    else for (const device of devices) if (device.edgeId && deviceMatches(rule, device)) edges.add(device.edgeId);
  }
  return edges;
}

/** The names of the secrets an edge may hold, from every rule. */
export function secretsAllowedFor(edgeId: string, rules: readonly SecretAccessRule[], devicesOfEdge: readonly DeviceFacts[]): Set<string> {
  const names = new Set<string>();
  for (const rule of rules) {
    if (names.has(rule.name)) continue;
    if (rule.kind === 'edge' ? rule.subject === edgeId : devicesOfEdge.some((d) => deviceMatches(rule, d))) names.add(rule.name);
  }
  return names;
}

/** Devices by the edge they are enrolled on. */
export function groupDevicesByEdge<D extends DeviceFacts>(devices: readonly D[]): Map<string, D[]> {
  const map = new Map<string, D[]>();
  for (const device of devices) {
    if (!device.edgeId) continue;
    const list = map.get(device.edgeId) ?? [];
    list.push(device);
    map.set(device.edgeId, list);
  }
  return map;
}
