/**
 * Drawbridge under test, as real processes started from the compiled CLI (the same entry
 * point bin/drawbridge.js loads): `drawbridge hub`, `drawbridge agent run` and
 * `drawbridge connect`, with TLS on both legs. Also the hub memory measurement: many idle
 * virtual devices on one agent process.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { stringify as stringifyYaml } from 'yaml';
import { enrollDevice } from '../src/agent/enroll.js';
import { HubClient } from '../src/client/hub-client.js';
import { resolveTrust } from '../src/client/trust.js';
import { decodeEnrollmentToken } from '../src/protocol/tokens.js';
import { rssKiB, startProcess, stopProcess, tempDir, waitFor, type Started } from './processes.js';
import type { Forward } from './sshd.js';

/** BUILD/bench/drawbridge.js -> BUILD/src/cli/main.js */
export const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** Extra node flags for every Drawbridge process, e.g. --cpu-prof (see --profile in run.ts). */
let nodeArgs: string[] = (process.env['BENCH_NODE_ARGS'] ?? '').split(/\s+/).filter(Boolean);
export function setNodeArgs(args: string[]): void {
  nodeArgs = args;
}
const cli = (...args: string[]): string[] => [...nodeArgs, CLI, ...args];

export interface HubProcess {
  process: Started;
  url: string;
  caPin: string;
  adminToken: string;
  client: HubClient;
  /** Environment that makes CLI commands act as the admin of this hub */
  env: Record<string, string>;
  health(): Promise<{ devicesOnline: number; activeStreams: number }>;
  stop(): Promise<void>;
}

export async function startHubProcess(name: string, logDir: string): Promise<HubProcess> {
  const dataDir = tempDir('db-bench-hub-');
  const started = await startProcess(name, process.execPath, cli('hub', '--data-dir', dataDir, '--listen', '127.0.0.1:0'), {
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
    url,
    caPin,
    adminToken,
    client,
    env: { DRAWBRIDGE_HUB: url, DRAWBRIDGE_TOKEN: adminToken, DRAWBRIDGE_CA_PIN: caPin, DRAWBRIDGE_CONFIG_DIR: configDir },
    health: () => client.request('GET', '/healthz'),
    stop: async () => {
      client.close();
      await stopProcess(started);
    },
  };
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

async function addDevice(hub: HubProcess, name: string): Promise<string> {
  const { enrollmentToken } = await hub.client.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name });
  return enrollmentToken;
}

/** hub + agent + `drawbridge connect`: the returned port leads through the hub to the target. */
export async function startDrawbridgeTunnel(targetPort: number, logDir: string): Promise<Forward & { hub: HubProcess; agent: Started; connect: Started }> {
  const hub = await startHubProcess('hub', logDir);
  const agentDir = tempDir('db-bench-agent-');
  const configPath = join(agentDir, 'agent.yaml');
  const device = 'bench-target';
  await enrollDevice({ token: await addDevice(hub, device), target: `127.0.0.1:${targetPort}`, configPath });
  const agent = await startProcess('agent', process.execPath, cli('agent', 'run', '--config', configPath), { logDir });
  await waitFor(async () => (await hub.health()).devicesOnline >= 1, 20_000, 'the bench device online');
  const connect = await startProcess('connect', process.execPath, cli('connect', device, '--listen', '127.0.0.1:0'), {
    logDir,
    env: hub.env,
    ready: /forwarding 127\.0\.0\.1:(\d+) ->/,
  });
  return {
    port: Number(connect.match?.[1]),
    processes: [connect, agent, hub.process],
    details: { cipher: await negotiatedCipher(hub.url) },
    hub,
    agent,
    connect,
    stop: async () => {
      await stopProcess(connect);
      await stopProcess(agent);
      await hub.stop();
    },
  };
}

