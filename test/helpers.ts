/**
 * Test harness: real `drawbridge` processes on loopback, real TCP servers, temp dirs.
 * Every process started here is tracked and killed by `cleanup()` (call it in after()).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

/** dist/test/helpers.js -> dist/src/cli/main.js: the same entry point bin/drawbridge.js loads. */
export const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
export const BIN = fileURLToPath(new URL('../../bin/drawbridge.js', import.meta.url));

const children = new Set<ChildProcess>();
const dirs: string[] = [];

export function tempDir(prefix = 'db-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

export async function cleanup(): Promise<void> {
  await Promise.all([...children].map((child) => stopProcess(child)));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    children.delete(child);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      children.delete(child);
      resolve();
    });
    child.kill(signal);
  });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  input?: string | Buffer;
  timeoutMs?: number;
}

/** Runs the drawbridge CLI to completion. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, DRAWBRIDGE_LOG_LEVEL: 'warn', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`drawbridge ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 30_000);
    // 'close', not 'exit': a process may exit before its output has been read to the end.
    child.once('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Starts a long-running drawbridge process; resolves once `ready` matches its stdout. */
export function spawnCli(
  args: string[],
  options: { env?: Record<string, string>; ready?: RegExp; timeoutMs?: number } = {},
): Promise<{ child: ChildProcess; stdout: () => string; stderr: () => string; match: RegExpMatchArray | null }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, DRAWBRIDGE_LOG_LEVEL: 'info', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const result = { child, stdout: () => out, stderr: () => err, match: null as RegExpMatchArray | null };
  if (!options.ready) return Promise.resolve(result);
  const ready = options.ready;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`drawbridge ${args.join(' ')} not ready\nstdout: ${out}\nstderr: ${err}`)), options.timeoutMs ?? 20_000);
    const check = (): void => {
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout?.off('data', check);
        result.match = m;
        resolve(result);
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`drawbridge ${args.join(' ')} exited with ${code}\nstdout: ${out}\nstderr: ${err}`));
    });
  });
}

export interface HubProcess {
  child: ChildProcess;
  url: string;
  port: number;
  caPin: string;
  adminToken: string;
  dataDir: string;
  /** Environment that makes CLI calls act as the admin against this hub */
  env: Record<string, string>;
  stderr: () => string;
}

/** Starts `drawbridge hub` on 127.0.0.1 (port 0 = free port unless given). */
export async function startHubProcess(options: { dataDir?: string; port?: number; config?: string; extraArgs?: string[] } = {}): Promise<HubProcess> {
  const dataDir = options.dataDir ?? tempDir('db-hub-');
  const args = ['hub', '--data-dir', dataDir, '--listen', `127.0.0.1:${options.port ?? 0}`, ...(options.config ? ['--config', options.config] : []), ...(options.extraArgs ?? [])];
  const started = await spawnCli(args, { ready: /CA pin: (sha256:[0-9a-f]{64})/ });
  const out = started.stdout();
  const url = /listening on (https:\/\/[^ ]+) /.exec(out)?.[1] as string;
  const caPin = started.match?.[1] as string;
  const { readFileSync } = await import('node:fs');
  const adminToken = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
  const configDir = tempDir('db-cfg-');
  return {
    child: started.child,
    url,
    port: Number(new URL(url).port),
    caPin,
    adminToken,
    dataDir,
    env: { DRAWBRIDGE_HUB: url, DRAWBRIDGE_TOKEN: adminToken, DRAWBRIDGE_CA_PIN: caPin, DRAWBRIDGE_CONFIG_DIR: configDir },
    stderr: started.stderr,
  };
}

