/** The monitoring sections of hub.yaml and the agent config: defaults, and every mistake named with its path. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentConfigSchema } from '../../../src/agent/config.js';
import type { DrawbridgeError } from '../../../src/errors.js';
import { parseHubConfig } from '../../../src/hub/config.js';
import { allowedPorts, edgeTags } from '../../../src/monitor/baseline.js';

describe('hub monitoring config', () => {
  it('has Wazuh-like defaults, every rule on', () => {
    const { monitoring } = parseHubConfig({}, 'test');
    assert.equal(monitoring.enabled, true);
    assert.deepEqual(monitoring.rules['ssh-brute-force'], { enabled: true, severity: 'high', failures: 8, window: 120_000 });
    assert.equal(monitoring.rules['telemetry-silent'].after, 15 * 60_000);
    assert.equal(monitoring.retention.maxAge, 30 * 86_400_000);
    assert.equal(monitoring.retention.maxEventsPerEdge, 10_000);
    for (const rule of Object.values(monitoring.findings)) assert.equal(rule.enabled, true);
  });

  it('refuses unknown rules and keys, bad severities and windows, and baseline rules without tags', () => {
    const refused = (value: unknown): string => {
      try {
        parseHubConfig(value, 'hub.yaml');
      } catch (error) {
        assert.equal((error as DrawbridgeError).code, 'CONFIG_INVALID');
        return (error as Error).message;
      }
      assert.fail('accepted');
    };
    assert.match(refused({ monitoring: { rules: { 'ssh-brute-forse': {} } } }), /monitoring\.rules/);
    assert.match(refused({ monitoring: { rules: { 'ssh-brute-force': { severity: 'urgent' } } } }), /monitoring\.rules\.ssh-brute-force\.severity/);
    assert.match(refused({ monitoring: { rules: { 'ssh-brute-force': { window: '5' } } } }), /window/);
    assert.match(refused({ monitoring: { baseline: { allowedPorts: [{ ports: [22] }] } } }), /allowedPorts\.0\.tags/);
    assert.match(refused({ monitoring: { baseline: { allowedPorts: [{ matchAll: true, ports: ['sctp/1'] }] } } }), /ports/);
    assert.match(refused({ monitoring: { retention: { maxAge: '5m' } } }), /maxAge/);
  });

  it('gives an edge the allowed ports of every rule its devices\' tags match', () => {
    const { monitoring } = parseHubConfig({ monitoring: { baseline: { allowedPorts: [{ tags: { site: 'a' }, ports: ['tcp/22'] }, { tags: { role: 'web' }, ports: [443] }, { matchAll: true, ports: ['udp/123'] }] } } }, 'test');
    const tags = edgeTags([{ tags: { site: 'a' } }, { tags: { role: 'db' } }]);
    assert.deepEqual([...(allowedPorts(monitoring.baseline, tags) ?? [])].sort(), ['tcp/22', 'udp/123']);
    assert.equal(allowedPorts(parseHubConfig({}, 'test').monitoring.baseline, tags), undefined, 'no rule: the first report is the baseline');
  });
});

describe('agent monitoring config', () => {
  it('is on by default with a 60 s interval, the default auth log and sshd config', () => {
    const { monitoring } = AgentConfigSchema.parse({});
    assert.equal(monitoring.enabled, true);
    assert.equal(monitoring.interval, 60_000);
    assert.equal(monitoring.authLog, 'auto');
    assert.equal(monitoring.sshdConfig, '/etc/ssh/sshd_config');
    assert.equal(monitoring.eventFlush, 1000);
    assert.deepEqual(monitoring.sshd.command, ['sshd', '-T']);
    assert.equal(monitoring.firewall.command, undefined);
  });

  it('takes a path or journald, per-source intervals and switches, and refuses what it does not know', () => {
    const { monitoring } = AgentConfigSchema.parse({ monitoring: { authLog: 'journald', interval: '5m', ports: { interval: '30s' }, firewall: { enabled: false } } });
    assert.equal(monitoring.authLog, 'journald');
    assert.equal(monitoring.ports.interval, 30_000);
    assert.equal(monitoring.firewall.enabled, false);
    assert.equal(AgentConfigSchema.safeParse({ monitoring: { intervall: '1m' } }).success, false);
    assert.equal(AgentConfigSchema.safeParse({ monitoring: { interval: '10ms' } }).success, false);
    assert.equal(AgentConfigSchema.safeParse({ monitoring: { firewall: { command: [] } } }).success, false);
  });
});
