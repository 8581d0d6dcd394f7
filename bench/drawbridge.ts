/**
 * Drawbridge under test, as real processes started from the compiled CLI (the same entry
 * point bin/drawbridge.js loads): `drawbridge hub`, `drawbridge agent run` and
 * `drawbridge connect`, with TLS on both legs. Also the hub memory measurement: many idle
 * virtual devices on one agent process.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { dump as stringifyYaml } from 'js-yaml';
import { enrollDevice } from '../src/agent/enroll.js';
import { loadOrGenerateEdgeIdentity, signWith } from '../src/agent/identity.js';
import { enrollPayload } from '../src/protocol/identity.js';
import { measureLatency, measureThroughput } from './measure.js';
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
  /** (online - registered) / devices: the online state alone */
  perConnectionKiB: number;
  agentRssKiB: number;
  /** TCP connections from the agent process to the hub's port */
  agentHubConnections: number;
  registerSeconds: number;
  onlineSeconds: number;
}

export interface ScaleResult {
  devices: number;
  agentRssKiB: number;
  agentHubConnections: number;
  onlineSeconds: number;
}

export interface IsolationResult {
  interactiveAlone: { p50Ms: number; p99Ms: number };
  interactiveDuringBulk: { p50Ms: number; p99Ms: number };
  bulkMegabytesPerSecond: number;
  /** MB/s of a bulk stream alone, and beside a stream whose reader is frozen */
  othersAlone: number;
  othersBesideFrozen: number;
  rssGrowthKiB: { hub: number; agent: number; connect: number };
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

/** TCP connections from `pid` to `port` on 127.0.0.1, from the kernel's tables. */
export function connectionsTo(pid: number, port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1] as string);
    } catch {
      // closed while we looked
    }
  }
  let count = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && inodes.has(f[9] as string) && parseInt(f[2]?.split(':')[1] ?? '', 16) === port && f[3] === '01') count++;
    }
  }
  return count;
}

/**
 * A fleet of idle virtual devices on one agent: registered and enrolled through the REST API
 * the way `agent enroll` does it (one edge identity, a key per device), the agent config
 * written once; then one `agent run` hosts them all. Hub RSS before and after, agent RSS,
 * and the agent's TCP connections to the hub.
 */
