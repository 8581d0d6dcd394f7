/**
 * Test harness: real `drawbridge` processes on loopback, real TCP servers, temp dirs.
 * Every process started here is tracked and killed by `cleanup()` (call it in after()).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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
    child.once('exit', (code) => {
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
  options: { configPath?: string; tags?: string[]; start?: boolean } = {},
): Promise<{ configPath: string; agent?: Awaited<ReturnType<typeof spawnCli>> }> {
  const added = await runCli(['devices', 'add', name, '--json', ...(options.tags ?? []).flatMap((t) => ['--tag', t])], { env: hub.env });
  if (added.code !== 0) throw new Error(`devices add failed: ${added.stderr}`);
  const token = (JSON.parse(added.stdout) as { enrollmentToken: string }).enrollmentToken;
  const configPath = options.configPath ?? join(tempDir('db-agent-'), 'agent.yaml');
  const enrolled = await runCli(['agent', 'enroll', token, '--target', target, '--config', configPath], { env: { DRAWBRIDGE_CONFIG_DIR: tempDir() } });
  if (enrolled.code !== 0) throw new Error(`agent enroll failed: ${enrolled.stderr}`);
  if (options.start === false) return { configPath };
  const agent = await spawnCli(['agent', 'run', '--config', configPath], {});
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
