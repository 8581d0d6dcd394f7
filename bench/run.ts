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
import { measureHubMemory, setNodeArgs, startDrawbridgeTunnel, type MemoryResult } from './drawbridge.js';
import { measureLatency, measureSetup, measureStreamRate, measureThroughput } from './measure.js';
import { cleanup, killAllNow, startProcess, stopProcess, tempDir } from './processes.js';
import { evaluateTargets, PATH_LABELS, PATHS, renderTable, type PathName, type PathResult } from './report.js';
import { hasCommand, SSHD, startSocat, startSshForward, toolVersion, type Forward } from './sshd.js';

const USAGE = `usage: npm run bench -- [options]   (or node dist/bench/run.js [options])
  --bytes SIZE         bytes pushed one way per path for throughput (default 1GiB; e.g. 256MiB)
  --round-trips N      1-byte ping-pongs for latency (default 2000, after 200 warm-up)
  --setups N           sequential new connections for setup time (default 500, after 20 warm-up)
  --concurrency N      parallel workers for new streams per second (default 16)
  --rate-seconds S     how long to run the streams-per-second test (default 3)
  --devices N          idle virtual devices for the hub memory test (default 2000)
  --paths LIST         comma-separated subset of direct,socat,ssh,drawbridge (default all)
  --skip-memory        skip the hub memory test
  --out FILE           results JSON (default bench/results/latest.json)
  --profile DIR        run the Drawbridge processes with --cpu-prof, writing profiles to DIR
  --help`;