/** Registers a device, enrolls it into a fresh agent config, starts `drawbridge agent run`. */
export async function addDeviceWithAgent(
  hub: HubProcess,
  name: string,
  target: string,
  options: { configPath?: string; tags?: string[]; start?: boolean; env?: Record<string, string> } = {},
): Promise<{ configPath: string; agent?: Awaited<ReturnType<typeof spawnCli>> }> {
  const added = await runCli(['devices', 'add', name, '--json', ...(options.tags ?? []).flatMap((t) => ['--tag', t])], { env: hub.env });
  if (added.code !== 0) throw new Error(`devices add failed: ${added.stderr}`);
  const token = (JSON.parse(added.stdout) as { enrollmentToken: string }).enrollmentToken;
  const configPath = options.configPath ?? join(tempDir('db-agent-'), 'agent.yaml');
  const enrolled = await runCli(['agent', 'enroll', token, '--target', target, '--config', configPath], { env: { DRAWBRIDGE_CONFIG_DIR: tempDir(), ...options.env } });
  if (enrolled.code !== 0) throw new Error(`agent enroll failed: ${enrolled.stderr}`);
  if (options.start === false) return { configPath };
  const agent = await spawnCli(['agent', 'run', '--config', configPath], { ...(options.env ? { env: options.env } : {}) });
  await waitFor(() => agent.stderr().includes('"device online"') && agent.stderr().includes(`"device":"${name}"`), 15_000, `agent for ${name} online`);
  return { configPath, agent };
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** TCP echo server; with halfClose it answers "bye" after the client finishes sending. */
export async function startEchoServer(options: { onEndReply?: string } = {}): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.pipe(socket, { end: false });
    socket.on('end', () => {
      if (options.onEndReply) socket.end(options.onEndReply);
      else socket.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Connects to host:port, writes `data`, half-closes, and collects everything until the peer ends. */
export function exchange(port: number, data: Buffer | string, host = '127.0.0.1'): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      socket.end();
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', reject);
    socket.on('connect', () => socket.end(data));
  });
}

/** Starts `drawbridge connect DEVICE` and resolves with its local port. */
export async function startConnect(env: Record<string, string>, device: string): Promise<{ port: number; child: ChildProcess; stderr: () => string }> {
  const started = await spawnCli(['connect', device, '--listen', '127.0.0.1:0'], { env, ready: /forwarding 127\.0\.0\.1:(\d+) ->/ });
  return { port: Number(started.match?.[1]), child: started.child, stderr: started.stderr };
}

/** A free TCP port on 127.0.0.1 (the probe listener is closed before this returns). */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

export interface ProgramResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs any program to completion (tracked, so cleanup() kills it if a test gives up). */
export function runProgram(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; input?: string | Buffer; timeoutMs?: number } = {},
): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, DRAWBRIDGE_LOG_LEVEL: 'warn', ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => stdout.push(c));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} timed out\nstdout: ${Buffer.concat(stdout).toString()}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 30_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      children.delete(child);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code: code ?? -1, stdout: Buffer.concat(stdout), stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

export interface SshdProcess {
  child: ChildProcess;
  port: number;
  dir: string;
  /** private key accepted for `user` */
  clientKey: string;
  user: string;
  stderr: () => string;
}

/**
 * Starts a throwaway OpenSSH server on 127.0.0.1 (free port, its own host key, one
 * authorized client key). Throws — never skips — when OpenSSH is not installed, so a CI
 * run without it fails loudly.
 */
