/**
 * The `drawbridge` command as users meet it: the real binary and real processes, help for
 * every command, device management, login, files and their modes, the one-line error
 * contract, and the hub's unauthenticated HTTP endpoints checked with curl over verified TLS.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, isAbsolute, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { load as parseYaml } from 'js-yaml';
import {
  BIN,
  addDeviceWithAgent,
  cleanup,
  runCli,
  runProgram,
  startConnect,
  startEchoServer,
  startHubProcess,
  tempDir,
  waitFor,
  type HubProcess,
} from './helpers.js';

const PACKAGE = JSON.parse(readFileSync(join(dirname(BIN), '..', 'package.json'), 'utf8')) as { version: string };

/** Every command and subcommand the CLI must offer (each one must answer --help). */
const COMMANDS: string[][] = [
  ['hub'], ['login'],
  ['devices'], ['devices', 'add'], ['devices', 'list'], ['devices', 'show'], ['devices', 'remove'], ['devices', 'enable'], ['devices', 'disable'], ['devices', 'enroll-token'],
  ['agent'], ['agent', 'enroll'], ['agent', 'run'],
  ['connect'], ['proxy'], ['ssh'],
  ['users'], ['users', 'add'], ['users', 'list'], ['users', 'remove'],
  ['tokens'], ['tokens', 'rotate'],
  ['access'], ['access', 'request'], ['access', 'list'], ['access', 'show'], ['access', 'approve'], ['access', 'deny'], ['access', 'revoke'],
  ['sessions'], ['sessions', 'list'], ['sessions', 'kill'],
  ['audit'], ['audit', 'list'], ['audit', 'tail'], ['audit', 'export'], ['audit', 'verify'],
  ['demo'],
];

interface DeviceRow {
  name: string;
  tags: Record<string, string>;
  enabled: boolean;
  online: boolean;
  lastSeenAt: string | null;
  agentVersion: string | null;
  remoteAddress: string | null;
}

