/**
 * The `drawbridge` command as users meet it: the real binary against a hub (started in this
 * process, so only the CLI is spawned), help for every command, what each command prints
 * (tables, fields, tokens shown once, JSON), the one-line error contract with exit codes,
 * login and its file, `access request --wait`, `audit verify/export/tail`, `connect` and
 * `proxy`, and the hub's HTTP endpoints checked with curl over verified TLS. What the hub
 * does behind these commands is tested in process (test/integration).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { AccessView, AuditView, DeviceView } from '../../src/protocol/api-types.js';
import type { HubClient } from '../../src/client/hub-client.js';
import { BIN, cleanup, runCli, runProgram, secretOf, spawnCli, startConnect, stopProcess, tempDir, waitFor, type CliResult } from '../helpers.js';
import { echoServer, startHarness, type Harness } from '../integration/stream-harness.js';

const PACKAGE = JSON.parse(readFileSync(join(dirname(BIN), '..', 'package.json'), 'utf8')) as { version: string };
const ONE_LINE = (code: string): RegExp => new RegExp(`^drawbridge: [^\\n]+ \\[${code}\\]\\n$`);

/** Every command and subcommand the CLI must offer (each one must answer --help). */
const COMMANDS: string[][] = [
  ['hub'], ['login'],
  ['devices'], ['devices', 'add'], ['devices', 'list'], ['devices', 'show'], ['devices', 'remove'], ['devices', 'enable'], ['devices', 'disable'], ['devices', 'enroll-token'],
  ['edges'], ['edges', 'list'], ['edges', 'show'], ['edges', 'disable'], ['edges', 'enable'], ['edges', 'remove'],
  ['agent'], ['agent', 'enroll'], ['agent', 'run'],
  ['connect'], ['proxy'], ['ssh'],
  ['users'], ['users', 'add'], ['users', 'list'], ['users', 'remove'],
  ['tokens'], ['tokens', 'rotate'],
  ['access'], ['access', 'request'], ['access', 'list'], ['access', 'show'], ['access', 'approve'], ['access', 'deny'], ['access', 'revoke'],
  ['sessions'], ['sessions', 'list'], ['sessions', 'kill'],
  ['audit'], ['audit', 'list'], ['audit', 'tail'], ['audit', 'export'], ['audit', 'verify'], ['audit', 'checkpoint'],
  ['demo'],
];