export async function startSshd(): Promise<SshdProcess> {
  const { existsSync, mkdirSync, writeFileSync, readFileSync } = await import('node:fs');
  const { userInfo } = await import('node:os');
  const sshd = '/usr/sbin/sshd';
  for (const tool of [sshd, '/usr/bin/ssh-keygen']) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing: install openssh-server and openssh-client (apt-get install openssh-server openssh-client)`);
  }
  // sshd refuses to start as root without its privilege-separation directory.
  if (!existsSync('/run/sshd')) {
    try {
      mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    } catch {
      // not root: sshd runs without privilege separation and does not need it
    }
  }
  const dir = tempDir('db-sshd-');
  const hostKey = join(dir, 'host_ed25519');
  const clientKey = join(dir, 'client_ed25519');
  for (const key of [hostKey, clientKey]) {
    const made = await runProgram('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'drawbridge-test', '-f', key]);
    if (made.code !== 0) throw new Error(`ssh-keygen failed: ${made.stderr}`);
  }
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${clientKey}.pub`));
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin prohibit-password',
      // scp speaks SFTP by default since OpenSSH 9.0; the in-process server needs no binary path.
      'Subsystem sftp internal-sftp',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  const child = spawn(sshd, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let err = '';
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<never>((_, reject) => {
    child.once('error', (error) => reject(new Error(`cannot start ${sshd}: ${error.message}`)));
    child.once('exit', (code) => reject(new Error(`sshd exited with ${code} before listening:\n${err}`)));
  });
  exited.catch(() => undefined);
  try {
    await Promise.race([waitFor(() => err.includes(`Server listening on 127.0.0.1 port ${port}`), 10_000, 'sshd to listen'), exited]);
  } catch (error) {
    throw new Error(`${(error as Error).message}\nsshd stderr:\n${err}`);
  }
  return { child, port, dir, clientKey, user: userInfo().username, stderr: () => err };
}

// ---- Helpers for refusal and fault tests (raw HTTPS / WebSocket access to a hub) ----

/** The hub's CA certificate, for raw HTTPS and WebSocket clients in tests. */
export function hubCa(hub: HubProcess): string {
  return readFileSync(join(hub.dataDir, 'ca.pem'), 'utf8');
}

export interface HubResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** Parsed JSON body, or undefined when the body is not JSON */
  json: unknown;
}

/**
 * One raw HTTPS request to the hub. `body` objects are sent as JSON; strings and Buffers
 * are sent as-is (content-type application/json unless overridden). `token: null` sends
 * no Authorization header; the default is the admin token.
 */
export function hubRequest(
  hub: HubProcess,
  method: string,
  path: string,
  options: { body?: unknown; token?: string | null; headers?: Record<string, string>; chunked?: boolean; localAddress?: string } = {},
): Promise<HubResponse> {
  const payload =
    options.body === undefined ? undefined : Buffer.isBuffer(options.body) ? options.body : Buffer.from(typeof options.body === 'string' ? options.body : JSON.stringify(options.body));
  const token = options.token === undefined ? hub.adminToken : options.token;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      new URL(path, hub.url),
      {
        method,
        ca: hubCa(hub),
        checkServerIdentity: () => undefined,
        agent: false,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(payload ? { 'content-type': 'application/json' } : {}),
          // chunked: no declared length, so the hub must count the bytes as they arrive
          ...(payload && !options.chunked ? { 'content-length': String(payload.length) } : {}),
          ...options.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    if (payload && options.chunked) {
      for (let offset = 0; offset < payload.length; offset += 8192) req.write(payload.subarray(offset, offset + 8192));
      req.end();
    } else req.end(payload);
  });
}

/** The `error.code` of a hub error body, if any. */
export function errorCodeOf(response: HubResponse): string | undefined {
  return (response.json as { error?: { code?: string } } | undefined)?.error?.code;
}

/**
 * Opens a raw WebSocket to the hub (`path` on the hub, or a full wss:// URL). Resolves with
 * the open socket, or with the HTTP status and body when the hub refuses the upgrade.
 */
