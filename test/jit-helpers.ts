/**
 * Helpers for the access, roles and audit tests: CLI calls as a given principal, raw API
 * calls pinned to the hub's CA (optionally from another loopback source address), and a
 * TCP socket held open through a tunnel so a test can watch when the hub ends it.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { hubRequest, runCli, spawnCli, waitFor, type CliResult, type HubProcess } from './helpers.js';

/** Environment that makes CLI calls act as the holder of `token` against `hub`. */
export function as(hub: HubProcess, token: string): Record<string, string> {
  return { ...hub.env, DRAWBRIDGE_TOKEN: token };
}

/** Runs the CLI and asserts it succeeded. */
export async function ok(args: string[], env: Record<string, string>): Promise<CliResult> {
  const result = await runCli(args, { env });
  assert.equal(result.code, 0, `drawbridge ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result;
}

/** Runs the CLI with --json and parses its output. */
export async function json<T>(args: string[], env: Record<string, string>): Promise<T> {
  const result = await ok([...args, '--json'], env);
  return JSON.parse(result.stdout) as T;
}

/** Runs the CLI and asserts it failed with the error `code` (and a message matching `message`). */
export async function refused(args: string[], env: Record<string, string>, code: string, message?: RegExp): Promise<CliResult> {
  const result = await runCli(args, { env });
  assert.notEqual(result.code, 0, `drawbridge ${args.join(' ')} should have failed; stdout: ${result.stdout}`);
  assert.match(result.stderr, new RegExp(`\\[${code}\\]`), `drawbridge ${args.join(' ')}: expected ${code}, got: ${result.stderr}`);
  if (message) assert.match(result.stderr, message);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace without --debug');
  return result;
}

export async function addUser(hub: HubProcess, name: string, role: string): Promise<string> {
  const user = await json<{ name: string; role: string; token: string }>(['users', 'add', name, '--role', role], hub.env);
  assert.deepEqual({ name: user.name, role: user.role }, { name, role });
  return user.token;
}

export interface ApiAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  text: string;
}

/** One HTTPS request to the hub, trusting only its CA; `localAddress` picks the source address. */
export async function api(
  hub: HubProcess,
  token: string | undefined,
  method: string,
  path: string,
  body?: unknown,
  options: { localAddress?: string } = {},
): Promise<ApiAnswer> {
  const answer = await hubRequest(hub, method, path, { body, token: token ?? null, ...options });
  return { status: answer.status, headers: answer.headers, body: answer.json, text: answer.text };
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface HeldSocket {
  socket: Socket;
  /** Resolves with Date.now() when the local socket closes */
  closedAt: Promise<number>;
}

/**
 * Opens a TCP connection to a tunnel port in front of an echo target, proves data flows
 * both ways, and keeps it open.
 */
export async function holdEchoSocket(port: number, payload = 'ping'): Promise<HeldSocket> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  const closedAt = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  let received = '';
  socket.on('data', (c: Buffer) => (received += c.toString()));
  await withTimeout(new Promise((resolve) => socket.once('connect', resolve)), 5000, 'local connect');
  socket.write(payload);
  await withTimeout(
    Promise.race([
      waitFor(() => received.includes(payload), 10_000, `echo of "${payload}"`),
      closedAt.then(() => Promise.reject(new Error(`the stream closed before the echo arrived (got "${received}")`))),
    ]),
    11_000,
    'echo',
  );
  return { socket, closedAt };
}

/** Starts `drawbridge proxy DEVICE` and proves an echo round trip through it. */
export async function startEchoProxy(env: Record<string, string>, device: string, payload = 'hello-proxy\n'): Promise<Awaited<ReturnType<typeof spawnCli>>> {
  const proxy = await spawnCli(['proxy', device], { env });
  proxy.child.stdin?.write(payload);
  await waitFor(() => proxy.stdout().includes(payload) || proxy.child.exitCode !== null, 10_000, 'echo through proxy');
  assert.ok(proxy.stdout().includes(payload), `no echo through proxy; stderr: ${proxy.stderr()}`);
  return proxy;
}

/** Polls until `check` holds and returns when it first did (Date.now()). */
export async function timeWhen(check: () => boolean, timeoutMs: number, what: string): Promise<number> {
  await waitFor(check, timeoutMs, what);
  return Date.now();
}

/** Spec bounds like "within 1 s" are asserted with this much slack for process scheduling on a busy machine. */
export const SLACK_MS = 500;
