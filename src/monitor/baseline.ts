/**
 * Allowed ports per tag: an edge carries every tag of every virtual device it hosts, and a
 * baseline rule applies when each tag it lists is carried by the edge.
 */
import { allowedPortKeys, type MonitoringConfig } from './config.js';

/** Tag name -> every value some device of the edge has. */
export type EdgeTags = ReadonlyMap<string, ReadonlySet<string>>;

export function edgeTags(devices: readonly { tags: Record<string, string> }[]): EdgeTags {
  const tags = new Map<string, Set<string>>();
  for (const device of devices) {
    for (const [key, value] of Object.entries(device.tags)) {
      let values = tags.get(key);
      if (!values) tags.set(key, (values = new Set()));
      values.add(value);
    }
  }
  return tags;
}

/**
 * The ports ("tcp/22", "udp/123") the edge may listen on, or undefined when no rule applies
 * to it (the edge then learns its first report as its baseline).
 */
export function allowedPorts(config: MonitoringConfig['baseline'], tags: EdgeTags): ReadonlySet<string> | undefined {
  let allowed: Set<string> | undefined;
  for (const rule of config.allowedPorts) {
    const applies = rule.matchAll === true || Object.entries(rule.tags).every(([key, value]) => tags.get(key)?.has(value) === true);
    if (!applies) continue;
    allowed ??= new Set();
    for (const spec of rule.ports) for (const key of allowedPortKeys(spec)) allowed.add(key);
  }
  return allowed;
}
