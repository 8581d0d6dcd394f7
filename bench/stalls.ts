/**
 * Event-loop stalls of the hub under its long jobs (issue 9, item 7): no request or timer
 * may block the hub's event loop for more than 50 ms at 1,000,000 audit records, 10,000
 * devices and 10,000 pending access requests.
 *
 *   node dist/bench/stalls.js [--audit N] [--devices N] [--requests N] [--keep]
 *
 * Seeds a hub's data directory directly in SQLite (the honest way to get a million sealed,
 * hash-chained records and ten thousand rows in seconds: each row is what the hub itself
 * writes), then runs the hub in its own process, which watches its event loop
 * (monitorEventLoopDelay, 1 ms resolution), and beside it a probe process holding an
 * interactive session (1-byte ping-pong every 10 ms through hub and agent). Phase by phase
 * (audit verify, export, list pages, the access sweeps with a backlog, removing a device
 * with thousands of open requests, ...) it reports the hub's worst stall and p99, and the
 * session's worst round trip, against the 50 ms rule.
 *
 * On a shared machine the hub's process is sometimes not scheduled for tens of ms while
 * other processes run; the loop monitor cannot tell that from a stall. So every phase runs
 * --repeat times (3): a stall the hub causes recurs in every run, a scheduling hiccup does
 * not. The verdict is on the median of the runs' worst stalls; the table shows the worst of
 * all runs beside it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { enrollDevice } from '../src/agent/enroll.js';
import { HubClient } from '../src/client/hub-client.js';
import { readAdminToken, startHub } from '../src/hub/hub.js';
import { hashSecret } from '../src/protocol/tokens.js';
import { sealAuditRecord } from '../src/store/audit-chain.js';
import { silentLogger } from '../src/util/logger.js';

const RULE_MS = 50;
const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'stall-processes.js');
const { values: args } = parseArgs({
  options: {
    audit: { type: 'string', default: '1000000' },
    devices: { type: 'string', default: '10000' },
    requests: { type: 'string', default: '10000' },
    repeat: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
  },
});
const AUDIT = Number(args.audit);
const DEVICES = Number(args.devices);
const REQUESTS = Number(args.requests);
const REPEAT = Number(args.repeat);
const PER_PRINCIPAL = 20; // access.maxPendingRequestsPerPrincipal: seeded as the API would allow

/** Open requests on each device the removal phase removes (most of the pending ones). */
const hotRequests = (): number => Math.floor((REQUESTS * 0.9) / REPEAT);

const log = (text: string): void => void process.stderr.write(text + '\n');

/** A child process that answers one JSON line per command. */
class Driven {
  private readonly waiting: ((value: Record<string, unknown>) => void)[] = [];
  readonly ready: Promise<Record<string, unknown>>;
  constructor(readonly child: ChildProcess) {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    let first: ((value: Record<string, unknown>) => void) | undefined;
    this.ready = new Promise((resolve, reject) => {
      first = resolve;
      child.once('exit', (code) => reject(new Error(`${child.spawnargs.slice(1, 3).join(' ')} exited with ${code}`)));
    });
    // A child that dies mid-run ends the benchmark instead of leaving it waiting.
    child.once('exit', (code) => {
      if (code !== 0) {
        log(`${child.spawnargs.slice(1, 3).join(' ')} exited with ${code}`);
        process.exit(1);
      }
    });
    lines.on('line', (line) => {
      const value = JSON.parse(line) as Record<string, unknown>;
      if (first) {
        first(value);
        first = undefined;
      } else this.waiting.shift()?.(value);
    });
  }
  send(command: string): Promise<Record<string, unknown>> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.child.stdin?.write(command + '\n');
    });
  }
}

function drive(args: string[]): Driven {
  return new Driven(spawn(process.execPath, [CHILD, ...args], { stdio: ['pipe', 'pipe', 'inherit'] }));
}