export function openHubWebSocket(
  hub: HubProcess,
  pathOrUrl: string,
  options: { headers?: Record<string, string>; maxPayload?: number } = {},
): Promise<{ ws: WebSocket; status: 101 } | { ws?: undefined; status: number; body: string }> {
  const url = pathOrUrl.startsWith('wss://') ? pathOrUrl : `${hub.url.replace(/^https/, 'wss')}${pathOrUrl}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      ca: hubCa(hub),
      // The CA is pinned; the host name need not appear in the certificate (tls wants undefined here).
      checkServerIdentity: (() => undefined) as unknown as () => boolean,
      perMessageDeflate: false,
      ...(options.headers ? { headers: options.headers } : {}),
      ...(options.maxPayload ? { maxPayload: options.maxPayload } : {}),
    });
    ws.once('open', () => resolve({ ws, status: 101 }));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        ws.on('error', () => undefined);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    ws.once('error', reject);
  });
}

/** Resolves with the next message of a WebSocket, as text. */
export function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    const onClose = (code: number, reason: Buffer): void => reject(new Error(`closed ${code} ${reason.toString()} before a message`));
    ws.once('close', onClose);
    ws.once('message', (data: Buffer) => {
      ws.off('close', onClose);
      resolve(data.toString());
    });
  });
}

/** Resolves with the close code and reason of a WebSocket (at once if already closed). */
export function closeOf(ws: WebSocket, timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`WebSocket not closed within ${timeoutMs} ms`)), timeoutMs);
    ws.on('error', () => undefined);
    ws.once('close', (code: number, reason: Buffer) => {
      clearTimeout(timer);
      resolve({ code, reason: reason.toString() });
    });
  });
}

/** Registers a device (`devices add NAME --json ...extraArgs`) and returns its enrollment token. */
export async function addDevice(hub: HubProcess, name: string, extraArgs: string[] = []): Promise<string> {
  const added = await runCli(['devices', 'add', name, '--json', ...extraArgs], { env: hub.env });
  if (added.code !== 0) throw new Error(`devices add ${name} failed: ${added.stderr}`);
  return (JSON.parse(added.stdout) as { enrollmentToken: string }).enrollmentToken;
}

/** `drawbridge agent enroll TOKEN --target T --config F ...extraArgs` (does not throw on failure). */
export function enrollAgent(token: string, target: string, configPath: string, extraArgs: string[] = []): Promise<CliResult> {
  return runCli(['agent', 'enroll', token, '--target', target, '--config', configPath, ...extraArgs], { env: { DRAWBRIDGE_CONFIG_DIR: tempDir() } });
}

/** Starts `drawbridge agent run --config F` and waits until every named device is online. */
export async function startAgentProcess(configPath: string, devices: string[]): Promise<Awaited<ReturnType<typeof spawnCli>>> {
  const agent = await spawnCli(['agent', 'run', '--config', configPath], {});
  for (const name of devices) {
    await waitFor(() => agent.stderr().includes(`"device":"${name}"`) && agent.stderr().includes('"device online"'), 15_000, `agent for ${name} online`);
  }
  return agent;
}

/** The private key file `agent enroll` wrote for a device beside its config. */
export function deviceKeyPath(configPath: string, device: string): string {
  return join(dirname(configPath), 'keys', `${device}.key`);
}

/** Whether a device shows as online in the hub's device list. */
export async function isDeviceOnline(hub: HubProcess, device: string): Promise<boolean> {
  const res = await hubRequest(hub, 'GET', `/v1/devices/${device}`);
  return (res.json as { online?: boolean } | undefined)?.online === true;
}

/** Resident set size of a process, in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  if (!kb) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb) * 1024;
}

/**
 * Every character a terminal acts on except the newline that ends a line: C0, DEL, C1, the
 * Unicode line separators and the bidi controls (the oracle for terminal-injection tests,
 * written independently of src/util/control-chars.ts).
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
export const RAW_CONTROL = new RegExp('[\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069]');

/**
 * The secret part of an API token (dbp_ID_SECRET). The secret is base64url and may itself
 * contain "_", so it is parsed by the token format, never cut at the last "_".
 */
export function secretOf(token: string): string {
  const match = /^dbp_[0-9a-f]{16}_([A-Za-z0-9_-]{43})$/.exec(token);
  if (!match) throw new Error(`not an API token: ${token.slice(0, 12)}...`);
  return match[1] as string;
}
