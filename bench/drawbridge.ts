/**
 * Drawbridge under test, as real processes started from the compiled CLI (the same entry
 * point bin/drawbridge.js loads): `drawbridge hub`, `drawbridge agent run` and
 * `drawbridge connect`, with TLS on both legs (client -> hub, agent -> hub).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { dump as stringifyYaml } from 'js-yaml';
import { enrollDevice } from '../src/agent/enroll.js';
import { HubClient } from '../src/client/hub-client.js';
import { startProcess, stopProcess, tempDir, waitFor, type Started } from './processes.js';
import type { Forward } from './sshd.js';

/** BUILD/bench/drawbridge.js -> BUILD/src/cli/main.js */
export const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** Extra node flags for every Drawbridge process, e.g. --cpu-prof (see --profile in run.ts). */
let nodeArgs: string[] = (process.env['BENCH_NODE_ARGS'] ?? '').split(/\s+/).filter(Boolean);
export function setNodeArgs(args: string[]): void {
  nodeArgs = args;
}
const cli = (...args: string[]): string[] => [...nodeArgs, CLI, ...args];

export interface Health {
  edgesOnline: number;
  devicesOnline: number;
  activeStreams: number;
}

export interface HubProcess {
  process: Started;
  dataDir: string;
  url: string;
  port: number;
  caPin: string;
  client: HubClient;
  /** Environment that makes CLI commands act as the admin of this hub */
  env: Record<string, string>;
  health(): Promise<Health>;
  /** POST /v1/devices: registers a device and returns its enrollment token. */
  addDevice(name: string): Promise<string>;
  stop(): Promise<void>;
}

export interface HubSettings {
  /** hub.yaml limits.streamWindow (e.g. "512KiB"); the hub's default when undefined */
  streamWindow?: string | undefined;
}

/**
 * `drawbridge hub` on a new data dir, or on `restart.dataDir` and `restart.port` (a hub
 * started again over the same database, CA and address, so its agents' configs still hold).
 */
export async function startHubProcess(name: string, logDir: string, settings: HubSettings = {}, restart?: { dataDir: string; port: number }): Promise<HubProcess> {
  const dataDir = restart?.dataDir ?? tempDir('db-bench-hub-');
  // The hub reads DATA_DIR/hub.yaml when present.
  if (settings.streamWindow) writeFileSync(join(dataDir, 'hub.yaml'), stringifyYaml({ limits: { streamWindow: settings.streamWindow } }));
  const started = await startProcess(name, process.execPath, cli('hub', '--data-dir', dataDir, '--listen', `127.0.0.1:${restart?.port ?? 0}`), {
    logDir,
    ready: /CA pin: (sha256:[0-9a-f]{64})/,
    timeoutMs: 30_000,
  });
  const url = /listening on (https:\/\/\S+) /.exec(started.stdout())?.[1];
  const caPin = started.match?.[1];
  if (!url || !caPin) throw new Error(`cannot parse the hub's start-up output:\n${started.stdout()}`);
  const adminToken = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
  const configDir = tempDir('db-bench-cfg-');
  const client = await HubClient.connect({ hubUrl: url, token: adminToken, caPin }, { cacheDir: configDir });
  return {
    process: started,
    dataDir,
    url,
    port: Number(new URL(url).port),
    caPin,
    client,
    env: { DRAWBRIDGE_HUB: url, DRAWBRIDGE_TOKEN: adminToken, DRAWBRIDGE_CA_PIN: caPin, DRAWBRIDGE_CONFIG_DIR: configDir },
    health: () => client.request('GET', '/healthz'),
    addDevice: async (device) => (await client.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name: device })).enrollmentToken,
    stop: async () => {
      client.close();
      await stopProcess(started);
    },
  };
}

/** `drawbridge agent run` on a config file. */
export function startAgentProcess(name: string, configPath: string, logDir: string): Promise<Started> {
  return startProcess(name, process.execPath, cli('agent', 'run', '--config', configPath), { logDir });
}

/** `drawbridge connect DEVICE` as the hub's admin; resolves with its local port. */
async function startConnectProcess(name: string, hub: HubProcess, device: string, logDir: string): Promise<{ process: Started; port: number }> {
  const started = await startProcess(name, process.execPath, cli('connect', device, '--listen', '127.0.0.1:0'), {
    logDir,
    env: hub.env,
    ready: /forwarding 127\.0\.0\.1:(\d+) ->/,
  });
  return { process: started, port: Number(started.match?.[1]) };
}

/** What a default Node TLS client (as in agent and client) negotiates with the hub. */
function negotiatedCipher(hubUrl: string): Promise<string> {
  const url = new URL(hubUrl);
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: url.hostname, port: Number(url.port), rejectUnauthorized: false }, () => {
      resolve(`${socket.getProtocol() ?? '?'} ${socket.getCipher().name}`);
      socket.destroy();
    });
    socket.once('error', () => resolve('unknown'));
  });
}

export interface DrawbridgeTunnel extends Forward {
  hub: HubProcess;
  agent: Started;
  connect: Started;
  /**
   * A second device on the same agent, reached through a second `drawbridge connect`
   * (its own client link): streams through it share only the agent's link and the hub.
   */
  second: { device: string; port: number; connect: Started };
}

/**
 * hub + one agent hosting two devices (both forwarding to the target) + one `drawbridge
 * connect` per device. The returned port leads through the first connect to the target.
 */
export async function startDrawbridgeTunnel(targetPort: number, logDir: string, settings: HubSettings = {}): Promise<DrawbridgeTunnel> {
  const hub = await startHubProcess('hub', logDir, settings);
  const configPath = join(tempDir('db-bench-agent-'), 'agent.yaml');
  const devices = ['bench-target', 'bench-second'] as const;
  // Two devices: `agent enroll` itself, as an operator would run it.
  for (const device of devices) {
    await enrollDevice({ token: await hub.addDevice(device), target: `127.0.0.1:${targetPort}`, configPath, edgeName: 'bench-edge' });
  }
  const agent = await startAgentProcess('agent', configPath, logDir);
  await waitFor(async () => (await hub.health()).devicesOnline >= devices.length, 20_000, 'the bench devices online');
  const first = await startConnectProcess('connect', hub, devices[0], logDir);
  const second = await startConnectProcess('connect-second', hub, devices[1], logDir);
  return {
    port: first.port,
    processes: [
      { name: 'connect', pid: first.process.pid },
      { name: 'hub', pid: hub.process.pid },
      { name: 'agent', pid: agent.pid },
    ],
    details: { cipher: await negotiatedCipher(hub.url), streamWindow: settings.streamWindow ?? 'hub default' },
    hub,
    agent,
    connect: first.process,
    second: { device: devices[1], port: second.port, connect: second.process },
    // A stream ends at the hub a little after the load generator saw it close.
    settle: () => waitFor(async () => (await hub.health()).activeStreams === 0, 15_000, 'every stream closed at the hub', 20),
    stop: async () => {
      await stopProcess(second.process);
      await stopProcess(first.process);
      await stopProcess(agent);
      await hub.stop();
    },
  };
}