/** Runs `node bin/drawbridge.js ARGS` (the installed entry point, not the module behind it). */
function runBin(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Subcommand names in a commander help text ("Commands:" section, without "help"). */
function listedCommands(help: string): string[] {
  const section = help.split(/^Commands:\n/m)[1];
  if (!section) return [];
  return section
    .split('\n\n')[0]!
    .split('\n')
    .map((line) => /^ {2}([a-z][a-z-]*)/.exec(line)?.[1])
    .filter((name): name is string => Boolean(name) && name !== 'help');
}

const mode = (path: string): number => statSync(path).mode & 0o777;

async function listDevices(env: Record<string, string>): Promise<DeviceRow[]> {
  const listed = await runCli(['devices', 'list', '--json'], { env });
  assert.equal(listed.code, 0, listed.stderr);
  return JSON.parse(listed.stdout) as DeviceRow[];
}

describe('the drawbridge binary', () => {
  it('prints help and its version', async () => {
    const help = await runBin(['--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: drawbridge /);
    for (const name of ['hub', 'login', 'devices', 'agent', 'connect', 'proxy', 'ssh', 'demo']) assert.ok(listedCommands(help.stdout).includes(name), `--help lists ${name}`);
    const version = await runBin(['--version']);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), PACKAGE.version);
  });

  it('answers --help with exit 0 for every command and subcommand', async () => {
    // Walk the tree the CLI itself reports, so a command added later is covered too.
    const seen = new Map<string, string>();
    const queue: string[][] = [[]];
    while (queue.length > 0) {
      const batch = queue.splice(0, 4);
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
    const failed = await runCli(['devices', 'add', 'Bad_Name']);
    assert.equal(failed.code, 1);
    assert.equal(failed.stdout, '');
    assert.match(failed.stderr, /^drawbridge: [^\n]+ \[INVALID_NAME\]\n$/);
    assert.doesNotMatch(failed.stderr, /\n\s+at /);

    const debug = await runCli(['devices', 'add', 'Bad_Name', '--debug']);
    assert.equal(debug.code, 1);
    assert.match(debug.stderr, /^drawbridge: [^\n]+ \[INVALID_NAME\]\n/);
    assert.match(debug.stderr, /\n\s+at .+\.js:\d+:\d+/, 'stack trace with --debug');
  });

  it('runs the demo once: exit 0, "OK", and leaves no temporary files', async () => {
    const tmp = tempDir('db-demo-tmp-');
    const demo = await runCli(['demo', '--once'], { env: { TMPDIR: tmp } });
    assert.equal(demo.code, 0, demo.stderr);
    assert.match(demo.stdout, /-> OK\b/);
    assert.deepEqual(readdirSync(tmp), []);
  });
});

describe('drawbridge against a running hub', () => {
  let hub: HubProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let agentConfig: string;

  before(async () => {
    hub = await startHubProcess();
    echo = await startEchoServer();
    ({ configPath: agentConfig } = await addDeviceWithAgent(hub, 'plc-7-ssh', `127.0.0.1:${echo.port}`, { tags: ['site=lab', 'line=7'] }));
  });

  after(async () => {
    await cleanup();
    await echo?.close();
  });

  it('keeps the admin token at mode 0600 and a CA whose pin is the one printed', () => {
    assert.equal(mode(join(hub.dataDir, 'admin.token')), 0o600);
    const caPath = join(hub.dataDir, 'ca.pem');
    assert.ok(existsSync(caPath));
    const der = new X509Certificate(readFileSync(caPath)).raw;
    assert.equal(`sha256:${createHash('sha256').update(der).digest('hex')}`, hub.caPin);
  });

  it('devices add --json prints exactly name, enrollmentToken and expiresAt', async () => {
    const added = await runCli(['devices', 'add', 'plc-8-web', '--tag', 'site=lab', '--ttl', '10m', '--json'], { env: hub.env });
    assert.equal(added.code, 0, added.stderr);
    const body = JSON.parse(added.stdout) as Record<string, string>;
    assert.deepEqual(Object.keys(body).sort(), ['enrollmentToken', 'expiresAt', 'name']);
    assert.equal(body['name'], 'plc-8-web');
    assert.ok((body['enrollmentToken'] ?? '').length > 20);
    const expiresInMs = Date.parse(body['expiresAt'] ?? '') - Date.now();
    assert.ok(expiresInMs > 8 * 60_000 && expiresInMs <= 10 * 60_000, `expiresAt ${body['expiresAt']} is about 10 minutes away`);

    const again = await runCli(['devices', 'add', 'plc-8-web'], { env: hub.env });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^drawbridge: [^\n]+ \[CONFLICT\]\n$/);
  });

  it('devices list --json shows the enrolled device online with its details', async () => {
    const rows = await listDevices(hub.env);
    const device = rows.find((d) => d.name === 'plc-7-ssh');
    assert.ok(device, JSON.stringify(rows));
    assert.deepEqual(device.tags, { site: 'lab', line: '7' });
    assert.equal(device.enabled, true);
    assert.equal(device.online, true);
    assert.ok(device.lastSeenAt && !Number.isNaN(Date.parse(device.lastSeenAt)), `lastSeenAt ${device.lastSeenAt}`);
    assert.equal(device.agentVersion, PACKAGE.version);
    assert.match(device.remoteAddress ?? '', /127\.0\.0\.1/);
    const pending = rows.find((d) => d.name === 'plc-8-web');
    if (pending) assert.equal(pending.online, false);

    const table = await runCli(['devices', 'list'], { env: hub.env });
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /plc-7-ssh/);
  });

  it('devices show, disable, enable and remove', async () => {
    const shown = await runCli(['devices', 'show', 'plc-7-ssh', '--json'], { env: hub.env });
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal((JSON.parse(shown.stdout) as DeviceRow).name, 'plc-7-ssh');
    const shownText = await runCli(['devices', 'show', 'plc-7-ssh'], { env: hub.env });
    assert.match(shownText.stdout, /^name\s+plc-7-ssh$/m);

    const disabled = await runCli(['devices', 'disable', 'plc-7-ssh'], { env: hub.env });
    assert.equal(disabled.code, 0, disabled.stderr);
    assert.match(disabled.stdout, /disabled/);
    let device = (await listDevices(hub.env)).find((d) => d.name === 'plc-7-ssh');
    assert.equal(device?.enabled, false);
    // Disabling ends the link at once.
    await waitFor(async () => (await listDevices(hub.env)).find((d) => d.name === 'plc-7-ssh')?.online === false, 5_000, 'disabled device offline');
    const refused = await runCli(['proxy', 'plc-7-ssh'], { env: hub.env, input: 'x' });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /\[DEVICE_DISABLED\]/);

    const enabled = await runCli(['devices', 'enable', 'plc-7-ssh'], { env: hub.env });
    assert.equal(enabled.code, 0, enabled.stderr);
    // The agent comes back by itself (reconnect backoff is capped at 10 s).
    await waitFor(async () => (await listDevices(hub.env)).find((d) => d.name === 'plc-7-ssh')?.online === true, 20_000, 'enabled device online again');
    const through = await runCli(['proxy', 'plc-7-ssh'], { env: hub.env, input: 'after-enable' });
    assert.equal(through.code, 0, through.stderr);
    assert.equal(through.stdout, 'after-enable');

    const added = await runCli(['devices', 'add', 'short-lived'], { env: hub.env });
    assert.equal(added.code, 0, added.stderr);
    const removed = await runCli(['devices', 'remove', 'short-lived'], { env: hub.env });
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /removed/);
    device = (await listDevices(hub.env)).find((d) => d.name === 'short-lived');
    assert.equal(device, undefined);
    const gone = await runCli(['devices', 'show', 'short-lived'], { env: hub.env });
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^drawbridge: [^\n]+ \[(UNKNOWN_DEVICE|NOT_FOUND)\]\n$/);
  });

  it('stores the agent key at mode 0600 and a valid YAML config listing the device', () => {
    const config = parseYaml(readFileSync(agentConfig, 'utf8')) as { devices: { name: string; target: string; keyFile: string; caPin: string; hubUrl: string }[] };
    const device = config.devices.find((d) => d.name === 'plc-7-ssh');
    assert.ok(device, readFileSync(agentConfig, 'utf8'));
    assert.equal(device.target, `127.0.0.1:${echo.port}`);
    assert.equal(device.caPin, hub.caPin);
    assert.equal(device.hubUrl, hub.url);
    const keyPath = isAbsolute(device.keyFile) ? device.keyFile : join(dirname(agentConfig), device.keyFile);
    assert.equal(mode(keyPath), 0o600);
    assert.match(readFileSync(keyPath, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
  });

  it('login stores credentials at mode 0600 that later commands use without env', async () => {
    const configDir = tempDir('db-login-');
    const env = { DRAWBRIDGE_CONFIG_DIR: configDir };
    const before = await runCli(['devices', 'list'], { env });
    assert.equal(before.code, 1);
    assert.match(before.stderr, /not logged in.*\[UNAUTHENTICATED\]/);

    const login = await runCli(['login', '--hub', hub.url, '--token', hub.adminToken, '--ca-pin', hub.caPin], { env });
    assert.equal(login.code, 0, login.stderr);
    const file = join(configDir, 'credentials.json');
    assert.equal(mode(file), 0o600);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { hubUrl: hub.url, token: hub.adminToken, caPin: hub.caPin });
    assert.ok((await listDevices(env)).some((d) => d.name === 'plc-7-ssh'));

    const wrongPin = await runCli(['login', '--hub', hub.url, '--token', hub.adminToken, '--ca-pin', `sha256:${'0'.repeat(64)}`], { env: { DRAWBRIDGE_CONFIG_DIR: tempDir('db-login-') } });
    assert.equal(wrongPin.code, 1);
    assert.match(wrongPin.stderr, /\[TLS_PIN_MISMATCH\]\n$/);
    const badToken = await runCli(['login', '--hub', hub.url, '--token', 'db_not-a-real-token', '--ca-pin', hub.caPin], { env: { DRAWBRIDGE_CONFIG_DIR: tempDir('db-login-') } });
    assert.equal(badToken.code, 1);
    assert.match(badToken.stderr, /\[UNAUTHENTICATED\]\n$/);
  });

  it('connect refuses an unknown device at start, and reports per connection once a device goes away', async () => {
    const unknown = await runCli(['connect', 'no-such-device'], { env: hub.env });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^drawbridge: unknown device "no-such-device" \[UNKNOWN_DEVICE\]\n$/);

    assert.equal((await runCli(['devices', 'add', 'short-lived'], { env: hub.env })).code, 0);
    const tunnel = await startConnect(hub.env, 'short-lived');
    assert.match(tunnel.stderr(), /warning: device "short-lived" is offline/);
    assert.equal((await runCli(['devices', 'remove', 'short-lived'], { env: hub.env })).code, 0);
    const socket = connect({ host: '127.0.0.1', port: tunnel.port });
    socket.on('error', () => undefined);
    const received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    await new Promise((resolve) => socket.once('close', resolve));
    assert.equal(Buffer.concat(received).length, 0);
    await waitFor(() => tunnel.stderr().includes('UNKNOWN_DEVICE'), 5_000, `UNKNOWN_DEVICE on stderr (got: ${tunnel.stderr()})`);
    assert.match(tunnel.stderr(), /^drawbridge: 127\.0\.0\.1:\d+: UNKNOWN_DEVICE: .*short-lived/m);
  });

  it('serves /healthz, /v1/openapi.json and /metrics over TLS that curl verifies', async () => {
    const caPath = join(hub.dataDir, 'ca.pem');
    const base = `https://localhost:${hub.port}`;
    const curl = (path: string, extra: string[] = []) => runProgram('curl', ['-sS', '--fail', '--max-time', '10', ...extra, `${base}${path}`]);

    const unverified = await curl('/healthz');
    assert.notEqual(unverified.code, 0, 'curl must not trust the hub without its CA');

    const health = await curl('/healthz', ['--cacert', caPath]);
    assert.equal(health.code, 0, health.stderr);
    // Without a token /healthz says only that the hub is up; the version is for admin and auditor tokens.
    assert.deepEqual(JSON.parse(health.stdout.toString()), { status: 'ok' });
    const adminHealth = await curl('/healthz', ['--cacert', caPath, '-H', `Authorization: Bearer ${hub.adminToken}`]);
    assert.equal((JSON.parse(adminHealth.stdout.toString()) as { version: string }).version, PACKAGE.version);

    const openapi = await curl('/v1/openapi.json', ['--cacert', caPath]);
    assert.equal(openapi.code, 0, openapi.stderr);
    const doc = JSON.parse(openapi.stdout.toString()) as { openapi: string; paths: Record<string, unknown> };
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths['/v1/devices'], `paths: ${Object.keys(doc.paths).join(', ')}`);

    // One stream first, so the stream metrics have samples.
    const through = await runCli(['proxy', 'plc-7-ssh'], { env: hub.env, input: 'metrics' });
    assert.equal(through.code, 0, through.stderr);
    const anonymous = await curl('/metrics', ['--cacert', caPath]);
    assert.notEqual(anonymous.code, 0, '/metrics must need a token by default');
    const metrics = await curl('/metrics', ['--cacert', caPath, '-H', `authorization: Bearer ${hub.adminToken}`]);
    assert.equal(metrics.code, 0, metrics.stderr);
    const text = metrics.stdout.toString();
    for (const name of ['drawbridge_connected_devices', 'drawbridge_active_streams', 'drawbridge_bytes_relayed_total', 'drawbridge_stream_setup_seconds', 'drawbridge_auth_failures_total']) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} in /metrics`);
    }
    assert.match(text, /^drawbridge_connected_devices 1$/m);
    assert.match(text, /^drawbridge_bytes_relayed_total\{[^}]*\} [1-9]/m);
  });
});
