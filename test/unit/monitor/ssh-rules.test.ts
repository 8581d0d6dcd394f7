/** The SSH alert rules: thresholds and windows on the edge's event times, per source, bounded. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MonitoringConfigSchema } from '../../../src/monitor/config.js';
import { SshActivity } from '../../../src/monitor/rules/ssh.js';
import type { TelemetryEvent } from '../../../src/protocol/messages/telemetry.js';

const T0 = Date.UTC(2026, 0, 1);
const rules = MonitoringConfigSchema.parse({}).rules;

function failure(src: string, user: string, t: number, n = 1, kind: TelemetryEvent['kind'] = 'ssh.failure'): TelemetryEvent {
  return { kind, t, n, src, user, method: 'password', line: `Failed password for ${user} from ${src}` };
}
const success = (src: string, user: string, t: number): TelemetryEvent => ({ kind: 'ssh.success', t, n: 1, src, user, method: 'publickey', line: `Accepted publickey for ${user} from ${src}` });

describe('ssh-brute-force', () => {
  it('fires at 8 failures from one source within 120 s (Wazuh), counting invalid users, with every failure of the window in the new alert', () => {
    const ssh = new SshActivity(rules);
    const seven = Array.from({ length: 7 }, (_, i) => failure('203.0.113.9', i % 2 ? 'root' : 'admin', T0 + i * 10_000, 1, i % 2 ? 'ssh.failure' : 'ssh.invalid-user'));
    assert.deepEqual(ssh.evaluate(seven, new Set()), []);
    const fires = ssh.evaluate([failure('203.0.113.9', 'root', T0 + 100_000)], new Set());
    assert.equal(fires.length, 1);
    const fire = fires[0]!;
    assert.equal(fire.rule, 'ssh-brute-force');
    assert.equal(fire.key, '203.0.113.9');
    assert.equal(fire.initialCount, 8);
    assert.equal(fire.count, 1);
    assert.equal(fire.severity, 'high');
    assert.deepEqual(fire.facts['sourceAddress'], '203.0.113.9');
    assert.deepEqual(fire.evidence, ['Failed password for root from 203.0.113.9']);
    // Each further failure updates the same alert (count +1).
    assert.equal(ssh.evaluate([failure('203.0.113.9', 'root', T0 + 101_000)], new Set())[0]?.count, 1);
  });

  it('does not fire when the failures are spread wider than the window, or come from different sources', () => {
    const ssh = new SshActivity(rules);
    const slow = Array.from({ length: 12 }, (_, i) => failure('198.51.100.1', 'root', T0 + i * 20_000));
    assert.deepEqual(ssh.evaluate(slow, new Set()).filter((f) => f.rule === 'ssh-brute-force'), [], '12 failures 20 s apart: at most 7 within any 120 s');
    const spread = Array.from({ length: 20 }, (_, i) => failure(`198.51.100.${10 + i}`, 'root', T0 + i));
    assert.deepEqual(ssh.evaluate(spread, new Set()), []);
  });

  it('counts an aggregated event by its hit count', () => {
    const ssh = new SshActivity(rules);
    const fires = ssh.evaluate([{ ...failure('192.0.2.1', 'root', T0, 40), last: T0 + 2000 }], new Set());
    assert.equal(fires[0]?.rule, 'ssh-brute-force');
    assert.equal(fires[0]?.initialCount, 40);
  });

  it('follows the configured threshold and window, and can be turned off', () => {
    const custom = MonitoringConfigSchema.parse({ rules: { 'ssh-brute-force': { failures: 3, window: '10s' } } }).rules;
    const ssh = new SshActivity(custom);
    assert.equal(ssh.evaluate([failure('192.0.2.2', 'a', T0), failure('192.0.2.2', 'a', T0 + 1000), failure('192.0.2.2', 'a', T0 + 2000)], new Set())[0]?.rule, 'ssh-brute-force');
    const off = MonitoringConfigSchema.parse({ rules: { 'ssh-brute-force': { enabled: false } } }).rules;
    assert.deepEqual(new SshActivity(off).evaluate(Array.from({ length: 20 }, () => failure('192.0.2.3', 'root', T0)), new Set()).filter((f) => f.rule === 'ssh-brute-force'), []);
  });
});

describe('ssh-password-spray', () => {
  it('fires when one source fails for 5 different users within 10 minutes', () => {
    const ssh = new SshActivity(rules);
    const users = ['alice', 'bob', 'carol', 'dave'];
    assert.deepEqual(ssh.evaluate(users.map((u, i) => failure('192.0.2.50', u, T0 + i * 60_000)), new Set()).filter((f) => f.rule === 'ssh-password-spray'), []);
    const fires = ssh.evaluate([failure('192.0.2.50', 'erin', T0 + 5 * 60_000)], new Set()).filter((f) => f.rule === 'ssh-password-spray');
    assert.equal(fires.length, 1);
    assert.equal(fires[0]?.facts['userCount'], 5);
    assert.deepEqual(fires[0]?.facts['users'], ['alice', 'bob', 'carol', 'dave', 'erin']);
  });
});

describe('ssh-login-after-failures and root-login', () => {
  it('fires on a success from a source with 3 failures in the previous 10 minutes, keyed by source and user', () => {
    const ssh = new SshActivity(rules);
    ssh.evaluate([failure('192.0.2.7', 'deploy', T0), failure('192.0.2.7', 'deploy', T0 + 1000)], new Set());
    assert.deepEqual(ssh.evaluate([success('192.0.2.7', 'deploy', T0 + 2000)], new Set()), [], 'two failures are not enough');
    ssh.evaluate([failure('192.0.2.7', 'deploy', T0 + 3000)], new Set());
    const fires = ssh.evaluate([success('192.0.2.7', 'deploy', T0 + 4000)], new Set());
    assert.equal(fires.length, 1);
    assert.equal(fires[0]?.rule, 'ssh-login-after-failures');
    assert.equal(fires[0]?.key, '192.0.2.7 deploy');
    assert.equal(fires[0]?.facts['failuresBefore'], 3);
    assert.equal(fires[0]?.severity, 'critical');
    // Failures older than the window do not count.
    assert.deepEqual(ssh.evaluate([success('192.0.2.7', 'deploy', T0 + 11 * 60_000)], new Set()), []);
  });

  it('fires root-login for root and for any other uid-0 account', () => {
    const ssh = new SshActivity(rules);
    assert.equal(ssh.evaluate([success('10.0.0.5', 'root', T0)], new Set())[0]?.rule, 'root-login');
    assert.deepEqual(ssh.evaluate([success('10.0.0.5', 'toor', T0)], new Set()), []);
    const fires = ssh.evaluate([success('10.0.0.5', 'toor', T0)], new Set(['toor']));
    assert.equal(fires[0]?.rule, 'root-login');
    assert.equal(fires[0]?.key, 'toor 10.0.0.5');
  });
});

describe('bounds', () => {
  it('tracks a bounded number of sources, forgetting the least recently seen', () => {
    const ssh = new SshActivity(rules, 100);
    ssh.evaluate(Array.from({ length: 1000 }, (_, i) => failure(`10.1.${i >> 8}.${i & 255}`, 'root', T0 + i)), new Set());
    assert.equal(ssh.trackedSources, 100);
  });
});
