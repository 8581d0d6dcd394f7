/**
 * Helpers for in-process tests that talk to the hub as its users do: API calls through the
 * library client (HubClient), expected refusals, streams opened on a client link, and a TCP
 * connection held open through a tunnel.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import type { HubClient } from '../../src/client/hub-client.js';
import type { DrawbridgeError } from '../../src/errors.js';
import type { HubProcess } from '../helpers.js';
import type { Harness } from './stream-harness.js';

/** The error a call ends with; fails the test when it succeeds. */
export async function refusal(call: Promise<unknown>, what = 'the call'): Promise<DrawbridgeError> {
  try {
    await call;
  } catch (error) {
    return error as DrawbridgeError;
  }
  assert.fail(`${what} should have been refused`);
}

/** Asserts that a call is refused with `code` (and a message matching `message`). */
export async function refused(call: Promise<unknown>, code: string, message?: RegExp, what?: string): Promise<DrawbridgeError> {
  const error = await refusal(call, what);
  assert.equal(error.code, code, `${what ?? 'the call'}: expected ${code}, got ${error.code}: ${error.message}`);
  if (message) assert.match(error.message, message, what);
  return error;
}

/** Opens one stream with an in-memory local side; resolves with the refusal code, or 'open'. */
export async function tryStream(client: HubClient, device: string): Promise<string> {
  return (await streamOutcome(client, device)).code;
}

/** Like tryStream, with the refusal's message. */
export async function streamOutcome(client: HubClient, device: string): Promise<{ code: string; message: string }> {
  const input = new PassThrough();
  const output = new PassThrough();
  const stream = client.link().open(device, { input, output, destroy: () => input.destroy(), role: 'client' });
  try {
    await stream.opened;
    input.end();
    return { code: 'open', message: '' };
  } catch (error) {
    return { code: (error as DrawbridgeError).code, message: (error as DrawbridgeError).message };
  }
}

/** Holds a stream open (returns a function that ends it). */
export function holdStream(client: HubClient, device: string): { end(): void; opened: Promise<unknown> } {
  const input = new PassThrough();
  const output = new PassThrough();
  output.resume();
  const stream = client.link().open(device, { input, output, destroy: () => input.destroy(), role: 'client' });
  stream.opened.catch(() => undefined);
  return { end: () => input.end(), opened: stream.opened };
}

/** What the raw-request helpers of test/helpers.ts need of a hub, for an in-process one. */
export function hubTarget(h: Harness): HubProcess {
  return { url: h.hub.url, adminToken: h.hub.bootstrapAdminToken as string, dataDir: h.hub.dataDir, port: h.hub.port, caPin: h.hub.caPin } as HubProcess;
}

/** Polls until `check` holds (generous deadline; a loaded machine is slow, never wrong). */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Spec bounds like "within 1 s" are asserted with this much slack for process scheduling on a busy machine. */
export const SLACK_MS = 500;

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
  await Promise.race([
    until(() => received.includes(payload), `echo of "${payload}"`),
    closedAt.then(() => Promise.reject(new Error(`the stream closed before the echo arrived (got "${received}")`))),
    new Promise<void>((resolve) => socket.once('connect', () => (socket.write(payload), resolve()))).then(() => new Promise<never>(() => undefined)),
  ]);
  return { socket, closedAt };
}