export interface MemoryResult {
  devices: number;
  /** hub RSS in KiB: after warm-up, after registering the devices, with all of them online */
  hubRssKiB: { baseline: number; registered: number; online: number };
  /** (online - baseline) / devices: the headline figure */
  perDeviceKiB: number;
  /** (online - registered) / devices: the idle connections alone */
  perConnectionKiB: number;
  agentRssKiB: number;
  agentPerDeviceKiB: number;
  registerSeconds: number;
  onlineSeconds: number;
}

/** Runs `count` async jobs with at most `parallel` in flight. */
async function pool(count: number, parallel: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await job(next++);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, () => worker()));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Hub memory per idle connected virtual device: a fresh hub, N devices registered and
 * enrolled through the REST API, one `agent run` hosting all of them, RSS before and after.
 */
export async function measureHubMemory(devices: number, logDir: string, log: (line: string) => void): Promise<MemoryResult> {
  const hub = await startHubProcess('hub-memory', logDir);
  let agent: Started | undefined;
  try {
    // Warm-up: exercise the API paths used below, then let the process settle.
    for (let i = 0; i < 20; i++) await hub.health();
    await hub.client.request('GET', '/v1/devices');
    await sleep(2000);
    const baseline = rssKiB(hub.process.pid);

    const agentDir = tempDir('db-bench-agents-');
    const keysDir = join(agentDir, 'keys');
    mkdirSync(keysDir, { mode: 0o700 });
    const entries: Record<string, unknown>[] = new Array(devices);
    const registerStart = performance.now();
    let done = 0;
    // Enrollment as `agent enroll` does it (POST /v1/enroll with a locally generated key),
    // but writing the config once at the end instead of rewriting it per device.
    await pool(devices, 8, async (i) => {
      const name = `idle-${i}`;
      const body = decodeEnrollmentToken(await addDevice(hub, name));
      const { publicKey, privateKey } = generateKeyPairSync('ed25519');
      await hub.client.request('POST', '/v1/enroll', {
        id: body.id,
        secret: body.secret,
        device: body.device,
        publicKey: (publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64'),
      });
      writeFileSync(join(keysDir, `${name}.key`), privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
      entries[i] = { name, hubUrl: body.hubUrl, caPin: body.caPin, target: '127.0.0.1:9', keyFile: join('keys', `${name}.key`) };
      if (++done % 1000 === 0) log(`  registered ${done}/${devices} devices`);
    });
    const registerSeconds = (performance.now() - registerStart) / 1000;
    const configPath = join(agentDir, 'agent.yaml');
    writeFileSync(configPath, stringifyYaml({ devices: entries }), { mode: 0o600 });
    // The pinned CA cache that `agent enroll` would have written.
    await resolveTrust(hub.url, hub.caPin, join(agentDir, 'ca'));
    await sleep(2000);
    const registered = rssKiB(hub.process.pid);

    const onlineStart = performance.now();
    agent = await startProcess('agent-memory', process.execPath, cli('agent', 'run', '--config', configPath), { logDir });
    let lastReport = 0;
    await waitFor(
      async () => {
        const online = (await hub.health()).devicesOnline;
        if (online - lastReport >= 1000) {
          lastReport = online - (online % 1000);
          log(`  ${online}/${devices} devices online`);
        }
        return online === devices;
      },
      60_000 + devices * 20,
      `${devices} devices online`,
      250,
    );
    const onlineSeconds = (performance.now() - onlineStart) / 1000;
    await sleep(5000);
    const online = rssKiB(hub.process.pid);
    const agentRss = rssKiB(agent.pid);
    const stillOnline = (await hub.health()).devicesOnline;
    if (stillOnline !== devices) throw new Error(`only ${stillOnline}/${devices} devices stayed online`);
    return {
      devices,
      hubRssKiB: { baseline, registered, online },
      perDeviceKiB: (online - baseline) / devices,
      perConnectionKiB: (online - registered) / devices,
      agentRssKiB: agentRss,
      agentPerDeviceKiB: agentRss / devices,
      registerSeconds,
      onlineSeconds,
    };
  } finally {
    if (agent) await stopProcess(agent);
    await hub.stop();
  }
}
