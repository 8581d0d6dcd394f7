/**
 * Secrets benchmark (not part of `npm run bench`): `node dist/bench/secrets.js [--edges N]
 * [--rounds R] [--read-seconds S] [--versions V] [--profile FILE]` (`--profile`: a CPU profile
 * of the put-to-delivered rounds only, for Chrome DevTools or `node --cpu-prof` tools).
 *
 *  1. Put-to-delivered: one in-process hub and N simulated edges in this same process (real
 *     TLS links, the real agent link and secret feature, each edge with its own X25519 key
 *     and encrypted cache; caches in /dev/shm when it exists, so N edges sharing one disk
 *     do not measure fsync). A secret allowed by a tag every edge's device carries; each
 *     round writes a new version and times, per edge, from the write to the moment the
 *     edge has opened and stored it. p50/p99 over every delivery of every round.
 *  2. Local API reads per second: 16 concurrent keep-alive clients on one agent's Unix
 *     socket (clients in this process too), for S seconds.
 *  3. Hub memory per stored version: the heap after a full GC, before and after writing V
 *     versions of 1 KiB (values live sealed in SQLite, not in memory), and the RSS growth over
 *     those writes. Measured first, on the fresh hub: measured after the edges, memory they
 *     freed made RSS fall.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent, createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { AgentConfigSchema, type AgentDeviceConfig } from '../src/agent/config.js';
import { EdgeLink } from '../src/agent/edge-link.js';
import { loadOrGenerateEdgeIdentity, signWith, type EdgeIdentity } from '../src/agent/identity.js';
import { AppTokenStore } from '../src/agent/vault/app-tokens.js';
import { FileCacheKeyStore } from '../src/agent/vault/cache-key.js';
import { EdgeSecrets } from '../src/agent/vault/edge-secrets.js';
import { startLocalApi } from '../src/agent/vault/local-api.js';
import { SecretCache } from '../src/agent/vault/secret-cache.js';
import { HubClient } from '../src/client/hub-client.js';
import { resolveTrust } from '../src/client/trust.js';
import { parseHubConfig } from '../src/hub/config.js';
import { startHub } from '../src/hub/hub.js';
import { enrollPayload } from '../src/protocol/identity.js';
import { decodeEnrollmentToken } from '../src/protocol/tokens.js';
import { systemClock } from '../src/util/clock.js';
import { silentLogger } from '../src/util/logger.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const at = args.indexOf(`--${name}`);
  const value = at >= 0 ? Number(args[at + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
};
const EDGES = option('edges', 1000);
const ROUNDS = option('rounds', 5);
const READ_SECONDS = option('read-seconds', 3);
const VERSIONS = option('versions', 2000);
const PROFILE = args.includes('--profile') ? args[args.indexOf('--profile') + 1] : undefined;
if (args.includes('--profile') && !PROFILE) throw new Error('--profile needs a file name');

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const log = (line: string): void => void process.stderr.write(`${line}\n`);
const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function pool(count: number, parallel: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, async () => {
    while (next < count) await job(next++);
  }));
}

interface SimulatedEdge {
  link: EdgeLink;
  secrets: EdgeSecrets;
  identity: EdgeIdentity;
  dir: string;
}

async function enrollEdge(client: HubClient, i: number, root: string): Promise<{ identity: EdgeIdentity; device: AgentDeviceConfig; dir: string }> {
  const dir = join(root, `edge-${i}`);
  mkdirSync(join(dir, 'keys'), { recursive: true, mode: 0o700 });
  const identity = loadOrGenerateEdgeIdentity(join(dir, 'keys', 'edge.key'), join(dir, 'keys', 'edge-x25519.key'));
  const name = `bench-${i}`;
  const added = await client.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name, tags: { bench: 'secrets' } });
  const token = decodeEnrollmentToken(added.enrollmentToken);
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const devicePublicKey = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  await client.request('POST', '/v1/enroll', {
    id: token.id,
    secret: token.secret,
    device: name,
    publicKey: devicePublicKey,
    edge: {
      name: `edge-${i}`,
      nameChosen: true,
      hostname: 'bench',
      signingKey: identity.signingPublicKey,
      encryptionKey: identity.encryptionPublicKey,
      signature: signWith(identity.signingKey, enrollPayload(token.id, name, devicePublicKey, token.caPin)),
    },
  });
  identity.save();
  writeFileSync(join(dir, 'keys', `${name}.key`), privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  return { identity, dir, device: { name, hubUrl: token.hubUrl, caPin: token.caPin, target: '127.0.0.1:9', keyFile: join(dir, 'keys', `${name}.key`), maxStreams: 4 } };
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'db-bench-secrets-'));
  const hub = await startHub({ dataDir: join(root, 'hub'), host: '127.0.0.1', port: 0, logger: silentLogger(), config: parseHubConfig({ server: { maxConnectionsPerAddress: 100_000 }, limits: { authFailuresPerMinute: 100_000 } }, 'bench') });
  const admin = await HubClient.connect({ hubUrl: hub.url, token: hub.bootstrapAdminToken as string, caPin: hub.caPin }, { cacheDir: join(root, 'ca') });
  const vault = hub.services.vault;
  if (!vault) throw new Error('the hub has no vault');
  const edges: SimulatedEdge[] = [];
  try {
    // ---- 3. hub memory per stored version (first, while nothing else has come and gone) ----
    const value = Buffer.alloc(1024, 'v');
    for (let i = 0; i < 50; i++) await vault.put('bench', 'bench/memory/warm-up', value); // compiled code and prepared statements
    gc();
    await new Promise((r) => setTimeout(r, 200));
    gc();
    const before = process.memoryUsage();
    for (let i = 0; i < VERSIONS; i++) await vault.put('bench', `bench/memory/s-${i % Math.ceil(VERSIONS / 10)}`, value);
    gc();
    await new Promise((r) => setTimeout(r, 200));
    gc();
    const after = process.memoryUsage();

    // ---- 1. put-to-delivered ----
    let t = performance.now();
    const enrolled = new Array<Awaited<ReturnType<typeof enrollEdge>>>(EDGES);
    await pool(EDGES, 8, async (i) => {
      enrolled[i] = await enrollEdge(admin, i, root);
      if ((i + 1) % 250 === 0) log(`enrolled ${i + 1}/${EDGES} edges`);
    });
    log(`enrolled ${EDGES} edges in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const trust = await resolveTrust(hub.url, hub.caPin, join(root, 'ca'));
    const limits = AgentConfigSchema.parse({}).limits;
    const arrivals = new Map<number, number[]>();
    t = performance.now();
    for (const e of enrolled) {
      const secrets = new EdgeSecrets(e.identity, new SecretCache(join(e.dir, 'cache.json'), new FileCacheKeyStore(join(e.dir, 'keys', 'cache.key')), e.identity.id, silentLogger()), systemClock, silentLogger(), 10_000);
      secrets.start();
      secrets.onChange((change) => {
        if (change.version !== undefined) (arrivals.get(change.version) ?? arrivals.set(change.version, []).get(change.version) as number[]).push(performance.now());
      });
      const link = new EdgeLink(e.device.hubUrl, e.device.caPin, [e.device], e.identity, trust, limits, silentLogger(), systemClock, (d) => d.keyFile, [secrets]);
      link.start();
      edges.push({ link, secrets, identity: e.identity, dir: e.dir });
    }
    // Every edge dials from 127.0.0.1: the per-address connection cap is lifted above.
    const onlineBy = performance.now() + 300_000;
    while (hub.services.registry.edgeCount < EDGES) {
      if (performance.now() > onlineBy) throw new Error(`only ${hub.services.registry.edgeCount}/${EDGES} edges online after 5 minutes`);
      await new Promise((r) => setTimeout(r, 50));
    }
    log(`${EDGES} edges online in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    await vault.put('bench', 'bench/db-password', Buffer.from('warm-up-value'));
    await vault.allow('bench', 'bench/db-password', { tag: 'bench=secrets' });
    const waitAll = async (version: number): Promise<void> => {
      while ((arrivals.get(version)?.length ?? 0) < EDGES) await new Promise((r) => setTimeout(r, 5));
    };
    await waitAll(1);
    const latencies: number[] = [];
    const profiler = PROFILE ? new Session() : undefined;
    if (profiler) {
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.start');
    }
    for (let round = 0; round < ROUNDS; round++) {
      const started = performance.now();
      const { version } = await vault.put('bench', 'bench/db-password', Buffer.from(`value-round-${round}-${'x'.repeat(64)}`));
      await waitAll(version);
      for (const at of arrivals.get(version) ?? []) latencies.push(at - started);
      log(`round ${round + 1}/${ROUNDS}: all ${EDGES} edges hold version ${version} after ${(Math.max(...(arrivals.get(version) ?? [])) - started).toFixed(0)} ms`);
      await new Promise((r) => setTimeout(r, 500));
    }
    if (profiler && PROFILE) {
      const { profile } = await profiler.post('Profiler.stop');
      writeFileSync(PROFILE, JSON.stringify(profile));
      profiler.disconnect();
      log(`CPU profile of the rounds written to ${PROFILE}`);
    }
    latencies.sort((a, b) => a - b);

    // ---- 2. local API reads per second ----
    const first = edges[0] as SimulatedEdge;
    const tokens = new AppTokenStore(join(first.dir, 'app-tokens.json'));
    const token = tokens.add('bench-app', ['bench/db-password'], Date.now());
    const socketPath = join(first.dir, 'agent.sock');
    const api = await startLocalApi({ socketPath, mode: 0o600, tokens, secrets: first.secrets, adminTokenFile: join(first.dir, 'local-admin.token'), logger: silentLogger() });
    let failures = 0;
    /** Requests per second from 16 keep-alive clients on a Unix socket for READ_SECONDS. */
    const hammer = async (path: string, socket: string): Promise<number> => {
      const agent = new HttpAgent({ keepAlive: true, maxSockets: 16 });
      let done = 0;
      const readOne = (): Promise<void> =>
        new Promise((resolve) => {
          const req = request({ socketPath: socket, agent, path, headers: { authorization: `Bearer ${token}` } }, (res) => {
            res.resume();
            res.on('end', () => {
              if (res.statusCode === 200) done++;
              else failures++;
              resolve();
            });
          });
          req.on('error', () => (failures++, resolve()));
          req.end();
        });
      const deadline = performance.now() + READ_SECONDS * 1000;
      const started = performance.now();
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (performance.now() < deadline) await readOne();
      }));
      agent.destroy();
      return done / ((performance.now() - started) / 1000);
    };
    const readsPerSecond = await hammer('/v1/secrets/bench/db-password', socketPath);
    await api.close();
    // The same clients against a bare node:http server on a Unix socket: the ceiling on this machine now.
    const bareSocket = join(first.dir, 'bare.sock');
    const bare = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
      res.end('{}');
    });
    await new Promise<void>((resolve) => bare.listen(bareSocket, resolve));
    const bareReadsPerSecond = await hammer('/', bareSocket);
    await new Promise<void>((resolve) => {
      bare.close(() => resolve());
      bare.closeAllConnections();
    });


    const result = {
      edges: EDGES,
      rounds: ROUNDS,
      putToDeliveredMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies[latencies.length - 1] ?? NaN, deliveries: latencies.length },
      localApi: { readsPerSecond: Math.round(readsPerSecond), bareHttpPerSecond: Math.round(bareReadsPerSecond), failures, clients: 16, seconds: READ_SECONDS },
      hubMemoryPerVersion: { versions: VERSIONS, valueBytes: 1024, heapBytes: Math.round((after.heapUsed - before.heapUsed) / VERSIONS), rssGrowthBytes: after.rss - before.rss },
    };
    process.stdout.write(
      [
        `secrets bench: ${EDGES} simulated edges in one process, ${ROUNDS} rounds`,
        `  put-to-delivered   p50 ${result.putToDeliveredMs.p50.toFixed(1)} ms   p99 ${result.putToDeliveredMs.p99.toFixed(1)} ms   max ${result.putToDeliveredMs.max.toFixed(1)} ms   (${latencies.length} deliveries)`,
        `  local API reads    ${result.localApi.readsPerSecond} reads/s (16 keep-alive clients, ${READ_SECONDS} s, ${failures} failures; a bare node:http server on a Unix socket: ${result.localApi.bareHttpPerSecond}/s)`,
        `  hub memory         ${result.hubMemoryPerVersion.heapBytes} B heap per stored version (${VERSIONS} versions of 1 KiB); RSS +${(result.hubMemoryPerVersion.rssGrowthBytes / 2 ** 20).toFixed(1)} MiB over those writes (allocator and caches, levelling off; not held per version)`,
        '',
      ].join('\n'),
    );
    mkdirSync(new URL('../../bench/results/', import.meta.url), { recursive: true });
    writeFileSync(new URL('../../bench/results/secrets-latest.json', import.meta.url), JSON.stringify({ at: new Date().toISOString(), ...result }, null, 2) + '\n');
  } finally {
    for (const edge of edges) await edge.link.stop().catch(() => undefined);
    admin.close();
    await hub.close();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`secrets bench failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
