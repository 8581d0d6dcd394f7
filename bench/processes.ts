/**
 * Process and temp-dir bookkeeping for the benchmark. Every child is started in its own
 * process group (so forking relays such as sshd and socat take their children with them)
 * and every temp dir is recorded, so cleanup() leaves nothing behind, even on failure.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Started {
  child: ChildProcess;
  pid: number;
  name: string;
  /** stdout so far (stdout is piped and kept; stderr goes to logFile) */
  stdout(): string;
  logFile: string;
}

const children = new Set<Started>();
const dirs: string[] = [];
const cleanupHooks: (() => void)[] = [];
/** Set once cleanup has begun (end of run, failure, Ctrl-C): nothing new may start. */
let stopping = false;

export class BenchStopping extends Error {
  constructor() {
    super('the bench is stopping');
  }
}

/** Throws BenchStopping once cleanup has begun, so a run that was interrupted winds down. */
export function assertRunning(): void {
  if (stopping) throw new BenchStopping();
}

export function isStopping(): boolean {
  return stopping;
}

export function tempDir(prefix: string): string {
  assertRunning();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** Work to run last in cleanup(), e.g. removing a directory created outside tmpdir. */
export function onCleanup(hook: () => void): void {
  cleanupHooks.push(hook);
}

export function logTail(started: Started, lines = 20): string {
  try {
    return readFileSync(started.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Starts a long-running process. When `ready` is given, resolves once stdout matches it
 * (rejecting if the process exits first or the time runs out).
 */
export async function startProcess(
  name: string,
  command: string,
  args: string[],
  options: { env?: Record<string, string>; ready?: RegExp; timeoutMs?: number; logDir: string },
): Promise<Started & { match: RegExpMatchArray | null }> {
  assertRunning();
  const logFile = join(options.logDir, `${name}.log`);
  const logFd = openSync(logFile, 'a');
  const child = spawn(command, args, {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', logFd],
    detached: true,
  });
  closeSync(logFd);
  let out = '';
  child.stdout?.on('data', (c: Buffer) => {
    // Keep only the head: readiness lines come first, and a chatty child must not grow memory.
    if (out.length < 64 * 1024) out += c.toString();
  });
  const started: Started & { match: RegExpMatchArray | null } = { child, pid: child.pid ?? -1, name, stdout: () => out, logFile, match: null };
  children.add(started);
  child.once('exit', () => children.delete(started));
  await new Promise<void>((resolve, reject) => {
    child.once('error', (error) => reject(new Error(`cannot start ${name} (${command}): ${error.message}`)));
    child.once('spawn', () => resolve());
  });
  if (!options.ready) return started;
  const ready = options.ready;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${name} not ready after ${options.timeoutMs ?? 20_000} ms`)), options.timeoutMs ?? 20_000);
    const onExit = (code: number | null): void => fail(new Error(`${name} exited early (code ${code})`));
    const check = (): void => {
      const m = ready.exec(out);
      if (!m) return;
      started.match = m;
      done();
      resolve();
    };
    const done = (): void => {
      clearTimeout(timer);
      child.stdout?.off('data', check);
      child.off('exit', onExit);
    };
    const fail = (error: Error): void => {
      done();
      reject(new Error(`${error.message}\n--- ${name} stdout ---\n${out}\n--- ${name} log ---\n${logTail(started)}`));
    };
    child.stdout?.on('data', check);
    child.once('exit', onExit);
    check();
  });
  return started;
}

/** SIGTERM to the process group, SIGKILL after a grace period. */
export function stopProcess(started: Started, graceMs = 3000): Promise<void> {
  const { child } = started;
  if (child.exitCode !== null || child.signalCode !== null) {
    children.delete(started);
    killGroup(started.pid, 'SIGKILL'); // forked children of an exited leader
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => killGroup(started.pid, 'SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      children.delete(started);
      killGroup(started.pid, 'SIGKILL');
      resolve();
    });
    killGroup(started.pid, 'SIGTERM');
  });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

export async function cleanup(): Promise<void> {
  stopping = true;
  await Promise.all([...children].map((c) => stopProcess(c)));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  for (const hook of cleanupHooks.splice(0)) {
    try {
      hook();
    } catch {
      /* best effort */
    }
  }
}

/** Synchronous last resort (process 'exit'): SIGKILL every group still alive. */
export function killAllNow(): void {
  stopping = true;
  for (const c of children) killGroup(c.pid, 'SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** true once a TCP connection to 127.0.0.1:port is accepted. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A free TCP port on 127.0.0.1 (for programs that cannot listen on port 0 and report it). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resident set size of a process in KiB, from /proc/PID/status. */
export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/**
 * CPU seconds (user + system) used so far by each process in the trees under `roots`
 * (forking relays such as sshd and socat serve connections from child processes).
 */
export function treeCpuSeconds(roots: number[]): Map<number, number> {
  const parent = new Map<number, number>();
  const cpu = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // Fields after the command name, which may itself contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    parent.set(Number(entry), Number(fields[1]));
    cpu.set(Number(entry), (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS);
  }
  const result = new Map<number, number>();
  for (const [pid, seconds] of cpu) {
    for (let p: number | undefined = pid; p !== undefined && p > 1; p = parent.get(p)) {
      if (roots.includes(p)) {
        result.set(pid, seconds);
        break;
      }
    }
  }
  return result;
}

/** CPU seconds the trees under `roots` used between two treeCpuSeconds() snapshots. */
export function cpuSecondsBetween(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, seconds] of after) total += seconds - (before.get(pid) ?? 0);
  return total;
}

/** TCP states in /proc/net/tcp (hex): 01 is ESTABLISHED. */
const TCP_ESTABLISHED = '01';

/**
 * The TCP connections a process holds, from its socket descriptors (/proc/PID/fd) matched
 * against /proc/net/tcp and tcp6: every established one, and those to `remotePort`.
 */
export function tcpConnections(pid: number, remotePort: number): { established: number; toPort: number } {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1] as string);
    } catch {
      /* closed meanwhile */
    }
  }
  let established = 0;
  let toPort = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue; // no IPv6
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] !== TCP_ESTABLISHED || !inodes.has(fields[9] as string)) continue;
      established++;
      if (parseInt((fields[2] as string).split(':')[1] ?? '', 16) === remotePort) toPort++;
    }
  }
  return { established, toPort };
}

/** Starts the bench's target server (`script`: this build's by default). */
export async function startTargetServer(logDir: string, script = fileURLToPath(new URL('./target-server.js', import.meta.url))): Promise<{ port: number; started: Started }> {
  const started = await startProcess('target', process.execPath, [script], { logDir, ready: /\{"port":(\d+)\}/ });
  return { port: Number(started.match?.[1]), started };
}
