/**
 * In-process harness for the data path: a hub, agents and client tunnels in this process,
 * on real sockets (port 0), real TLS and a real database file in a temp directory.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load as parseYaml } from 'js-yaml';
import { pino } from 'pino';
import { startAgent, type AgentHandle } from '../../src/agent/agent.js';
import { AgentConfigSchema } from '../../src/agent/config.js';
import { enrollDevice } from '../../src/agent/enroll.js';
import { HubClient } from '../../src/client/hub-client.js';
import { openTunnel, type TunnelEvent, type TunnelHandle } from '../../src/client/tunnel.js';
import type { HubConfig } from '../../src/hub/config.js';
import { parseHubConfig } from '../../src/hub/config.js';
import { readAdminToken, startHub, type HubHandle } from '../../src/hub/hub.js';
import type { Clock } from '../../src/util/clock.js';
import { silentLogger, type Logger } from '../../src/util/logger.js';

export interface Harness {
  dir: string;
  hub: HubHandle;
  admin: HubClient;
  /** A HubClient for another token (its link is separate) */
  client(token: string): Promise<HubClient>;
  /** Registers a device and enrolls it into an agent config (one per call unless configPath is given). */
  enroll(name: string, target: string, options?: { configPath?: string; tags?: Record<string, string>; edgeName?: string }): Promise<string>;
  /** Starts an agent on a config; `limits` override the file's agent limits (e.g. connectTimeout). */
  startAgent(configPath: string, options?: { limits?: Record<string, string>; wait?: boolean }): Promise<AgentHandle>;
  /** A user with a role and a client for their token. */
  user(name: string, role: 'admin' | 'operator' | 'approver' | 'auditor'): Promise<{ token: string; client: HubClient }>;
  tunnel(client: HubClient, device: string, onEvent?: (e: TunnelEvent) => void): Promise<TunnelHandle>;
  close(): Promise<void>;
}

export async function startHarness(options: { config?: unknown; clock?: Clock; logger?: Logger } = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'db-int-'));
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  const config: HubConfig = parseHubConfig(options.config ?? {}, 'test config');
  const logger = options.logger ?? silentLogger();
  const hub = await startHub({ dataDir: join(dir, 'hub'), host: '127.0.0.1', port: 0, logger, config, ...(options.clock ? { clock: options.clock } : {}) });
  cleanups.push(() => hub.close());
  const connect = async (token: string): Promise<HubClient> => {
    const c = await HubClient.connect({ hubUrl: hub.url, token, caPin: hub.caPin }, { cacheDir: join(dir, 'client-ca') });
    cleanups.push(() => c.close());
    return c;
  };
  const admin = await connect(hub.bootstrapAdminToken ?? readAdminToken(hub.dataDir));
  let agents = 0;
  return {
    dir,
    hub,
    admin,
    client: connect,
    enroll: async (name, target, opts = {}) => {
      const added = await admin.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name, tags: opts.tags ?? {} });
      const configPath = opts.configPath ?? join(dir, `agent-${++agents}`, 'agent.yaml');
      // A new agent gets a name of its own; an existing one keeps its edge.
      const edgeName = opts.edgeName ?? (opts.configPath ? undefined : `edge-${agents}`);
      await enrollDevice({ token: added.enrollmentToken, target, configPath, ...(edgeName ? { edgeName } : {}) });
      return configPath;
    },
    startAgent: async (configPath, opts = {}) => {
      const raw = parseYaml(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
      const config = AgentConfigSchema.parse({ ...raw, limits: { ...(raw['limits'] as object | undefined), ...opts.limits } });
      // Agents keep the system clock: the test drives the hub's time, as on separate machines.
      const agent = await startAgent({ configPath, config, logger });
      cleanups.push(() => agent.close());
      if (opts.wait !== false) await agent.waitOnline(15_000);
      return agent;
    },
    user: async (name, role) => {
      const { token } = await admin.request<{ token: string }>('POST', '/v1/users', { name, role });
      return { token, client: await connect(token) };
    },
    tunnel: async (client, device, onEvent) => {
      const tunnel = await openTunnel({ client, device, ...(onEvent ? { onEvent } : {}) });
      cleanups.push(() => tunnel.close());
      return tunnel;
    },
    close: async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    },
  };
}

/**
 * A logger that keeps every line it is given (JSON, as the hub and agent write them), for
 * tests that check what reaches the logs.
 */
export function capturingLogger(): { logger: Logger; text(): string } {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
  return { logger, text: () => lines.join('') };
}

/** A TCP echo server; with onEndReply it answers that after the client finishes sending. */
export async function echoServer(options: { onEndReply?: string } = {}): Promise<{ port: number; sockets: Set<Socket>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.pipe(socket, { end: false });
    socket.on('end', () => socket.end(options.onEndReply ?? ''));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A TCP port where connections never complete: a listener that never accepts, its accept
 * queue already full, so the kernel drops new SYNs and connect() hangs until it times out.
 * (Node always accepts, so a tiny python3 process holds the socket.)
 */
export async function blackhole(): Promise<{ port: number; close(): void }> {
  const script = [
    'import socket, sys',
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)",
    'port = s.getsockname()[1]; fill = []',
    'for i in range(3):',
    '    c = socket.socket(); c.setblocking(False)',
    '    try: c.connect(("127.0.0.1", port))',
    '    except BlockingIOError: pass',
    '    fill.append(c)',
    'print(port, flush=True)',
    'sys.stdin.read()',
  ].join('\n');
  const child = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (c: Buffer) => resolve(Number(c.toString().trim())));
  });
  return { port, close: () => child.kill() };
}