function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i.exec(text.trim());
  if (!m) throw new Error(`invalid size "${text}": use e.g. 1GiB, 256MiB, 1048576`);
  const unit = (m[2] ?? 'b').toLowerCase();
  const factor = unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 ** 2 : unit.startsWith('g') ? 1024 ** 3 : 1;
  return Math.round(Number(m[1]) * factor);
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer (got "${text}")`);
  return n;
}

const { values } = parseArgs({
  options: {
    bytes: { type: 'string', default: '1GiB' },
    'round-trips': { type: 'string', default: '2000' },
    setups: { type: 'string', default: '500' },
    concurrency: { type: 'string', default: '16' },
    'rate-seconds': { type: 'string', default: '3' },
    devices: { type: 'string', default: '2000' },
    paths: { type: 'string', default: PATHS.join(',') },
    'skip-memory': { type: 'boolean', default: false },
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

const settings = {
  bytes: parseSize(values.bytes),
  roundTrips: positiveInt(values['round-trips'], '--round-trips'),
  latencyWarmup: 200,
  setups: positiveInt(values.setups, '--setups'),
  setupWarmup: 20,
  concurrency: positiveInt(values.concurrency, '--concurrency'),
  rateSeconds: Number(values['rate-seconds']),
  devices: positiveInt(values.devices, '--devices'),
  paths: values.paths.split(',').map((p) => p.trim()) as PathName[],
  memory: !values['skip-memory'],
};
for (const p of settings.paths) if (!PATHS.includes(p)) throw new Error(`unknown path "${p}" in --paths`);
if (!(settings.rateSeconds > 0)) throw new Error('--rate-seconds must be a positive number');
const outFile = values.out ?? fileURLToPath(new URL('../../bench/results/latest.json', import.meta.url));
if (values.profile) setNodeArgs(['--cpu-prof', `--cpu-prof-dir=${resolve(values.profile)}`]);

const log = (line: string): void => {
  process.stderr.write(line + '\n');
};

async function measurePath(name: PathName, port: number, relays: { name: string; pid: number }[]): Promise<Omit<PathResult, 'available'>> {
  const label = PATH_LABELS[name];
  log(`[${label}] latency: ${settings.roundTrips} round trips`);
  const latencyMicros = await measureLatency(port, settings.roundTrips, settings.latencyWarmup);
  log(`[${label}] setup: ${settings.setups} sequential connections`);
  const setupMs = await measureSetup(port, settings.setups, settings.setupWarmup);
  log(`[${label}] new streams/s: concurrency ${settings.concurrency} for ${settings.rateSeconds} s`);
  const rate = await measureStreamRate(port, settings.concurrency, settings.rateSeconds);
  // A short push first, so JIT and buffers are warm before the timed one.
  const warm = Math.min(64 * 1024 * 1024, Math.max(1, Math.floor(settings.bytes / 8)));
  await measureThroughput(port, warm);
  log(`[${label}] throughput: ${(settings.bytes / 2 ** 20).toFixed(0)} MiB one way`);
  const throughput = await measureThroughput(port, settings.bytes, relays);
  log(`[${label}] ${throughput.megabytesPerSecond.toFixed(0)} MB/s, latency p50 ${latencyMicros.p50.toFixed(0)} us, ` +
    `setup p50 ${setupMs.p50.toFixed(2)} ms, ${rate.streamsPerSecond.toFixed(0)} streams/s${rate.failed ? ` (${rate.failed} failed: ${rate.firstError})` : ''}`);
  return { throughput, latencyMicros, setupMs, rate };
}

async function main(): Promise<void> {
  const logDir = tempDir('db-bench-logs-');
  const started = new Date();
  const loadAtStart = loadavg()[0] ?? 0;
  log(`drawbridge bench: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, node ${process.version}; logs in ${logDir}`);
  // Every path shares these cores with whatever else runs: a busy machine skews the figures.
  if (loadAtStart > 0.5) log(`warning: load average ${loadAtStart.toFixed(2)} at start; other work on this machine will skew the results`);
  const targetScript = fileURLToPath(new URL('./target-server.js', import.meta.url));
  const target = await startProcess('target', process.execPath, [targetScript], { logDir, ready: /\{"port":(\d+)\}/ });
  const targetPort = Number(target.match?.[1]);

  const availability: Record<PathName, string | undefined> = {
    direct: undefined,
    socat: hasCommand('socat') ? undefined : 'socat is not installed',
    ssh: existsSync(SSHD) && hasCommand('ssh') && hasCommand('ssh-keygen') ? undefined : `${SSHD} or ssh is not installed`,
    drawbridge: undefined,
  };
  const starters: Record<PathName, () => Promise<Forward>> = {
    direct: async () => ({ port: targetPort, processes: [], details: {}, stop: async () => undefined }),
    socat: () => startSocat(targetPort, logDir),
    ssh: () => startSshForward(targetPort, logDir),
    drawbridge: () => startDrawbridgeTunnel(targetPort, logDir),
  };

  const paths: Partial<Record<PathName, PathResult>> = {};
  for (const name of PATHS) {
    if (!settings.paths.includes(name)) continue;
    const missing = availability[name];
    if (missing) {
      log(`[${PATH_LABELS[name]}] skipped: ${missing}`);
      paths[name] = { available: false, skippedReason: missing };
      continue;
    }
    // Each path runs alone: its relay processes start before and stop after its measurements.
    const forward = await starters[name]();
    try {
      paths[name] = { available: true, details: forward.details, ...(await measurePath(name, forward.port, forward.processes)) };
    } finally {
      await forward.stop();
    }
  }
  await stopProcess(target);

  let memory: MemoryResult | undefined;
  if (settings.memory) {
    log(`[hub memory] ${settings.devices} idle virtual devices on one agent`);
    memory = await measureHubMemory(settings.devices, logDir, log);
  }

  const targets = evaluateTargets(paths, memory);
  const table = renderTable(paths, memory, targets);
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
    memory: memory ?? null,
    targets,
    durationSeconds: Number(((Date.now() - started.getTime()) / 1000).toFixed(1)),
  };
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, JSON.stringify(record, null, 2) + '\n');
  log(`results written to ${outFile} (${record.durationSeconds} s)`);
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
