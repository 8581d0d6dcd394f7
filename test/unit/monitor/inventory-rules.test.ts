/** Inventory alert rules and findings, on diffs built by hand. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MonitoringConfigSchema } from '../../../src/monitor/config.js';
import { findingsFor, isPermissiveFirewall } from '../../../src/monitor/findings/posture.js';
import { inventoryAlerts } from '../../../src/monitor/rules/inventory.js';
import type { InventoryName, InventoryRow } from '../../../src/protocol/messages/telemetry.js';
import type { InventoryDiff } from '../../../src/store/monitor-store.js';

const config = MonitoringConfigSchema.parse({});
function diff(inventory: InventoryName, before: InventoryRow[] | undefined, after: InventoryRow[]): InventoryDiff {
  const b = new Map((before ?? []).map((r) => [r.k, r]));
  const a = new Map(after.map((r) => [r.k, r]));
  return {
    inventory,
    first: before === undefined,
    before: b,
    after: a,
    added: after.filter((r) => !b.has(r.k)),
    changed: [],
    removed: [...b.values()].filter((r) => !a.has(r.k)),
  };
}
const fw = (inputPolicy: string, acceptAll = false, dropRules = 0): InventoryRow => ({ k: 'firewall', backend: 'nftables', inputPolicy, acceptAll, dropRules, inputChains: 1 });

describe('inventory alert rules', () => {
  it('new-user and new-privileged-user fire for accounts added after the first report', () => {
    const root = { k: 'root', uid: 0, gid: 0, shell: '/bin/bash' };
    assert.deepEqual(inventoryAlerts(diff('users', undefined, [root]), config.rules, undefined, 1), []);
    const fires = inventoryAlerts(diff('users', [root], [root, { k: 'eve', uid: 1002, gid: 1002, shell: '/bin/sh' }]), config.rules, undefined, 1);
    assert.deepEqual(fires.map((f) => [f.rule, f.key, f.facts['user']]), [['new-user', 'eve', 'eve']]);
    const admins = inventoryAlerts(diff('admins', [], [{ k: 'wheel:eve', user: 'eve', via: 'wheel' }]), config.rules, undefined, 1);
    assert.deepEqual(admins.map((f) => [f.rule, f.severity, f.facts['via']]), [['new-privileged-user', 'high', 'wheel']]);
  });

  it('firewall-permissive fires on the change from filtering to permissive only', () => {
    assert.deepEqual(inventoryAlerts(diff('firewall', undefined, [fw('accept')]), config.rules, undefined, 1), [], 'first report: the finding covers it');
    assert.equal(inventoryAlerts(diff('firewall', [fw('drop')], [fw('accept')]), config.rules, undefined, 1)[0]?.rule, 'firewall-permissive');
    assert.equal(inventoryAlerts(diff('firewall', [fw('drop')], [fw('drop', true)]), config.rules, undefined, 1)[0]?.rule, 'firewall-permissive');
    assert.deepEqual(inventoryAlerts(diff('firewall', [fw('accept')], [fw('accept', true)]), config.rules, undefined, 1), [], 'it already was');
    assert.equal(isPermissiveFirewall(fw('accept', false, 3)), false, 'accept policy with drop rules filters something');
  });

  it('rules switched off raise nothing', () => {
    const off = MonitoringConfigSchema.parse({ rules: { 'new-user': { enabled: false } } }).rules;
    assert.deepEqual(inventoryAlerts(diff('users', [], [{ k: 'eve', uid: 1, gid: 1, shell: 'x' }]), off, undefined, 1), []);
  });
});

describe('findings', () => {
  it('ssh settings: root login (high with passwords, low with keys only), passwords, empty passwords', () => {
    const sshd = (permitRootLogin: string, passwordAuthentication: string, permitEmptyPasswords: string) =>
      new Map([['sshd', { k: 'sshd', permitRootLogin, passwordAuthentication, permitEmptyPasswords, kbdInteractiveAuthentication: 'no', ports: '22', listen: '', from: 'file' } as InventoryRow]]);
    const all = findingsFor('sshd', sshd('yes', 'yes', 'yes'), config.findings, undefined);
    assert.deepEqual(all.holding.map((f) => [f.rule, f.severity]), [['ssh-root-login-allowed', 'high'], ['ssh-password-auth-allowed', 'medium'], ['ssh-empty-passwords-allowed', 'critical']]);
    assert.deepEqual(findingsFor('sshd', sshd('prohibit-password', 'no', 'no'), config.findings, undefined).holding.map((f) => [f.rule, f.severity]), [['ssh-root-login-allowed', 'low']]);
    assert.deepEqual(findingsFor('sshd', sshd('no', 'no', 'no'), config.findings, undefined).holding, []);
    assert.deepEqual(all.rules, ['ssh-root-login-allowed', 'ssh-password-auth-allowed', 'ssh-empty-passwords-allowed']);
  });

  it('ports on all interfaces, one finding per protocol and port, allowed ports left out', () => {
    const rows = new Map<string, InventoryRow>(
      [
        { k: 'tcp/0.0.0.0:22', proto: 'tcp', addr: '0.0.0.0', port: 22, proc: 'sshd' },
        { k: 'tcp/[::]:22', proto: 'tcp', addr: '::', port: 22, proc: 'sshd' },
        { k: 'tcp/127.0.0.1:5432', proto: 'tcp', addr: '127.0.0.1', port: 5432, proc: 'postgres' },
        { k: 'udp/0.0.0.0:123', proto: 'udp', addr: '0.0.0.0', port: 123, proc: null },
      ].map((r) => [r.k, r]),
    );
    const open = findingsFor('ports', rows, config.findings, undefined).holding;
    assert.deepEqual(open.map((f) => [f.key, f.facts['addresses']]), [['tcp/22', ['0.0.0.0', '::']], ['udp/123', ['0.0.0.0']]]);
    assert.deepEqual(findingsFor('ports', rows, config.findings, new Set(['tcp/22'])).holding.map((f) => f.key), ['udp/123']);
  });
});