export async function measureFleet(devices: number, logDir: string, log: (line: string) => void): Promise<MemoryResult> {
  const hub = await startHubProcess('hub-fleet', logDir);
  let agent: Started | undefined;
  try {
    for (let i = 0; i < 20; i++) await hub.health();
    await hub.client.request('GET', '/v1/devices');
    await sleep(2000);
    const baseline = rssKiB(hub.process.pid);

    const agentDir = tempDir('db-bench-fleet-');
    const keysDir = join(agentDir, 'keys');
    mkdirSync(keysDir, { mode: 0o700 });
    const edge = loadOrGenerateEdgeIdentity(join(keysDir, 'edge.key'), join(keysDir, 'edge-x25519.key'));
    edge.save();
    const entries: Record<string, unknown>[] = new Array(devices);
    const registerStart = performance.now();
    let done = 0;
    await pool(devices, 8, async (i) => {
      const name = `idle-${i}`;
      const body = decodeEnrollmentToken(await addDevice(hub, name));
      const { publicKey, privateKey } = generateKeyPairSync('ed25519');
      const devicePublicKey = (publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
      await hub.client.request('POST', '/v1/enroll', {
        id: body.id,
        secret: body.secret,
        device: body.device,
        publicKey: devicePublicKey,
        edge: {
          name: 'bench-fleet',
          hostname: 'bench',
          signingKey: edge.signingPublicKey,
          encryptionKey: edge.encryptionPublicKey,
          signature: signWith(edge.signingKey, enrollPayload(body.id, body.device, devicePublicKey, body.caPin)),
        },
      });
      writeFileSync(join(keysDir, `${name}.key`), privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
      entries[i] = { name, hubUrl: body.hubUrl, caPin: body.caPin, target: '127.0.0.1:9', keyFile: join('keys', `${name}.key`) };
      if (++done % 1000 === 0) log(`  registered ${done}/${devices} devices`);
    });
    const registerSeconds = (performance.now() - registerStart) / 1000;
    const configPath = join(agentDir, 'agent.yaml');
    writeFileSync(configPath, stringifyYaml({ edge: { name: 'bench-fleet' }, devices: entries }), { mode: 0o600 });
    await resolveTrust(hub.url, hub.caPin, join(agentDir, 'ca'));
    await sleep(2000);
    const registered = rssKiB(hub.process.pid);

    const onlineStart = performance.now();
    agent = await startProcess('agent-fleet', process.execPath, cli('agent', 'run', '--config', configPath), { logDir });
    await waitFor(async () => (await hub.health()).devicesOnline === devices, 60_000 + devices * 20, `${devices} devices online`, 250);
    const onlineSeconds = (performance.now() - onlineStart) / 1000;
    // Idle for 30 s: V8's memory reducer gives back the young generation that start-up
    // grew, so this is the RSS an idle agent and hub keep (measured at 5 s it is ~10 MB more).
    await sleep(Number(process.env["BENCH_SETTLE_MS"] ?? 30_000));
    const online = rssKiB(hub.process.pid);
    const stillOnline = (await hub.health()).devicesOnline;
    if (stillOnline !== devices) throw new Error(`only ${stillOnline}/${devices} devices stayed online`);
    return {
      devices,
      hubRssKiB: { baseline, registered, online },
      perDeviceKiB: (online - baseline) / devices,
      perConnectionKiB: (online - registered) / devices,
      agentRssKiB: rssKiB(agent.pid),
      ...(process.env["BENCH_SMAPS"] ? { smaps: readFileSync(`/proc/${agent.pid}/smaps_rollup`, "utf8") } : {}),
      agentHubConnections: connectionsTo(agent.pid, Number(new URL(hub.url).port)),
      registerSeconds,
      onlineSeconds,
    };
  } finally {
    if (agent) await stopProcess(agent);
    await hub.stop();
  }
}

/** Opens a connection asking the target for `bytes` and never reads it (a frozen reader). */
function frozenReader(port: number, bytes: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('error', reject);
    socket.once('connect', () => {
      const header = Buffer.alloc(9);
      header[0] = 0x47;
      header.writeBigUInt64BE(BigInt(bytes), 1);
      socket.write(header);
      socket.pause();
      resolve(socket);
    });
  });
}

/**
 * Isolation between streams of one agent and one client link: an interactive stream's RTT
 * alone and beside a bulk stream; a bulk stream's speed alone and beside a frozen reader,
 * with the processes' memory while the reader stays frozen.
 */
export async function measureIsolation(tunnel: { port: number; hub: HubProcess; agent: Started; connect: Started }, bytes: number): Promise<IsolationResult> {
  const rtt = async (): Promise<{ p50Ms: number; p99Ms: number }> => {
    const p = await measureLatency(tunnel.port, 400, 50);
    return { p50Ms: p.p50 / 1000, p99Ms: p.p99 / 1000 };
  };
  const interactiveAlone = await rtt();
  const bulk = measureThroughput(tunnel.port, bytes);
  await sleep(200);
  const interactiveDuringBulk = await rtt();
  const bulkResult = await bulk;
  const othersAlone = (await measureThroughput(tunnel.port, bytes)).megabytesPerSecond;
  const pids = { hub: tunnel.hub.process.pid, agent: tunnel.agent.pid, connect: tunnel.connect.pid };
  const frozen = await frozenReader(tunnel.port, 1024 * 2 ** 20);
  await sleep(1000);
  const before = { hub: rssKiB(pids.hub), agent: rssKiB(pids.agent), connect: rssKiB(pids.connect) };
  const othersBesideFrozen = (await measureThroughput(tunnel.port, bytes)).megabytesPerSecond;
  await sleep(1000);
  const after = { hub: rssKiB(pids.hub), agent: rssKiB(pids.agent), connect: rssKiB(pids.connect) };
  frozen.destroy();
  return {
    interactiveAlone,
    interactiveDuringBulk,
    bulkMegabytesPerSecond: bulkResult.megabytesPerSecond,
    othersAlone,
    othersBesideFrozen,
    rssGrowthKiB: { hub: after.hub - before.hub, agent: after.agent - before.agent, connect: after.connect - before.connect },
  };
}
