/**
 * `npm run bench`: Drawbridge against direct TCP, a socat relay and OpenSSH `ssh -L`, all on
 * loopback in one run, plus the hub's memory per idle virtual device. Prints a table with
 * ratios to ssh -L and writes bench/results/latest.json. See bench/README.md.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { measureFleet, measureIsolation, setNodeArgs, startDrawbridgeTunnel, type HubProcess, type IsolationResult, type MemoryResult, type ScaleResult } from './drawbridge.js';
import { measureLatency, measureSetup, measureStreamRate, measureThroughput } from './measure.js';
import { cleanup, killAllNow, startProcess, stopProcess, tempDir, type Started } from './processes.js';
import { evaluateTargets, PATH_LABELS, PATHS, renderTable, summarize, type PathName, type PathResult, type RoundResult } from './report.js';
import { hasCommand, SSHD, startBastionChain, startSocat, startSshForward, toolVersion, type Forward } from './sshd.js';
import { parseSize } from '../src/util/schemas.js';

const USAGE = `usage: npm run bench -- [options]   (or node dist/bench/run.js [options])
  --rounds N           interleaved rounds; each round runs every path, in rotating order (default 3)
  --bytes SIZE         bytes pushed one way per throughput run (default 512MiB; e.g. 1GiB)
  --round-trips N      1-byte ping-pongs for RTT (default 2000, after 200 warm-up)
  --setups N           sequential new connections for setup time (default 300, after 20 warm-up)
  --concurrency N      streams in flight for new streams per second (default 16)
  --rate-seconds S     how long each streams-per-second run lasts (default 3)
  --devices N          idle virtual devices for the hub memory figure (default 10000)
  --paths LIST         comma-separated subset of direct,socat,ssh,bastion,drawbridge (default all)
  --skip-fleet         skip the 1,000-device agent and the hub memory runs
  --quick              1 round, 256MiB, 100 setups, 2 s rate runs, 1,000 devices
  --out FILE           results JSON (default bench/results/latest.json)
  --profile DIR        run the Drawbridge processes with --cpu-prof, writing profiles to DIR
  --help`;

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer (got "${text}")`);
  return n;
}

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    bytes: { type: 'string', default: '512MiB' },
    'round-trips': { type: 'string', default: '2000' },
    setups: { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '16' },
    'rate-seconds': { type: 'string', default: '3' },
    devices: { type: 'string', default: '10000' },
    paths: { type: 'string', default: PATHS.join(',') },
    'skip-fleet': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    profile: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (values.help) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}

const quick = values.quick;
const settings = {
  rounds: quick ? 1 : positiveInt(values.rounds, '--rounds'),
  bytes: parseSize(quick ? '256MiB' : values.bytes),
  roundTrips: positiveInt(values['round-trips'], '--round-trips'),
  latencyWarmup: 200,
  setups: quick ? 100 : positiveInt(values.setups, '--setups'),
  setupWarmup: 20,
  concurrency: positiveInt(values.concurrency, '--concurrency'),
  rateSeconds: quick ? 2 : Number(values['rate-seconds']),
  devices: quick ? 1000 : positiveInt(values.devices, '--devices'),
  paths: values.paths.split(',').map((p) => p.trim()) as PathName[],
  fleet: !values['skip-fleet'],
};
for (const p of settings.paths) if (!PATHS.includes(p)) throw new Error(`unknown path "${p}" in --paths`);
if (!(settings.rateSeconds > 0)) throw new Error('--rate-seconds must be a positive number');
const outFile = values.out ?? fileURLToPath(new URL('../../bench/results/latest.json', import.meta.url));
if (values.profile) setNodeArgs(['--cpu-prof', `--cpu-prof-dir=${resolve(values.profile)}`]);

const log = (line: string): void => {
  process.stderr.write(line + '\n');
};

/** Names for the processes of a path in the per-process CPU figures. */
function relayNames(name: PathName, forward: Forward): { name: string; pid: number }[] {
  const roles: Partial<Record<PathName, string[]>> = {
    ssh: ['ssh', 'sshd'],
    bastion: ['operator ssh', 'bastion sshd', 'device ssh'],
    drawbridge: ['connect', 'agent', 'hub'],
    socat: ['socat'],
  };
  return forward.processes.map((p, i) => ({ name: roles[name]?.[i] ?? p.name, pid: p.pid }));
}