/** Seeds the database the way the hub writes it; returns the seconds each part took. */
function seed(dbFile: string, hot: string[]): Record<string, number> {
  const db = new Database(dbFile);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const now = Date.now();
  const took: Record<string, number> = {};
  const timed = (what: string, fn: () => void): void => {
    const t0 = performance.now();
    db.transaction(fn)();
    took[what] = (performance.now() - t0) / 1000;
  };
  const principals = Math.ceil(REQUESTS / PER_PRINCIPAL);
  timed('principals', () => {
    const insert = db.prepare("INSERT INTO principals (name, role, created_at, token_id, token_hash, token_created_at) VALUES (?, 'operator', ?, ?, ?, ?)");
    for (let i = 0; i < principals; i++) insert.run(`op-${String(i).padStart(5, '0')}`, now - 86_400_000, randomBytes(8).toString('hex'), hashSecret(randomBytes(32).toString('base64url')), now - 86_400_000);
  });
  timed('devices', () => {
    const insert = db.prepare('INSERT INTO devices (name, tags, enabled, created_at) VALUES (?, ?, 1, ?)');
    for (let i = 0; i < DEVICES; i++) insert.run(`dev-${String(i).padStart(5, '0')}`, JSON.stringify({ site: `site-${i % 50}`, line: String(i % 7) }), now - 86_400_000);
    for (const name of hot) insert.run(name, '{"site":"hot"}', now - 86_400_000);
  });
  timed('requests', () => {
    // Most of them wait on a few devices (removing one ends them all); the rest are spread out.
    const insert = db.prepare("INSERT INTO access_requests (id, principal, device, duration_ms, reason, status, created_at, request_expires_at) VALUES (?, ?, ?, 3600000, ?, 'pending', ?, ?)");
    const perHot = hotRequests();
    for (let i = 0; i < REQUESTS; i++) {
      const device = i < perHot * hot.length ? (hot[Math.floor(i / perHot)] as string) : `dev-${String(i % DEVICES).padStart(5, '0')}`;
      insert.run(`ar_${randomBytes(8).toString('hex')}`, `op-${String(Math.floor(i / PER_PRINCIPAL)).padStart(5, '0')}`, device, `INC-${i}: routine maintenance`, now - 60_000, now + 3_600_000);
    }
  });
  timed('audit', () => {
    const last = db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string };
    const insert = db.prepare('INSERT INTO audit (seq, ts, actor, action, device, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    let prev = last.hash;
    for (let i = 1; i <= AUDIT; i++) {
      const seq = last.seq + i;
      const open = i % 2 === 0;
      const record = sealAuditRecord({
        seq,
        ts: now - 30 * 86_400_000 + Math.floor((i * 30 * 86_400_000) / AUDIT),
        actor: `op-${String(i % principals).padStart(5, '0')}`,
        action: open ? 'stream.open' : 'stream.close',
        device: `dev-${String(i % DEVICES).padStart(5, '0')}`,
        details: open ? { session: seq.toString(16).padStart(32, '0'), target: '127.0.0.1:22' } : { session: seq.toString(16).padStart(32, '0'), bytesToDevice: i * 7, bytesFromDevice: i * 13, reason: 'closed' },
        prevHash: prev,
      });
      insert.run(record.seq, record.ts, record.actor, record.action, record.device, JSON.stringify(record.details), record.prevHash, record.hash);
      prev = record.hash;
    }
  });
  db.close();
  return took;
}

/** Requests and grants that fall due while the hub runs: work for the 500 ms sweeps. */
function dueBacklog(dbFile: string, expiring: number, ending: number): void {
  const db = new Database(dbFile, { timeout: 5000 });
  const now = Date.now();
  const insert = db.prepare('INSERT INTO access_requests (id, principal, device, duration_ms, reason, status, created_at, request_expires_at, reviewed_by, reviewed_at, grant_starts_at, grant_ends_at) VALUES (?, ?, ?, 60000, ?, ?, ?, ?, ?, ?, ?, ?)');
  db.transaction(() => {
    for (let i = 0; i < expiring; i++) insert.run(`ar_${randomBytes(8).toString('hex')}`, `late-${i}`, `dev-${String(i % DEVICES).padStart(5, '0')}`, 'nobody reviews this', 'pending', now - 120_000, now - 1000, null, null, null, null);
    for (let i = 0; i < ending; i++) insert.run(`ar_${randomBytes(8).toString('hex')}`, `late-${i}`, `dev-${String(i % DEVICES).padStart(5, '0')}`, 'a grant that ends', 'approved', now - 120_000, now + 3_600_000, 'admin', now - 90_000, now - 90_000, now - 1000);
  })();
  db.close();
}

