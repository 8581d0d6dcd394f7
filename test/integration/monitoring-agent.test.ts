/**
 * The agent's collector against a real hub, in process: every source reads real files and
 * runs real commands pointed at a temp directory (an auth log, account files, an sshd
 * config, a ruleset printed by `cat`), so a test changes the edge's state by writing files.
 * Alerts open within seconds of a log line; findings resolve when the state is fixed; events
 * written while the hub is down wait in the on-disk queue and arrive when it is back.
 */
import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dump as stringifyYaml, load as parseYaml } from 'js-yaml';
import type { AgentHandle } from '../../src/agent/agent.js';
import type { AlertView, FindingView, PostureView } from '../../src/protocol/api-types.js';
import { startHub, readAdminToken } from '../../src/hub/hub.js';
import { HubClient } from '../../src/client/hub-client.js';
import { silentLogger } from '../../src/util/logger.js';
import { startHarness, type Harness } from './stream-harness.js';

async function until<T>(check: () => Promise<T | undefined | false>, what: string, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const nft = (policy: string, acceptAll = false) =>
  JSON.stringify({
    nftables: [
      { table: { family: 'inet', name: 'filter', handle: 1 } },
      { chain: { family: 'inet', table: 'filter', name: 'input', handle: 1, type: 'filter', hook: 'input', prio: 0, policy } },
      ...(acceptAll ? [{ rule: { family: 'inet', table: 'filter', chain: 'input', handle: 2, expr: [{ accept: null }] } }] : []),
    ],
  });

describe('monitoring: agent collector to hub', { timeout: 120_000 }, () => {
  let h: Harness;
  let agent: AgentHandle;
  let dir: string;
  let configPath: string;
  const files = { authLog: '', passwd: '', group: '', sshd: '', ruleset: '' };
  const alerts = async (client: HubClient, query = ''): Promise<AlertView[]> => (await client.request<{ alerts: AlertView[] }>('GET', `/v1/alerts${query}`)).alerts;
  const findings = async (query = ''): Promise<FindingView[]> => (await h.admin.request<{ findings: FindingView[] }>('GET', `/v1/findings${query}`)).findings;

  before(async () => {
    h = await startHarness();
    dir = h.dir;
    configPath = await h.enroll('cabinet-1', '127.0.0.1:9', { edgeName: 'cabinet' });
    Object.assign(files, {
      authLog: join(dir, 'auth.log'),
      passwd: join(dir, 'passwd'),
      group: join(dir, 'group'),
      sshd: join(dir, 'sshd_config'),
      ruleset: join(dir, 'ruleset.json'),
    });
    writeFileSync(files.authLog, 'Mar  3 09:00:00 cab sshd[1]: Server listening on 0.0.0.0 port 22.\n');
    writeFileSync(files.passwd, 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n');
    writeFileSync(files.group, 'root:x:0:\nsudo:x:27:alice\n');
    writeFileSync(files.sshd, 'PermitRootLogin yes\nPasswordAuthentication no\n');
    writeFileSync(files.ruleset, nft('drop'));
    const config = parseYaml(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    config['monitoring'] = {
      interval: '1s',
      checkpointInterval: '5s',
      eventFlush: '200ms',
      authLog: files.authLog,
      sshdConfig: files.sshd,
      logins: { poll: '250ms' },
      users: { passwd: files.passwd, group: files.group },
      sshd: { command: null },
      firewall: { command: ['cat', files.ruleset] },
    };
    config['limits'] = { reconnectMaxDelay: '500ms' };
    writeFileSync(configPath, stringifyYaml(config));
    agent = await h.startAgent(configPath);
  });
  after(async () => {
    await h?.close();
  });

  it('reports every inventory, and the hub opens the findings the state calls for', async () => {
    const posture = await until(async () => {
      const p = (await h.admin.request<{ posture: PostureView }>('GET', '/v1/edges/cabinet')).posture;
      return p.sshd && p.firewall && p.facts && p.accounts === 2 && p.listeningPorts.length > 0 ? p : undefined;
    }, 'the first inventories');
    assert.equal(posture.sshd?.['from'], 'file');
    assert.equal(posture.firewall?.permissive, false);
    assert.deepEqual(posture.privilegedAccounts, [{ user: 'alice', via: 'sudo' }, { user: 'root', via: 'uid0' }]);
    assert.equal(posture.sources.find((s) => s.source === 'logins')?.state, 'ok');
    assert.ok(posture.listeningPorts.length > 0, 'the real /proc of this machine');
    const open = (await findings('?status=open')).map((f) => f.rule);
    assert.ok(open.includes('ssh-root-login-allowed'));
    assert.ok(!open.includes('ssh-password-auth-allowed'));
    assert.ok(!open.includes('permissive-firewall'));
  });

  it('turns failed logins written to the auth log into a brute-force alert within seconds', async () => {
    const written = Date.now();
    for (let i = 0; i < 8; i++) appendFileSync(files.authLog, `Mar  3 10:00:0${i} cab sshd[77]: Failed password for root from 203.0.113.44 port ${40000 + i} ssh2\n`);
    const alert = await until(async () => (await alerts(h.admin, '?rule=ssh-brute-force'))[0], 'the brute-force alert');
    assert.equal(alert.facts['sourceAddress'], '203.0.113.44');
    assert.equal(alert.count, 8);
    assert.ok(Date.now() - written < 15_000, `log line to alert took ${Date.now() - written} ms`);
    const shown = await h.admin.request<AlertView>('GET', `/v1/alerts/${alert.id}`);
    assert.ok(shown.evidence?.[0]?.includes('Failed password for root from 203.0.113.44'));
  });

  it('raises new-user and new-privileged-user when the account files change', async () => {
    appendFileSync(files.passwd, 'mallory:x:0:0::/root:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/bash\n');
    writeFileSync(files.group, 'root:x:0:\nsudo:x:27:alice,bob\n');
    const rules = await until(async () => {
      const list = (await alerts(h.admin, '?status=open')).map((a) => `${a.rule} ${String(a.facts['user'])}`);
      return list.filter((r) => r.startsWith('new-')).length >= 4 ? list : undefined;
    }, 'the account alerts');
    for (const expected of ['new-user mallory', 'new-user bob', 'new-privileged-user mallory', 'new-privileged-user bob']) assert.ok(rules.includes(expected), `${expected} in ${rules.join(', ')}`);
  });

  it('follows sshd and firewall changes: findings resolve when fixed, firewall-permissive when it opens up', async () => {
    writeFileSync(files.sshd, 'PermitRootLogin no\nPasswordAuthentication no\n');
    await until(async () => (await findings('?status=resolved')).some((f) => f.rule === 'ssh-root-login-allowed'), 'the root-login finding to resolve');
    writeFileSync(files.ruleset, nft('drop', true));
    const alert = await until(async () => (await alerts(h.admin, '?rule=firewall-permissive'))[0], 'firewall-permissive');
    assert.equal(alert.facts['acceptAll'], true);
    assert.ok((await findings('?status=open')).some((f) => f.rule === 'permissive-firewall'));
    writeFileSync(files.ruleset, nft('drop'));
    await until(async () => (await findings('?status=resolved')).some((f) => f.rule === 'permissive-firewall'), 'the firewall finding to resolve');
  });

  it('queues events on disk while the hub is down and delivers them when it is back', async () => {
    const { port, dataDir } = h.hub;
    const before = (await alerts(h.admin, '?rule=ssh-brute-force'))[0]?.count ?? 0;
    await h.hub.close();
    for (let i = 0; i < 5; i++) appendFileSync(files.authLog, `Mar  3 10:01:0${i} cab sshd[78]: Failed password for root from 203.0.113.44 port ${41000 + i} ssh2\n`);
    const queueDir = join(dir, 'agent-1', 'monitoring', 'queue');
    await until(async () => readdirSync(queueDir).some((f) => /^\d{16}-\d+\.json$/.test(f)), 'a batch queued on disk');
    const hub = await startHub({ dataDir, host: '127.0.0.1', port, logger: silentLogger(), config: h.hub.services.config });
    const admin = await HubClient.connect({ hubUrl: hub.url, token: readAdminToken(dataDir), caPin: hub.caPin });
    try {
      const alert = await until(async () => {
        const a = (await alerts(admin, '?rule=ssh-brute-force'))[0];
        return a && a.count >= before + 5 ? a : undefined;
      }, 'the queued failures to arrive');
      assert.equal(alert.count, before + 5);
      await until(async () => !readdirSync(queueDir).some((f) => /^\d{16}-\d+\.json$/.test(f)), 'the queue to empty');
      assert.equal(agent.telemetry?.droppedEvents, 0);
    } finally {
      admin.close();
      await agent.close();
      await hub.close();
    }
  });
});
