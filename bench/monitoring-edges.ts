/**
 * Child process of bench/monitoring.ts: simulates many edges in one process. Each has its own
 * Ed25519 key and its own real link (TLS, WebSocket, edge.auth) to the hub and speaks the
 * telemetry protocol as an agent does. Driven over IPC:
 *   parent -> {cmd: 'keys', count, file}     child writes the edges' ids and public keys to file
 *   parent -> {cmd: 'connect', hubUrl, caPem, caPin, parallel}   every edge links up
 *   parent -> {cmd: 'ingest', spreadMs}      every edge sends its checkpoint, full inventories and three event batches
 *   parent -> {cmd: 'steady', spreadMs}      every edge sends a digest checkpoint and one small event batch (a quiet fleet's traffic)
 *   parent -> {cmd: 'stop'}
 * and answers each with {done, ...figures}.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { encodeEnvelope, PROTOCOL_VERSION, type MessageSpec } from '../src/protocol/control.js';
import { edgeIdOf } from '../src/protocol/identity.js';
import { TelemetryEvents, TelemetryInventory, TelemetryState, type InventoryName, type InventoryRow, type Payload, type TelemetryEvent } from '../src/protocol/messages/index.js';
import { checkpointDigest, encodePayload, stateHash } from '../src/protocol/telemetry-codec.js';
import type { Link } from '../src/transport/link.js';
import { dialTelemetryEdge } from './telemetry-edge-link.js';

interface SimEdge {
  id: string;
  key: KeyObject;
  publicKey: string;
  link?: Link;
}

const edges: SimEdge[] = [];
let bytesSent = 0;
const send = (message: Record<string, unknown>): void => void process.send?.(message);

async function pool(count: number, parallel: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, async () => {
    while (next < count) await job(next++);
  }));
}

function inventories(): Record<Exclude<InventoryName, 'sources'>, InventoryRow[]> {
  const ports: InventoryRow[] = [22, 443, 8080, 1883, 502].map((port) => ({ k: `tcp/0.0.0.0:${port}`, proto: 'tcp', addr: '0.0.0.0', port, proc: 'svc' }));
  for (let i = 0; i < 15; i++) ports.push({ k: `tcp/127.0.0.1:${9000 + i}`, proto: 'tcp', addr: '127.0.0.1', port: 9000 + i, proc: 'node' });
  const users: InventoryRow[] = Array.from({ length: 30 }, (_, i) => ({ k: `user${i}`, uid: 1000 + i, gid: 1000 + i, shell: '/bin/bash' }));
  return {
    ports,
    users,
    admins: [{ k: 'uid0:root', user: 'root', via: 'uid0' }, { k: 'sudo:user0', user: 'user0', via: 'sudo' }],
    sshd: [{ k: 'sshd', permitRootLogin: 'yes', passwordAuthentication: 'yes', permitEmptyPasswords: 'no', kbdInteractiveAuthentication: 'no', ports: '22', listen: '0.0.0.0,::', from: 'sshd -T' }],
    firewall: [{ k: 'firewall', backend: 'nftables', inputPolicy: 'accept', acceptAll: false, dropRules: 0, inputChains: 1 }],
    facts: [{ k: 'facts', os: 'Debian GNU/Linux 12 (bookworm)', kernel: '6.1.0-18-arm64', arch: 'arm64', agent: '0.1.0', hostname: 'edge', bootAt: '2026-01-01T00:00:00.000Z' }],
  };
}

async function request<B, R>(link: Link, spec: MessageSpec<B, R>, body: B): Promise<R> {
  bytesSent += Buffer.byteLength(encodeEnvelope({ v: PROTOCOL_VERSION, type: spec.type, id: 1, body }));
  return link.request(spec, body, 600_000);
}

async function connect(edge: SimEdge, hubUrl: string, trust: { caPem: string; caPin: string }): Promise<void> {
  edge.link = await dialTelemetryEdge(hubUrl, trust, trust.caPin, edge);
}

async function ingestOne(edge: SimEdge, index: number, payloads: Map<string, Payload>, rows: ReturnType<typeof inventories>): Promise<void> {
  const link = edge.link as Link;
  const hashes: Partial<Record<InventoryName, { seq: number; hash: string }>> = {};
  for (const [name, list] of Object.entries(rows)) hashes[name as InventoryName] = { seq: 0, hash: stateHash(list) };
  const queueId = index.toString(16).padStart(16, '0');
  const answer = await request(link, TelemetryState, { checkpointIntervalMs: 300_000, inventories: hashes, queueId, queued: 0, dropped: 0 });
  for (const name of answer.resync) {
    if (name === 'sources') continue;
    await request(link, TelemetryInventory, { inventory: name, seq: 1, full: true, payload: payloads.get(name) as Payload });
  }
  // Each edge is attacked from a source of its own: eight wrong passwords, five unknown users, then a root login.
  const source = `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`;
  const t = Date.now();
  const batches: TelemetryEvent[][] = [
    [{ kind: 'ssh.failure', t, last: t + 7000, n: 8, src: source, user: 'root', method: 'password', line: `Failed password for root from ${source} port 40000 ssh2` }],
    ['oracle', 'pi', 'admin', 'test', 'guest'].map((user, i) => ({ kind: 'ssh.invalid-user' as const, t: t + 8000 + i, n: 1, src: source, user, line: `Invalid user ${user} from ${source} port ${41000 + i}` })),
    [{ kind: 'ssh.success', t: t + 20_000, n: 1, src: source, user: 'root', method: 'password', line: `Accepted password for root from ${source} port 42000 ssh2` }],
  ];
  for (const [i, events] of batches.entries()) await request(link, TelemetryEvents, { queueId, batch: i + 1, payload: await encodePayload({ events }) });
}

process.on('message', (message: { cmd: string; count?: number; file?: string; hubUrl?: string; caPem?: string; caPin?: string; parallel?: number; spreadMs?: number }) => {
  const run = async (): Promise<Record<string, unknown>> => {
    switch (message.cmd) {
      case 'keys': {
        for (let i = 0; i < (message.count ?? 0); i++) {
          const { privateKey, publicKey } = generateKeyPairSync('ed25519');
          const der = publicKey.export({ type: 'spki', format: 'der' });
          edges.push({ id: edgeIdOf(der), key: privateKey, publicKey: der.toString('base64') });
        }
        writeFileSync(message.file as string, JSON.stringify(edges.map((e) => ({ id: e.id, signingKey: e.publicKey }))));
        return {};
      }
      case 'connect': {
        const started = performance.now();
        let failed = 0;
        let firstError = '';
        await pool(edges.length, message.parallel ?? 100, async (i) => {
          try {
            await connect(edges[i] as SimEdge, message.hubUrl as string, { caPem: message.caPem as string, caPin: message.caPin as string });
          } catch (error) {
            failed++;
            firstError ||= (error as Error).message;
          }
        });
        return { seconds: (performance.now() - started) / 1000, failed, firstError };
      }
      case 'ingest': {
        const rows = inventories();
        const payloads = new Map<string, Payload>();
        for (const [name, list] of Object.entries(rows)) payloads.set(name, await encodePayload({ rows: list, hash: stateHash(list) }));
        bytesSent = 0;
        const started = performance.now();
        let failed = 0;
        let firstError = '';
        // Edges do not report in the same millisecond: after a hub restart they redial with full
        // jitter up to 10 s (the agent's default backoff cap), and each then syncs. So each edge
        // starts at a random moment within `spreadMs`.
        const spread = message.spreadMs ?? 10_000;
        await Promise.all(
          edges.map((edge, i) =>
            new Promise((r) => setTimeout(r, Math.random() * spread)).then(() => ingestOne(edge, i, payloads, rows)).catch((error: unknown) => {
              failed++;
              firstError ||= (error as Error).message;
            }),
          ),
        );
        return { seconds: (performance.now() - started) / 1000, failed, firstError, bytesSent };
      }
      case 'steady': {
        const rows = inventories();
        const states: Partial<Record<InventoryName, { seq: number; hash: string }>> = {};
        for (const [name, list] of Object.entries(rows)) states[name as InventoryName] = { seq: 1, hash: stateHash(list) };
        const digest = checkpointDigest(states);
        bytesSent = 0;
        const started = performance.now();
        let failed = 0;
        let firstError = '';
        let resyncs = 0;
        const spread = message.spreadMs ?? 60_000;
        await Promise.all(
          edges.map((edge, i) =>
            new Promise((r) => setTimeout(r, Math.random() * spread))
              .then(async () => {
                const link = edge.link as Link;
                const queueId = i.toString(16).padStart(16, '0');
                const answer = await request(link, TelemetryState, { checkpointIntervalMs: 300_000, digest, queueId, queued: 0, dropped: 0 });
                if (answer.inventories) resyncs++;
                const src = `172.16.${(i >> 8) & 255}.${i & 255}`;
                const events: TelemetryEvent[] = [{ kind: 'ssh.failure', t: Date.now(), n: 2, src, user: 'admin', method: 'password', line: `Failed password for admin from ${src} port 50000 ssh2` }];
                await request(link, TelemetryEvents, { queueId, batch: 4, payload: await encodePayload({ events }) });
              })
              .catch((error: unknown) => {
                failed++;
                firstError ||= (error as Error).message;
              }),
          ),
        );
        return { seconds: (performance.now() - started) / 1000, failed, firstError, bytesSent, resyncs };
      }
      case 'stop':
        for (const edge of edges) edge.link?.close(1000, 'bench done');
        setTimeout(() => process.exit(0), 500);
        return {};
      default:
        throw new Error(`unknown command ${message.cmd}`);
    }
  };
  run().then(
    (result) => send({ done: message.cmd, ...result }),
    (error: unknown) => send({ done: message.cmd, error: (error as Error).message }),
  );
});