async function measureRound(name: PathName, forward: Forward): Promise<RoundResult> {
  const label = PATH_LABELS[name];
  const latencyMicros = await measureLatency(forward.port, settings.roundTrips, settings.latencyWarmup);
  const setupMs = await measureSetup(forward.port, settings.setups, settings.setupWarmup);
  const rate = await measureStreamRate(forward.port, settings.concurrency, settings.rateSeconds);
  await measureThroughput(forward.port, Math.min(64 * 2 ** 20, Math.max(1, Math.floor(settings.bytes / 8))));
  const throughput = await measureThroughput(forward.port, settings.bytes, relayNames(name, forward));
  log(`  [${label}] ${throughput.megabytesPerSecond.toFixed(0)} MB/s (${throughput.relayCpuSecondsPerGiB.toFixed(2)} CPU-s/GiB), RTT p50 ${latencyMicros.p50.toFixed(0)} us, ` +
    `setup p50 ${setupMs.p50.toFixed(2)} ms, ${rate.streamsPerSecond.toFixed(0)} streams/s${rate.failed ? ` (${rate.failed} failed: ${rate.firstError})` : ''}`);
  return { throughput, latencyMicros, setupMs, rate };
}

async function main(): Promise<void> {
  const logDir = tempDir('db-bench-logs-');
  const started = new Date();
  const loadAtStart = loadavg()[0] ?? 0;
  log(`drawbridge bench: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, node ${process.version}; logs in ${logDir}`);
  // Every path shares these cores with whatever else runs: rounds are interleaved so that a
  // burst of other load hits every path alike, and medians are reported.
  if (loadAtStart > 0.5) log(`warning: load average ${loadAtStart.toFixed(2)} at start; other work on this machine will add noise`);
  const targetScript = fileURLToPath(new URL('./target-server.js', import.meta.url));
  const target = await startProcess('target', process.execPath, [targetScript], { logDir, ready: /\{"port":(\d+)\}/ });
  const targetPort = Number(target.match?.[1]);

  const sshAvailable = existsSync(SSHD) && hasCommand('ssh') && hasCommand('ssh-keygen');
  const availability: Record<PathName, string | undefined> = {
    direct: undefined,
    socat: hasCommand('socat') ? undefined : 'socat is not installed',
    ssh: sshAvailable ? undefined : `${SSHD} or ssh is not installed`,
    bastion: sshAvailable ? undefined : `${SSHD} or ssh is not installed`,
    drawbridge: undefined,
  };
  const starters: Record<PathName, () => Promise<Forward>> = {
    direct: async () => ({ port: targetPort, processes: [], details: {}, stop: async () => undefined }),
    socat: () => startSocat(targetPort, logDir),
    ssh: () => startSshForward(targetPort, logDir),
    bastion: () => startBastionChain(targetPort, logDir),
    drawbridge: () => startDrawbridgeTunnel(targetPort, logDir),
  };

  // Every path is set up once and stays up; the rounds interleave them.
  const paths: Partial<Record<PathName, PathResult>> = {};
  const forwards = new Map<PathName, Forward>();
  for (const name of PATHS) {
    if (!settings.paths.includes(name)) continue;
    const missing = availability[name];
    if (missing) {
      log(`[${PATH_LABELS[name]}] skipped: ${missing}`);
      paths[name] = { available: false, skippedReason: missing };
      continue;
    }
    const forward = await starters[name]();
    forwards.set(name, forward);
    paths[name] = { available: true, details: forward.details, rounds: [] };
  }
  const order = [...forwards.keys()];
  try {
    for (let round = 0; round < settings.rounds; round++) {
      const rotated = [...order.slice(round % order.length), ...order.slice(0, round % order.length)];
      log(`round ${round + 1}/${settings.rounds}: ${rotated.map((p) => PATH_LABELS[p]).join(', ')}`);
      for (const name of rotated) paths[name]?.rounds?.push(await measureRound(name, forwards.get(name) as Forward));
    }
    for (const name of order) {
      const result = paths[name] as PathResult;
      result.summary = summarize(result.rounds ?? []);
    }
    let isolation: IsolationResult | undefined;
    const db = forwards.get('drawbridge') as (Forward & { hub: HubProcess; agent: Started; connect: Started }) | undefined;
    if (db) {
      log('[drawbridge] isolation: interactive beside bulk, bulk beside a frozen reader');
      isolation = await measureIsolation(db, settings.bytes);
    }
    for (const forward of forwards.values()) await forward.stop();
    forwards.clear();
    await stopProcess(target);

    let scale: ScaleResult | undefined;
    let memory: MemoryResult | undefined;
    if (settings.fleet && settings.paths.includes('drawbridge')) {
      log('[drawbridge] one agent hosting 1,000 idle devices');
      const thousand = await measureFleet(1000, logDir, log);
      scale = { devices: 1000, agentRssKiB: thousand.agentRssKiB, agentHubConnections: thousand.agentHubConnections, onlineSeconds: thousand.onlineSeconds };
      memory = thousand;
      if (settings.devices !== 1000) {
        log(`[drawbridge] hub memory with ${settings.devices} idle devices`);
        memory = await measureFleet(settings.devices, logDir, log);
      }
    }

    const extras = { ...(isolation ? { isolation } : {}), ...(scale ? { scale } : {}), ...(memory ? { memory } : {}) };
    const targets = evaluateTargets(paths, extras);
    const table = renderTable(paths, extras, targets, settings.rounds);
    const ssh = paths.ssh?.details?.['cipher'];
    const tls = paths.drawbridge?.details?.['cipher'];
    process.stdout.write(`\n${table}\n`);
    process.stdout.write(`\nloopback, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}; ` +
      `${(settings.bytes / 2 ** 20).toFixed(0)} MiB per throughput run; MB = 10^6 bytes` +
      `${ssh ? `; ssh cipher ${ssh}` : ''}; drawbridge: ${tls ?? 'TLS'} on both legs; load average at start ${loadAtStart.toFixed(2)}\n`);

    const record = {
      machine: {
        cpuModel: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
        kernel: release(),
        node: process.version,
        ssh: availability.ssh ? null : toolVersion('ssh', ['-V']),
        socat: availability.socat ? null : toolVersion('socat', ['-V'], /^socat version .*$/m),
        date: started.toISOString(),
        loadAverageAtStart: Number(loadAtStart.toFixed(2)),
      },
      settings,
      paths,
      isolation: isolation ?? null,
      scale: scale ?? null,
      memory: memory ?? null,
      targets,
      durationSeconds: Number(((Date.now() - started.getTime()) / 1000).toFixed(1)),
    };
    mkdirSync(dirname(outFile), { recursive: true });
    writeFileSync(outFile, JSON.stringify(record, null, 2) + '\n');
    log(`results written to ${outFile} (${record.durationSeconds} s)`);
  } finally {
    for (const forward of forwards.values()) await forward.stop().catch(() => undefined);
  }
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`\n${signal}: stopping every process the bench started`);
    void cleanup().finally(() => process.exit(130));
  });
}
process.once('exit', () => killAllNow());

main().then(
  async () => {
    await cleanup();
  },
  async (error: unknown) => {
    process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
    await cleanup();
    process.exitCode = 1;
  },
);