/** Runs `node bin/drawbridge.js ARGS` (the installed entry point, not the module behind it). */
function runBin(args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Subcommand names in a commander help text ("Commands:" section, without "help"). */
function listedCommands(help: string): string[] {
  const section = help.split(/^Commands:\n/m)[1];
  if (!section) return [];
  return (section.split('\n\n')[0] ?? '')
    .split('\n')
    .map((line) => /^ {2}([a-z][a-z-]*)/.exec(line)?.[1])
    .filter((name): name is string => Boolean(name) && name !== 'help');
}

/** Asserts a one-line failure with `code`, no stack trace, nothing on stdout. */
function assertOneLine(result: CliResult, code: string, message?: RegExp): void {
  assert.equal(result.code, 1, `expected exit 1, got ${result.code}: ${result.stderr}`);
  assert.match(result.stderr, ONE_LINE(code));
  if (message) assert.match(result.stderr, message);
  assert.equal(result.stdout, '');
}

const mode = (path: string): number => statSync(path).mode & 0o777;

describe('the drawbridge binary', { timeout: 60_000 }, () => {
  after(cleanup);

  it('prints help and its version', async () => {
    const [help, version] = await Promise.all([runBin(['--help']), runBin(['--version'])]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: drawbridge /);
    for (const name of ['hub', 'login', 'devices', 'agent', 'connect', 'proxy', 'ssh', 'demo']) assert.ok(listedCommands(help.stdout).includes(name), `--help lists ${name}`);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), PACKAGE.version);
  });

  it('answers --help with exit 0 for every command and subcommand', async () => {
    // Walk the tree the CLI itself reports, so a command added later is covered too.
    const seen = new Map<string, string>();
    const queue: string[][] = [[]];
    while (queue.length > 0) {
      const batch = queue.splice(0, 8);
      const results = await Promise.all(batch.map((path) => runCli([...path, '--help'])));
      results.forEach((result, i) => {
        const path = batch[i] as string[];
        assert.equal(result.code, 0, `drawbridge ${path.join(' ')} --help exited ${result.code}: ${result.stderr}`);
        assert.match(result.stdout, new RegExp(`^Usage: drawbridge${path.map((p) => ` ${p}`).join('')}\\b`), `usage line of ${path.join(' ')}`);
        seen.set(path.join(' '), result.stdout);
        for (const sub of listedCommands(result.stdout)) queue.push([...path, sub]);
      });
    }
    for (const command of COMMANDS) assert.ok(seen.has(command.join(' ')), `drawbridge ${command.join(' ')} exists and has --help`);
  });

  it('fails with one line and a code, and shows the stack only with --debug', async () => {
    const [failed, debug] = await Promise.all([runCli(['devices', 'add', 'Bad_Name']), runCli(['devices', 'add', 'Bad_Name', '--debug'])]);
    assertOneLine(failed, 'INVALID_NAME', /invalid device name "Bad_Name"/);
    assert.equal(debug.code, 1);
    assert.match(debug.stderr, /^drawbridge: [^\n]+ \[INVALID_NAME\]\n/);
    assert.match(debug.stderr, /\n\s+at .+\.js:\d+:\d+/, 'stack trace with --debug');
  });

  it('runs the demo once: exit 0, "OK", and leaves no temporary files', async () => {
    const tmp = tempDir('db-demo-tmp-');
    // As a user runs it: no log level set, so only the demo's own lines.
    const demo = await runCli(['demo', '--once'], { env: { TMPDIR: tmp, DRAWBRIDGE_LOG_LEVEL: '' } });
    assert.equal(demo.code, 0, demo.stderr);
    assert.match(demo.stdout, /^starting a hub/);
    assert.match(demo.stdout, /through hub and agent: HTTP 200.* -> OK\b/);
    assert.match(demo.stdout, /read by an app over .*agent\.sock -> OK\b/);
    assert.match(demo.stdout, /alert ssh-brute-force \(\w+\) open on the hub/);
    assert.equal(demo.stderr, '', 'no log lines on stderr');
    assert.deepEqual(readdirSync(tmp), []);
  });
});