interface PhaseResult {
  phase: string;
  seconds: number;
  /** the median over the runs of each run's worst stall */
  hubMaxMs: number;
  /** the worst stall of any run */
  hubWorstMs: number;
  hubP99Ms: number;
  rttMaxMs: number;
  rttP99Ms: number;
  note: string;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'db-stalls-'));
  const dataDir = join(dir, 'hub');
  const hot = Array.from({ length: REPEAT }, (_, i) => `hot-dev-${i + 1}`);
  try {
    // 1. A real hub creates its PKI, admin and schema; the probe's device is enrolled for real.
    const init = await startHub({ dataDir, host: '127.0.0.1', port: 0, logger: silentLogger() });
    const token = init.bootstrapAdminToken ?? readAdminToken(dataDir);
    const admin = await HubClient.connect({ hubUrl: init.url, token, caPin: init.caPin }, { cacheDir: join(dir, 'client') });
    const { enrollmentToken } = await admin.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name: 'rtt-dev' });
    const agentConfig = join(dir, 'agent', 'agent.yaml');
    mkdirSync(dirname(agentConfig), { recursive: true });
    await enrollDevice({ token: enrollmentToken, target: '127.0.0.1:9', configPath: agentConfig, edgeName: 'probe' });
    const port = init.port;
    admin.close();
    await init.close();

    // 2. The load, seeded.
    log(`seeding ${AUDIT} audit records, ${DEVICES} devices, ${REQUESTS} pending requests ...`);
    const seeded = seed(join(dataDir, 'drawbridge.db'), hot);
    log(`seeded in ${Object.entries(seeded).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}`);

    // 3. The hub in its own process, the interactive session in another.
    const hub = drive(['hub', dataDir, String(port)]);
    const started = (await hub.ready) as { url: string; caPin: string };
    const probe = drive(['probe', agentConfig, started.url, token, started.caPin, 'rtt-dev']);
    await probe.ready;
    const client = await HubClient.connect({ hubUrl: started.url, token, caPin: started.caPin }, { cacheDir: join(dir, 'client') });
    const results: PhaseResult[] = [];

    const phase = async (name: string, work: (run: number) => Promise<string>, settleMs = 300): Promise<void> => {
      const runs: { seconds: number; hubMaxMs: number; hubP99Ms: number; rttMaxMs: number; rttP99Ms: number; note: string }[] = [];
      for (let run = 0; run < REPEAT; run++) {
        await Promise.all([hub.send('reset'), probe.send('reset')]);
        const t0 = performance.now();
        const note = await work(run);
        const seconds = (performance.now() - t0) / 1000;
        await new Promise((r) => setTimeout(r, settleMs));
        const [h, p] = await Promise.all([hub.send('report'), probe.send('report')]);
        runs.push({ seconds, hubMaxMs: h['maxMs'] as number, hubP99Ms: h['p99Ms'] as number, rttMaxMs: p['maxMs'] as number, rttP99Ms: p['p99Ms'] as number, note });
      }
      const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
      const result: PhaseResult = {
        phase: name,
        seconds: median(runs.map((r) => r.seconds)),
        hubMaxMs: median(runs.map((r) => r.hubMaxMs)),
        hubWorstMs: Math.max(...runs.map((r) => r.hubMaxMs)),
        hubP99Ms: median(runs.map((r) => r.hubP99Ms)),
        rttMaxMs: median(runs.map((r) => r.rttMaxMs)),
        rttP99Ms: median(runs.map((r) => r.rttP99Ms)),
        note: runs[0]?.note ?? '',
      };
      results.push(result);
      log(`${name}: ${result.seconds.toFixed(2)} s, hub stall max ${runs.map((r) => r.hubMaxMs.toFixed(1)).join('/')} ms (p99 ${result.hubP99Ms.toFixed(1)}), session RTT max ${runs.map((r) => r.rttMaxMs.toFixed(1)).join('/')} ms ${result.note}`);
    };
    const times = async (n: number, fn: () => Promise<unknown>): Promise<unknown> => {
      let last: unknown;
      for (let i = 0; i < n; i++) last = await fn();
      return last;
    };
    const size = (value: unknown): string => `(${(JSON.stringify(value).length / 2 ** 20).toFixed(1)} MiB answer)`;

    await phase('idle, 10,000 pending requests swept every 500 ms', async () => {
      await new Promise((r) => setTimeout(r, 3000));
      return '';
    });
    await phase(`GET /v1/devices, every page (${DEVICES + 2} devices, as devices list reads them)`, async () => {
      let pages = 0;
      for (let after: string | null = ''; after !== null; pages++) {
        const page: { next: string | null } = await client.request('GET', `/v1/devices${after ? `?after=${after}` : ''}`);
        after = page.next;
      }
      return `(${pages} pages)`;
    });
    await phase('GET /v1/access?status=pending&limit=1000 (x3)', async () => size(await times(3, () => client.request('GET', '/v1/access?status=pending&limit=1000'))));
    await phase('GET /v1/audit?limit=1000 (x3)', async () => size(await times(3, () => client.request('GET', '/v1/audit?order=desc&limit=1000'))));
    await phase('GET /v1/audit?device=...&action=... (x20)', async () => {
      await times(20, () => client.request('GET', `/v1/audit?device=dev-00042&action=stream.close&limit=100`));
      return '';
    });
    await phase('GET /v1/sessions, /v1/edges, /v1/users, /healthz, /metrics', async () => {
      for (const path of ['/v1/sessions', '/v1/edges', '/v1/users', '/healthz']) await client.request('GET', path);
      await client.raw('GET', '/metrics');
      return '';
    });
    await phase(`GET /v1/audit/verify (${AUDIT + 10} records)`, async () => {
      const result = await client.request<{ ok: boolean; checked: number }>('GET', '/v1/audit/verify');
      return `(ok ${result.ok}, ${result.checked} records)`;
    });
    await phase('GET /v1/audit/export (everything, JSON Lines)', async () => {
      let bytes = 0;
      const result = await client.raw('GET', '/v1/audit/export', undefined, (chunk) => (bytes += chunk.length));
      return `(status ${result.status}, ${(bytes / 2 ** 20).toFixed(0)} MiB)`;
    });
    await phase('access sweeps: 3,000 requests expire and 1,000 grants end at once', async (run) => {
      dueBacklog(join(dataDir, 'drawbridge.db'), 3000, 1000);
      const db = new Database(join(dataDir, 'drawbridge.db'), { readonly: true });
      try {
        const deadline = Date.now() + 60_000;
        for (;;) {
          const expired = (db.prepare("SELECT count(*) AS n FROM access_requests WHERE status = 'expired'").get() as { n: number }).n;
          if (expired >= 3000 * (run + 1) || Date.now() > deadline) return `(${expired - 3000 * run} expired)`;
          await new Promise((r) => setTimeout(r, 250));
        }
      } finally {
        db.close();
      }
    }, 1500);
    await phase(`DELETE /v1/devices/hot-dev-N (${hotRequests()} open requests end with it)`, async (run) => {
      const { removed } = await client.request<{ removed: boolean }>('DELETE', `/v1/devices/${hot[run] as string}`);
      return `(removed ${removed})`;
    }, 1000);

    client.close();
    await probe.send('stop');
    await hub.send('stop');

    const worst = results.reduce((a, b) => (b.hubMaxMs > a.hubMaxMs ? b : a));
    process.stdout.write(`\n${REPEAT} runs a phase; stall and RTT: median of the runs' worst (the worst of any run)\n\n`);
    process.stdout.write('| phase | took (s) | hub stall max (ms) | hub stall p99 (ms) | session RTT max (ms) | within 50 ms |\n|---|---:|---:|---:|---:|---|\n');
    for (const r of results) {
      process.stdout.write(`| ${r.phase} ${r.note} | ${r.seconds.toFixed(2)} | ${r.hubMaxMs.toFixed(1)} (${r.hubWorstMs.toFixed(1)}) | ${r.hubP99Ms.toFixed(1)} | ${r.rttMaxMs.toFixed(1)} | ${r.hubMaxMs <= RULE_MS ? 'yes' : 'NO'} |\n`);
    }
    process.stdout.write(`\nworst stall: ${worst.hubMaxMs.toFixed(1)} ms (${worst.phase}; worst single run ${worst.hubWorstMs.toFixed(1)} ms) against the ${RULE_MS} ms rule: ${worst.hubMaxMs <= RULE_MS ? 'met' : 'NOT met'}\n`);
    const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results', 'stalls-latest.json');
    writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), audit: AUDIT, devices: DEVICES, requests: REQUESTS, seeded, ruleMs: RULE_MS, results }, null, 2) + '\n');
    log(`figures written to ${out}`);
  } finally {
    if (!args.keep) rmSync(dir, { recursive: true, force: true });
    else log(`kept ${dir}`);
  }
}

await main();
