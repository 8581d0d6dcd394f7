/** The inventory sources the agent config switches on, each with its own interval. */
import type { InventorySource } from './source.js';
import type { AgentMonitoringConfig } from './config.js';
import { FactsCollector } from './facts.js';
import { FirewallCollector } from './firewall.js';
import { PortsCollector } from './ports.js';
import { SshdCollector } from './sshd-config.js';
import { UsersCollector } from './users.js';

export function inventorySources(config: AgentMonitoringConfig): InventorySource[] {
  const sources: InventorySource[] = [];
  const every = (own: number | undefined): number => own ?? config.interval;
  if (config.ports.enabled) {
    const ports = new PortsCollector(config.ports.procRoot);
    sources.push({ inventory: 'ports', intervalMs: every(config.ports.interval), collect: () => ports.collect() });
  }
  if (config.users.enabled) {
    // One read of the account files fills both inventories; the second asks for the same read.
    const users = new UsersCollector(config.users.passwd, config.users.group, config.users.privilegedGroups);
    let read: ReturnType<UsersCollector['read']> | undefined;
    const shared = (): ReturnType<UsersCollector['read']> => {
      read ??= users.read().finally(() => setTimeout(() => (read = undefined), 0));
      return read;
    };
    sources.push({ inventory: 'users', intervalMs: every(config.users.interval), collect: async () => (await shared()).users });
    sources.push({ inventory: 'admins', intervalMs: every(config.users.interval), collect: async () => (await shared()).admins });
  }
  if (config.sshd.enabled) {
    const sshd = new SshdCollector(config.sshdConfig, config.sshd.command);
    sources.push({ inventory: 'sshd', intervalMs: every(config.sshd.interval), collect: () => sshd.collect() });
  }
  if (config.firewall.enabled) {
    const firewall = new FirewallCollector(config.firewall.command);
    sources.push({ inventory: 'firewall', intervalMs: every(config.firewall.interval), collect: () => firewall.collect() });
  }
  if (config.facts.enabled) {
    const facts = new FactsCollector(config.ports.procRoot);
    sources.push({ inventory: 'facts', intervalMs: every(config.facts.interval), collect: () => facts.collect() });
  }
  return sources;
}