describe('drawbridge against a hub', { timeout: 90_000 }, () => {
  let h: Harness;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let env: Record<string, string>;
  let appr: { token: string; client: HubClient };
  let op: { token: string; client: HubClient };
  const as = (token: string): Record<string, string> => ({ ...env, DRAWBRIDGE_TOKEN: token });
  const ok = async (args: string[], asEnv = env): Promise<CliResult> => {
    const result = await runCli(args, { env: asEnv });
    assert.equal(result.code, 0, `drawbridge ${args.join(' ')}: ${result.stderr}`);
    return result;
  };
  const json = async <T>(args: string[], asEnv = env): Promise<T> => JSON.parse((await ok([...args, '--json'], asEnv)).stdout) as T;

  before(async () => {
    h = await startHarness();
    echo = await echoServer();
    await h.startAgent(await h.enroll('plc-7-ssh', `127.0.0.1:${echo.port}`, { tags: { site: 'lab', line: '7' } }));
    [appr, op] = await Promise.all([h.user('appr', 'approver'), h.user('op', 'operator')]);
    env = { DRAWBRIDGE_HUB: h.hub.url, DRAWBRIDGE_TOKEN: h.hub.bootstrapAdminToken as string, DRAWBRIDGE_CA_PIN: h.hub.caPin, DRAWBRIDGE_CONFIG_DIR: tempDir('db-cfg-') };
  });

  after(async () => {
    await cleanup();
    await h?.close();
    await echo?.close();
  });

  it('users: add prints the token once, list is a token-free table, a bad role is refused before the hub is asked', async () => {
    const added = await ok(['users', 'add', 'printed', '--role', 'auditor']);
    assert.match(added.stdout, /^user "printed" \(auditor\) added\. API token \(shown once\):\n {2}dbp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n$/);
    const token = (/(dbp_\S+)/.exec(added.stdout) as RegExpExecArray)[1] as string;
    const [list, badRole] = await Promise.all([ok(['users', 'list']), runCli(['users', 'add', 'bad', '--role', 'superuser'], { env })]);
    assert.match(list.stdout, /^NAME\s+ROLE\s+CREATED\s+TOKEN ISSUED\n/);
    assert.match(list.stdout, /^printed\s+auditor\s+/m);
    for (const t of [token, h.hub.bootstrapAdminToken as string]) assert.ok(!list.stdout.includes(secretOf(t)));
    assertOneLine(badRole, 'VALIDATION_FAILED', /invalid role "superuser"/);
  });

  it('devices: add --json prints exactly name, enrollmentToken and expiresAt; list, show, disable, enable and remove print what happened', async () => {
    const added = await json<Record<string, string>>(['devices', 'add', 'plc-8-web', '--tag', 'site=lab', '--ttl', '10m']);
    assert.deepEqual(Object.keys(added).sort(), ['enrollmentToken', 'expiresAt', 'name']);
    const expiresInMs = Date.parse(added['expiresAt'] ?? '') - Date.now();
    assert.ok(expiresInMs > 8 * 60_000 && expiresInMs <= 10 * 60_000, `expiresAt ${added['expiresAt']}`);
    const [again, table, shown, shownJson] = await Promise.all([
      runCli(['devices', 'add', 'plc-8-web'], { env }),
      ok(['devices', 'list']),
      ok(['devices', 'show', 'plc-7-ssh']),
      json<DeviceView>(['devices', 'show', 'plc-7-ssh']),
    ]);
    assertOneLine(again, 'CONFLICT');
    assert.match(table.stdout, /^NAME\s+TAGS\s+ENABLED\s+ONLINE/);
    assert.match(table.stdout, /^plc-7-ssh\s+site=lab,line=7\s+yes\s+yes\s/m);
    assert.match(table.stdout, /^plc-8-web\s+site=lab\s+yes\s+not enrolled\s/m);
    assert.match(shown.stdout, /^name\s+plc-7-ssh$/m);
    assert.match(shown.stdout, /^tags\s+site=lab,line=7$/m);
    assert.equal(shownJson.online, true);

    // More devices than one page of the API: the listing reads every page.
    const db = new Database(join(h.hub.dataDir, 'drawbridge.db'));
    try {
      const insert = db.prepare("INSERT INTO devices (name, tags, enabled, created_at) VALUES (?, '{}', 1, ?)");
      db.transaction(() => {
        for (let i = 0; i < 600; i++) insert.run(`bulk-${String(i).padStart(3, '0')}`, Date.now());
      })();
    } finally {
      db.close();
    }
    const everything = await json<DeviceView[]>(['devices', 'list']);
    assert.equal(everything.filter((d) => d.name.startsWith('bulk-')).length, 600);
    assert.ok(everything.some((d) => d.name === 'plc-7-ssh') && everything.some((d) => d.name === 'plc-8-web'));

    assert.match((await ok(['devices', 'disable', 'plc-8-web'])).stdout, /^device "plc-8-web" disabled\n$/);
    assert.match((await ok(['devices', 'enable', 'plc-8-web'])).stdout, /^device "plc-8-web" enabled\n$/);
    assert.match((await ok(['devices', 'remove', 'plc-8-web'])).stdout, /^device "plc-8-web" removed\n$/);
    assertOneLine(await runCli(['devices', 'show', 'plc-8-web'], { env }), 'UNKNOWN_DEVICE');
  });

  it('access: request --wait returns once someone else approves; list is a table; an empty reason is refused locally', async () => {
    const waiting = await spawnCli(['access', 'request', 'plc-7-ssh', '--for', '15m', '--reason', 'waiting for review', '--wait'], { env: as(op.token) });
    await waitFor(() => /request (ar_[0-9a-f]{16})/.test(waiting.stderr()), 15_000, 'the request id');
    const id = (/request (ar_[0-9a-f]{16})/.exec(waiting.stderr()) as RegExpExecArray)[1] as string;
    assert.equal(waiting.child.exitCode, null, '--wait keeps waiting while the request is pending');
    const [table, emptyReason] = await Promise.all([
      ok(['access', 'list', '--pending'], as(appr.token)),
      runCli(['access', 'request', 'plc-7-ssh', '--for', '1h', '--reason', '   '], { env: as(op.token) }),
    ]);
    assert.match(table.stdout, /^ID\s+PRINCIPAL\s+DEVICE\s+STATUS\s+FOR\s+UNTIL\s+REVIEWED BY\s+REASON\n/);
    assert.match(table.stdout, new RegExp(`^${id}\\s+op\\s+plc-7-ssh\\s+pending\\s+15m\\s`, 'm'));
    assertOneLine(emptyReason, 'VALIDATION_FAILED', /--reason must not be empty/);
    await appr.client.request('POST', `/v1/access/${id}/approve`, {});
    await waitFor(() => waiting.child.exitCode !== null, 15_000, '--wait to return');
    assert.equal(waiting.child.exitCode, 0, waiting.stderr());
    assert.match(waiting.stdout(), new RegExp(`^${id}: approved by appr: access to plc-7-ssh until `));
    const shown = await json<AccessView>(['access', 'show', id]);
    assert.equal(shown.status, 'approved');
    assert.match((await ok(['access', 'revoke', id], as(op.token))).stdout, new RegExp(`^${id}: revoked\\n$`));
  });

  it('proxy carries one stream on stdin/stdout; a refused one is one line with its code', async () => {
    const [through, refused] = await Promise.all([
      runCli(['proxy', 'plc-7-ssh'], { env, input: 'over-the-proxy' }),
      runCli(['proxy', 'plc-7-ssh'], { env: as(op.token), input: 'x' }),
    ]);
    assert.equal(through.code, 0, through.stderr);
    assert.equal(through.stdout, 'over-the-proxy');
    assertOneLine(refused, 'NOT_AUTHORIZED', /"op" has no active grant for device "plc-7-ssh"/);
  });

  it('connect: an unknown device is one line at start; a device that goes away is reported per connection', async () => {
    assertOneLine(await runCli(['connect', 'no-such-device'], { env }), 'UNKNOWN_DEVICE', /^drawbridge: unknown device "no-such-device"/);
    await h.admin.request('POST', '/v1/devices', { name: 'short-lived' });
    const tunnel = await startConnect(env, 'short-lived');
    assert.match(tunnel.stderr(), /warning: device "short-lived" is offline/);
    await h.admin.request('DELETE', '/v1/devices/short-lived');
    const socket = connect({ host: '127.0.0.1', port: tunnel.port });
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('close', resolve));
    await waitFor(() => tunnel.stderr().includes('UNKNOWN_DEVICE'), 10_000, `UNKNOWN_DEVICE on stderr (got: ${tunnel.stderr()})`);
    assert.match(tunnel.stderr(), /^drawbridge: 127\.0\.0\.1:\d+: UNKNOWN_DEVICE: .*short-lived/m);
    await stopProcess(tunnel.child);
  });

  it('agent enroll refuses a garbage token in one line and writes nothing', async () => {
    const dir = tempDir('db-agent-');
    const result = await runCli(['agent', 'enroll', 'dbe1_!!!notbase64', '--target', '127.0.0.1:22', '--config', join(dir, 'agent.yaml')], { env: { DRAWBRIDGE_CONFIG_DIR: tempDir() } });
    assertOneLine(result, 'ENROLLMENT_INVALID', /the enrollment token is corrupted/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('login stores credentials at mode 0600 that later commands use; not logged in, a wrong pin or token is one line', async () => {
    const configDir = tempDir('db-login-');
    const loginEnv = { DRAWBRIDGE_CONFIG_DIR: configDir };
    assertOneLine(await runCli(['devices', 'list'], { env: loginEnv }), 'UNAUTHENTICATED', /not logged in/);
    const admin = h.hub.bootstrapAdminToken as string;
    const login = await ok(['login', '--hub', h.hub.url, '--token', admin, '--ca-pin', h.hub.caPin], loginEnv);
    assert.match(login.stdout, /^logged in to https:\/\/127\.0\.0\.1:\d+ as admin \(admin\); credentials saved to /);
    const file = join(configDir, 'credentials.json');
    assert.equal(mode(file), 0o600);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { hubUrl: h.hub.url, token: admin, caPin: h.hub.caPin });
    const [listed, wrongPin, badToken] = await Promise.all([
      json<DeviceView[]>(['devices', 'list'], loginEnv),
      runCli(['login', '--hub', h.hub.url, '--token', admin, '--ca-pin', `sha256:${'0'.repeat(64)}`], { env: { DRAWBRIDGE_CONFIG_DIR: tempDir('db-login-') } }),
      runCli(['login', '--hub', h.hub.url, '--token', 'db_not-a-real-token', '--ca-pin', h.hub.caPin], { env: { DRAWBRIDGE_CONFIG_DIR: tempDir('db-login-') } }),
    ]);
    assert.ok(listed.some((d) => d.name === 'plc-7-ssh'));
    assertOneLine(wrongPin, 'TLS_PIN_MISMATCH');
    assertOneLine(badToken, 'UNAUTHENTICATED');
  });

  it('serves /healthz, /v1/openapi.json and /metrics over TLS that curl verifies', async () => {
    const caPath = join(h.hub.dataDir, 'ca.pem');
    const base = `https://localhost:${h.hub.port}`;
    const curl = (path: string, extra: string[] = []) => runProgram('curl', ['-sS', '--fail', '--max-time', '30', ...extra, `${base}${path}`]);
    const [unverified, health, adminHealth, openapi, anonymousMetrics, metrics] = await Promise.all([
      curl('/healthz'),
      curl('/healthz', ['--cacert', caPath]),
      curl('/healthz', ['--cacert', caPath, '-H', `Authorization: Bearer ${env['DRAWBRIDGE_TOKEN']}`]),
      curl('/v1/openapi.json', ['--cacert', caPath]),
      curl('/metrics', ['--cacert', caPath]),
      curl('/metrics', ['--cacert', caPath, '-H', `authorization: Bearer ${env['DRAWBRIDGE_TOKEN']}`]),
    ]);
    assert.notEqual(unverified.code, 0, 'curl must not trust the hub without its CA');
    assert.equal(health.code, 0, health.stderr);
    assert.deepEqual(JSON.parse(health.stdout.toString()), { status: 'ok' });
    assert.equal(adminHealth.code, 0, adminHealth.stderr);
    assert.equal((JSON.parse(adminHealth.stdout.toString()) as { version: string }).version, PACKAGE.version);
    assert.equal(openapi.code, 0, openapi.stderr);
    assert.equal((JSON.parse(openapi.stdout.toString()) as { openapi: string }).openapi, '3.1.0');
    assert.notEqual(anonymousMetrics.code, 0, '/metrics must need a token by default');
    assert.equal(metrics.code, 0, metrics.stderr);
    assert.match(metrics.stdout.toString(), /^drawbridge_connected_devices 1$/m);
  });

  it('audit: verify prints the head, export writes the same JSON Lines to stdout and to --output, tail --follow --json prints new records in order', async () => {
    const file = join(tempDir('db-export-'), 'audit.jsonl');
    const [verify, exported] = await Promise.all([ok(['audit', 'verify']), ok(['audit', 'export']), ok(['audit', 'export', '--output', file])]);
    assert.match(verify.stdout, /^audit chain intact: \d+ records, head [0-9a-f]{64}\n$/);
    const lines = exported.stdout.trimEnd().split('\n');
    assert.deepEqual(lines.map((l) => (JSON.parse(l) as AuditView).seq), lines.map((_, i) => i + 1));
    assert.equal(mode(file), 0o600);
    assert.deepEqual(readFileSync(file, 'utf8').split('\n').slice(0, lines.length), lines);

    const tail = await spawnCli(['audit', 'tail', '-n', '2', '--follow', '--json'], { env });
    await waitFor(() => tail.stdout().split('\n').filter(Boolean).length === 2, 15_000, 'the last 2 records');
    await h.admin.request('POST', '/v1/devices', { name: 'tail-dev' });
    await waitFor(() => tail.stdout().includes('"tail-dev"'), 15_000, 'the new record to be followed');
    const followed = tail.stdout().split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditView);
    assert.ok(followed.some((r) => r.action === 'device.add' && r.device === 'tail-dev'));
    const seqs = followed.map((r) => r.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'in order');
    await stopProcess(tail.child);
  });

  it('audit verify names the first bad record of a tampered log and exits 1 (last: it breaks this hub\'s log)', async () => {
    const db = new Database(join(h.hub.dataDir, 'drawbridge.db'));
    try {
      db.exec('DROP TRIGGER audit_no_update');
      db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 3").run();
    } finally {
      db.close();
    }
    const result = await runCli(['audit', 'verify'], { env });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stdout, /^audit chain BROKEN at record 3: record 3 was changed/);
  });
});
