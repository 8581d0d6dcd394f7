/**
 * Edge security monitoring through the real binaries (`drawbridge hub`, `drawbridge agent
 * run`, the CLI), from real inputs: a throwaway OpenSSH server writing its own log (`-E`),
 * driven by the real ssh client (wrong passwords through SSH_ASKPASS, unknown users, a key
 * login as root); a port opened by a real process; the sshd config file read by `sshd -T`;
 * a real nftables ruleset in a network namespace of its own (`ip netns exec NS nft -j list
 * ruleset`; where namespaces are not permitted, a ruleset file printed by `cat`, said in the
 * test's output); account files the collector is pointed at; and a stopped agent
 * (SIGSTOP) for telemetry-silent. Every alert and finding rule is raised and then resolved.
 *
 * Everything that can happen at once does: all inputs change together, then everything is
 * fixed together, so the file costs seconds rather than a minute.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { dump as stringifyYaml, load as parseYaml } from 'js-yaml';
import type { AlertView, EdgeView, FindingView, PostureView } from '../../src/protocol/api-types.js';
import { cleanup, freePort, hubRequest, runCli, runProgram, spawnCli, startHubProcess, tempDir, waitFor, type HubProcess } from '../helpers.js';

const ALERT_RULES = ['ssh-brute-force', 'ssh-password-spray', 'ssh-login-after-failures', 'root-login', 'new-listening-port', 'new-user', 'new-privileged-user', 'firewall-permissive', 'telemetry-silent'];
const FINDING_RULES = ['open-port-all-interfaces', 'permissive-firewall', 'ssh-root-login-allowed', 'ssh-password-auth-allowed', 'ssh-empty-passwords-allowed'];

const DROP_RULESET = 'flush ruleset\ntable inet filter {\n  chain input { type filter hook input priority 0; policy drop; tcp dport 22 accept; }\n}\n';
const OPEN_RULESET = 'flush ruleset\ntable inet filter {\n  chain input { type filter hook input priority 0; policy drop; accept; }\n}\n';

describe('monitoring end to end', { timeout: 120_000 }, () => {
  let hub: HubProcess;
  let dir: string;
  let sshdPort: number;
  let sshdConfig: string;
  let sshdLog: string;
  let clientKey: string;
  let askpass: string;
  let agent: ChildProcess;
  let listener: ChildProcess | undefined;
  let namespace: string | undefined;
  let rulesetFile: string | undefined;
  const files = { passwd: '', group: '' };
  const json = async <T>(args: string[]): Promise<T> => {
    const result = await runCli([...args, '--json'], { env: hub.env });
    assert.equal(result.code, 0, `drawbridge ${args.join(' ')}: ${result.stderr}`);
    return JSON.parse(result.stdout) as T;
  };
  // Polling goes over REST (a CLI process per poll would cost a third of a second each); the
  // commands themselves are run for what they show and do.
  const rest = async <T>(path: string): Promise<T> => {
    const res = await hubRequest(hub, 'GET', path);
    assert.equal(res.status, 200, res.text);
    return res.json as T;
  };
  const alerts = async (): Promise<AlertView[]> => (await rest<{ alerts: AlertView[] }>('/v1/alerts?edge=cabinet-7')).alerts;
  const findings = async (): Promise<FindingView[]> => (await rest<{ findings: FindingView[] }>('/v1/findings?edge=cabinet-7')).findings;

  const setRuleset = async (text: string): Promise<void> => {
    if (namespace) {
      const loaded = await runProgram('ip', ['netns', 'exec', namespace, 'nft', '-f', '-'], { input: text });
      assert.equal(loaded.code, 0, loaded.stderr);
    } else {
      // The same ruleset in nft's JSON form, as `nft -j list ruleset` prints it.
      const acceptAll = text.includes('policy drop; accept;');
      writeFileSync(
        rulesetFile as string,
        JSON.stringify({
          nftables: [
            { chain: { family: 'inet', table: 'filter', name: 'input', type: 'filter', hook: 'input', prio: 0, policy: 'drop' } },
            { rule: { family: 'inet', table: 'filter', chain: 'input', expr: acceptAll ? [{ accept: null }] : [{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 22 } }, { accept: null }] } },
          ],
        }),
      );
    }
  };

  const writeSshdConfig = (insecure: boolean): void => {
    writeFileSync(
      sshdConfig,
      [
        `Port ${sshdPort}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(dir, 'host_ed25519')}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'StrictModes no',
        'UsePAM no',
        'KbdInteractiveAuthentication no',
        `PermitRootLogin ${insecure ? 'yes' : 'no'}`,
        `PasswordAuthentication ${insecure ? 'yes' : 'no'}`,
        `PermitEmptyPasswords ${insecure ? 'yes' : 'no'}`,
        'LogLevel INFO',
        '',
      ].join('\n'),
    );
  };

  const ssh = (args: string[], env: Record<string, string> = {}) =>
    runProgram('ssh', ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=10', '-p', String(sshdPort), ...args], { env, timeoutMs: 20_000 });

  before(async () => {
    dir = tempDir('db-mon-e2e-');
    // A throwaway sshd: passwords allowed (so wrong ones fail), root with a key, its own log file.
    if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    for (const key of ['host_ed25519', 'client_ed25519']) {
      const made = await runProgram('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, key)]);
      assert.equal(made.code, 0, made.stderr);
    }
    clientKey = join(dir, 'client_ed25519');
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${clientKey}.pub`));
    askpass = join(dir, 'askpass.sh');
    writeFileSync(askpass, '#!/bin/sh\necho not-the-password\n', { mode: 0o755 });
    sshdPort = await freePort();
    sshdConfig = join(dir, 'sshd_config');
    sshdLog = join(dir, 'sshd.log');
    writeFileSync(sshdLog, '');
    writeSshdConfig(true);
    const sshd = await runProgram('/usr/sbin/sshd', ['-f', sshdConfig, '-E', sshdLog]);
    assert.equal(sshd.code, 0, `sshd did not start: ${sshd.stderr}`);
    await waitFor(() => readFileSync(sshdLog, 'utf8').includes(`Server listening on 127.0.0.1 port ${sshdPort}`), 10_000, 'sshd to listen');

    files.passwd = join(dir, 'passwd');
    files.group = join(dir, 'group');
    writeFileSync(files.passwd, 'root:x:0:0:root:/root:/bin/bash\nops:x:1000:1000::/home/ops:/bin/bash\n');
    writeFileSync(files.group, 'root:x:0:\nsudo:x:27:ops\n');

    // A real nftables ruleset in a network namespace of the test's own.
    const candidate = `dbmon-${randomBytes(4).toString('hex')}`;
    const made = await runProgram('ip', ['netns', 'add', candidate]).catch(() => ({ code: -1, stderr: 'ip not found', stdout: Buffer.alloc(0) }));
    if (made.code === 0) namespace = candidate;
    else {
      rulesetFile = join(dir, 'ruleset.json');
      process.stdout.write(`# network namespaces not permitted here (${made.stderr.trim()}); the firewall source reads a ruleset file with cat\n`);
    }
    await setRuleset(DROP_RULESET);

    const hubConfig = join(dir, 'hub.yaml');
    writeFileSync(hubConfig, stringifyYaml({ limits: { pingInterval: '10m' }, monitoring: { rules: { 'telemetry-silent': { after: '2s' } } } }));
    hub = await startHubProcess({ config: hubConfig });
    const added = await json<{ enrollmentToken: string }>(['devices', 'add', 'cabinet-7-ssh']);
    const configPath = join(dir, 'agent', 'agent.yaml');
    const enrolled = await runCli(['agent', 'enroll', added.enrollmentToken, '--target', `127.0.0.1:${sshdPort}`, '--edge-name', 'cabinet-7', '--config', configPath], { env: { DRAWBRIDGE_CONFIG_DIR: tempDir() } });
    assert.equal(enrolled.code, 0, enrolled.stderr);
    const config = parseYaml(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    config['monitoring'] = {
      interval: '1s',
      checkpointInterval: '1s',
      authLog: sshdLog,
      sshdConfig,
      users: { passwd: files.passwd, group: files.group },
      firewall: { command: namespace ? ['ip', 'netns', 'exec', namespace, 'nft', '-j', 'list', 'ruleset'] : ['cat', rulesetFile as string] },
    };
    writeFileSync(configPath, stringifyYaml(config));
    agent = (await spawnCli(['agent', 'run', '--config', configPath])).child;
    // Every inventory reported once: the baseline (no alerts for what was already there).
    await waitFor(async () => {
      const shown = await hubRequest(hub, 'GET', '/v1/edges/cabinet-7');
      const posture = shown.status === 200 ? (shown.json as { posture: PostureView }).posture : undefined;
      return Boolean(posture?.sshd && posture.firewall && posture.accounts === 2 && posture.listeningPorts.length > 0 && posture.facts);
    }, 30_000, 'the first inventories');
  });

  after(async () => {
    const pid = existsSync(join(dir, 'sshd.pid')) ? Number(readFileSync(join(dir, 'sshd.pid'), 'utf8')) : 0;
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    if (agent && agent.exitCode === null) agent.kill('SIGCONT');
    listener?.kill();
    await cleanup();
    if (namespace) await runProgram('ip', ['netns', 'del', namespace]).catch(() => undefined);
  });

  it('raises every alert and finding rule from real inputs, and resolves each', async (t) => {
    const started = Date.now();
    const mark = (what: string): void => t.diagnostic(`${what} at ${Date.now() - started} ms`);
    // ---- everything happens at once ----
    const failures = Array.from({ length: 3 }, () =>
      ssh(['-o', 'PreferredAuthentications=password', '-o', 'PubkeyAuthentication=no', '-o', 'NumberOfPasswordPrompts=3', 'root@127.0.0.1', 'true'], { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' }),
    );
    const strangers = ['oracle', 'pi', 'ubnt', 'test', 'guest'].map((user) => ssh(['-o', 'BatchMode=yes', '-o', 'PreferredAuthentications=password', `${user}@127.0.0.1`, 'true']));
    for (const result of await Promise.all([...failures, ...strangers])) assert.notEqual(result.code, 0);
    const login = await ssh(['-i', clientKey, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', 'root@127.0.0.1', 'true']);
    assert.equal(login.code, 0, `the key login failed: ${login.stderr}\n${readFileSync(sshdLog, 'utf8')}`);
    const listenPort = await freePort();
    listener = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${listenPort}, '0.0.0.0')`], { stdio: 'ignore' });
    appendFileSync(files.passwd, 'backdoor:x:0:0::/root:/bin/sh\nintern:x:1001:1001::/home/intern:/bin/bash\n');
    writeFileSync(files.group, 'root:x:0:\nsudo:x:27:ops,intern\n');
    await setRuleset(OPEN_RULESET);

    const byRule = async (): Promise<Map<string, AlertView[]>> => {
      const map = new Map<string, AlertView[]>();
      for (const a of await alerts()) map.set(a.rule, [...(map.get(a.rule) ?? []), a]);
      return map;
    };
    await waitFor(async () => {
      const open = await byRule();
      // Other tests running beside this one open ports of their own: wait for ours.
      const ourPort = open.get('new-listening-port')?.some((a) => a.facts['port'] === listenPort);
      return ourPort === true && ALERT_RULES.filter((r) => r !== 'telemetry-silent').every((r) => open.has(r));
    }, 30_000, 'every alert from the inputs');
    mark('every alert open');
    const opened = await byRule();
    const brute = opened.get('ssh-brute-force')?.[0];
    assert.equal(brute?.facts['sourceAddress'], '127.0.0.1');
    assert.ok((brute?.count ?? 0) >= 8);
    assert.ok(opened.get('ssh-password-spray')?.[0]?.facts['userCount'] as number >= 5);
    assert.equal(opened.get('ssh-login-after-failures')?.[0]?.facts['user'], 'root');
    assert.equal(opened.get('root-login')?.[0]?.facts['method'], 'publickey');
    assert.ok(
      opened.get('new-listening-port')?.some((a) => a.facts['port'] === listenPort && a.facts['process'] === 'node'),
      `no new-listening-port alert for port ${listenPort} owned by node: ${JSON.stringify(opened.get('new-listening-port')?.map((a) => a.facts))}`,
    );
    assert.deepEqual(opened.get('new-user')?.map((a) => a.facts['user']).sort(), ['backdoor', 'intern']);
    assert.deepEqual(opened.get('new-privileged-user')?.map((a) => `${String(a.facts['user'])}/${String(a.facts['via'])}`).sort(), ['backdoor/uid0', 'intern/sudo']);
    for (const a of await json<AlertView[]>(['alerts', 'list', '--edge', 'cabinet-7'])) {
      for (const field of ['id', 'rule', 'severity', 'edge', 'status', 'count', 'firstSeen', 'lastSeen', 'facts'] as const) assert.ok(a[field] !== undefined, `alerts list --json gives ${field}`);
    }
    await waitFor(async () => {
      const open = new Set((await findings()).filter((f) => f.status === 'open').map((f) => f.rule));
      return FINDING_RULES.every((r) => open.has(r));
    }, 20_000, 'every finding');
    const listed = await json<FindingView[]>(['findings', 'list', '--edge', 'cabinet-7', '--status', 'open']);
    for (const f of listed) for (const field of ['id', 'rule', 'severity', 'edge', 'status'] as const) assert.ok(f[field] !== undefined, `findings list --json gives ${field}`);
    const shown = await runCli(['alerts', 'show', brute?.id as string], { env: hub.env });
    assert.equal(shown.code, 0);
    assert.match(shown.stdout, /Failed password for root from 127\.0\.0\.1/);
    const table = await runCli(['edges', 'list'], { env: hub.env });
    assert.match(table.stdout, /ALERTS\s+FINDINGS\s+FAILED LOGINS 24H/);
    const posture = await runCli(['edges', 'show', 'cabinet-7'], { env: hub.env });
    assert.match(posture.stdout, /security posture/);
    assert.match(posture.stdout, /root login yes, passwords yes, empty passwords yes/);

    mark('every finding open');
    // ---- telemetry-silent: the agent stops (SIGSTOP) while its link stays up ----
    agent.kill('SIGSTOP');
    await waitFor(async () => (await alerts()).some((a) => a.rule === 'telemetry-silent' && a.status === 'open'), 20_000, 'telemetry-silent');
    agent.kill('SIGCONT');
    await waitFor(async () => (await alerts()).some((a) => a.rule === 'telemetry-silent' && a.status === 'resolved' && a.resolvedBy === 'hub'), 20_000, 'telemetry-silent to resolve when the agent reports again');

    mark('telemetry-silent raised and resolved');
    // ---- a finding muted with a reason; then everything is fixed at once, and findings resolve by themselves ----
    const portFinding = (await findings()).find((f) => f.rule === 'open-port-all-interfaces' && f.facts['port'] === listenPort);
    assert.ok(portFinding);
    const muted = await json<FindingView>(['findings', 'mute', portFinding.id, '--reason', 'a test listener, going away']);
    assert.equal(muted.status, 'muted');
    assert.equal(muted.mute?.reason, 'a test listener, going away');
    listener?.kill();
    listener = undefined;
    writeSshdConfig(false);
    await setRuleset(DROP_RULESET);
    await waitFor(async () => {
      const now = await findings();
      const resolved = new Set(now.filter((f) => f.status === 'resolved').map((f) => f.rule));
      return FINDING_RULES.every((r) => resolved.has(r)) && now.some((f) => f.id === portFinding.id && f.status === 'resolved');
    }, 20_000, 'every finding to resolve');
    const stillOpen = (await findings()).filter((f) => f.status !== 'resolved' && FINDING_RULES.slice(1).includes(f.rule));
    assert.deepEqual(stillOpen, [], 'nothing of the fixed state is still open');

    mark('every finding resolved');
    // ---- people acknowledge and resolve the alerts ----
    const acked = await json<AlertView>(['alerts', 'ack', brute?.id as string, '--note', 'looking']);
    assert.equal(acked.status, 'acked');
    // This machine is shared: other processes open ports of their own meanwhile, and those are
    // new listening ports too. The test resolves the alerts its own inputs raised.
    const ours = [...opened.values()].flat().filter((a) => a.rule !== 'new-listening-port' || a.facts['port'] === listenPort);
    for (const [i, alert] of ours.entries()) {
      // A few through the command, the rest over REST (the same route), to keep the file quick.
      const resolved =
        i < 2
          ? await json<AlertView>(['alerts', 'resolve', alert.id, '--note', 'handled in the e2e test'])
          : ((await hubRequest(hub, 'POST', `/v1/alerts/${alert.id}/resolve`, { body: { note: 'handled in the e2e test' } })).json as AlertView);
      assert.equal(resolved.status, 'resolved');
      assert.equal(resolved.resolvedBy, 'admin');
    }
    const final = await alerts();
    assert.deepEqual(final.filter((a) => ours.some((o) => o.id === a.id) && a.status !== 'resolved'), []);
    assert.deepEqual([...new Set(final.map((a) => a.rule))].sort(), [...ALERT_RULES].sort(), 'each rule was raised');
    const edges = await json<EdgeView[]>(['edges', 'list']);
    assert.ok((edges.find((e) => e.name === 'cabinet-7')?.monitoring?.failedLogins24h ?? 0) >= 9);

    // Bad input on the CLI is one line and a code.
    const bad = await runCli(['alerts', 'list', '--status', 'bogus'], { env: hub.env });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^drawbridge: --status must be one of open, acked, resolved .*\[VALIDATION_FAILED\]\n$/);
  });
});
