/**
 * `npm run bench`: Drawbridge against `ssh -L`, the reverse-SSH bastion chain, socat and
 * direct TCP, all on loopback, with every path measured round by round (interleaved, the
 * order rotating per round) so that they share the same machine conditions; then the
 * Drawbridge-only scenarios (frozen reader, scale). Prints medians, ratios and the targets
 * of issue 6, and writes bench/results/latest.json. See bench/README.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { setNodeArgs, startDrawbridgeTunnel, type DrawbridgeTunnel } from './drawbridge.js';
import { measureIsolation, measureLatency, measureSetup, measureStreamRate, measureThroughput, warmUp, WARMUP_RATE_SECONDS } from './measure.js';
import { assertRunning, cleanup, isStopping, killAllNow, startTargetServer, stopProcess, tempDir } from './processes.js';
import { evaluateTargets, PATH_LABELS, PATHS, ratios, renderTable, rotate, summarize, type PathInfo, type PathName, type PathRound, type Round } from './report.js';
import { measureScale, type ScaleResult } from './scale.js';
import { measureFrozenReader, type FrozenReaderResult } from './scenarios.js';
import { parseSettings, type Settings } from './settings.js';
import { directPath, hasCommand, sshMissing, startBastionChain, startSocat, startSshForward, toolVersion, type Forward } from './sshd.js';

const log = (line: string): void => {
  process.stderr.write(line + '\n');
};

const FORMAT_VERSION = 2;

type Metric = 'latency' | 'setup' | 'rate' | 'throughput' | 'isolation';
const METRIC_ORDER: Metric[] = ['latency', 'setup', 'rate', 'throughput', 'isolation'];

/** Runs one metric on one path, storing its result in `into`. */
async function runMetric(s: Settings, metric: Metric, forward: Forward, into: PathRound, label: string): Promise<void> {
  switch (metric) {
    case 'latency':
      into.latencyMicros = await measureLatency(forward.port, s.roundTrips, s.latencyWarmup);
      log(`  ${label}: RTT p50 ${into.latencyMicros.p50.toFixed(0)} us, p99 ${into.latencyMicros.p99.toFixed(0)} us`);
      return;
    case 'setup':
      into.setupMs = await measureSetup(forward.port, s.setups, s.setupWarmup);
      log(`  ${label}: setup p50 ${into.setupMs.p50.toFixed(2)} ms`);
      return;
    case 'rate':
      into.rate = await measureStreamRate(forward.port, s.concurrency, s.rateSeconds, forward.processes);
      log(`  ${label}: ${into.rate.streamsPerSecond.toFixed(0)} new streams/s` + (into.rate.failed ? ` (${into.rate.failed} failed: ${into.rate.firstError})` : ''));
      return;
    case 'throughput':
      into.throughput = await measureThroughput(forward.port, s.bytes, forward.processes);
      log(`  ${label}: ${into.throughput.megabytesPerSecond.toFixed(0)} MB/s, ${into.throughput.cpuSecondsPerGiBTotal.toFixed(2)} CPU s/GiB`);
      return;
    case 'isolation':
      into.isolation = await measureIsolation(forward.port, forward.port, s.isolationRoundTrips, s.latencyWarmup);
      log(`  ${label}: RTT p50 ${(into.isolation.latencyMicros.p50 / 1000).toFixed(2)} ms beside a ${into.isolation.bulkMegabytesPerSecond.toFixed(0)} MB/s bulk stream`);
      if ('second' in forward) {
        const second = (forward as DrawbridgeTunnel).second;
        await forward.settle();
        into.isolationSecondLink = await measureIsolation(forward.port, second.port, s.isolationRoundTrips, s.latencyWarmup);
        log(`  ${label} (second connect and device): RTT p50 ${(into.isolationSecondLink.latencyMicros.p50 / 1000).toFixed(2)} ms`);
      }
      return;
  }
}

async function main(s: Settings): Promise<void> {
  const logDir = tempDir('db-bench-logs-');
  const started = new Date();
  const loadAtStart = loadavg()[0] ?? 0;
  log(`drawbridge bench: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, node ${process.version}; ${s.rounds} round(s); logs in ${logDir}`);
  // Every path shares these cores with whatever else runs: interleaving spreads that evenly, but it still adds noise.
  if (loadAtStart > 0.5) log(`warning: load average ${loadAtStart.toFixed(2)} at start; other work on this machine adds noise`);
  const { port: targetPort, started: target } = await startTargetServer(logDir);

  const missing: Record<PathName, string | undefined> = {
    direct: undefined,
    socat: hasCommand('socat') ? undefined : 'socat is not installed',
    ssh: sshMissing(),
    bastion: sshMissing(),
    drawbridge: undefined,
  };
  const starters: Record<PathName, () => Promise<Forward>> = {
    direct: async () => directPath(targetPort),
    socat: () => startSocat(targetPort, logDir),
    ssh: () => startSshForward(targetPort, logDir),
    bastion: () => startBastionChain(targetPort, logDir),
    drawbridge: () => startDrawbridgeTunnel(targetPort, logDir, { streamWindow: s.streamWindow }),
  };

  // Every path stays up for the whole run (idle relays cost nothing), so rounds can interleave them.
  const paths: Partial<Record<PathName, PathInfo>> = {};
  const forwards = new Map<PathName, Forward>();
  for (const name of PATHS.filter((p) => s.paths.includes(p))) {
    const reason = missing[name];
    if (reason) {
      log(`[${PATH_LABELS[name]}] skipped: ${reason}`);
      paths[name] = { available: false, skippedReason: reason };
      continue;
    }
    try {
      const forward = await starters[name]();
      forwards.set(name, forward);
      paths[name] = { available: true, processes: forward.processes.map((p) => p.name), details: forward.details };
    } catch (error) {
      const message = (error as Error).message;
      log(`[${PATH_LABELS[name]}] skipped: cannot start: ${message}`);
      paths[name] = { available: false, skippedReason: `cannot start: ${message.split('\n')[0]}` };
    }
  }
  const running = [...forwards.keys()];

  log('warm-up: round trips, a few seconds of new streams and a short push on every path');
  for (const [name, forward] of forwards) {
    await warmUp(forward.port, { concurrency: s.concurrency, rateSeconds: s.quick ? 1 : WARMUP_RATE_SECONDS, bytes: Math.min(64 * 2 ** 20, Math.max(1, Math.floor(s.bytes / 8))) });
    await forward.settle();
    log(`  ${PATH_LABELS[name]} ready`);
  }

  const errors: string[] = [];
  const metrics = METRIC_ORDER.filter((m) => m !== 'isolation' || !s.skip.includes('isolation'));
  const rounds: Round[] = [];
  for (let r = 0; r < s.rounds; r++) {
    const order = rotate(running, r);
    const round: Round = { round: r + 1, order, paths: Object.fromEntries(order.map((p) => [p, {}])) };
    rounds.push(round);
    log(`round ${r + 1}/${s.rounds}: ${order.map((p) => PATH_LABELS[p]).join(', ')}`);
    for (const metric of metrics) {
      for (const name of order) {
        const forward = forwards.get(name) as Forward;
        const into = round.paths[name] as PathRound;
        assertRunning();
        try {
          await runMetric(s, metric, forward, into, PATH_LABELS[name]);
          await forward.settle();
        } catch (error) {
          assertRunning(); // a measurement cut short by Ctrl-C is not a failure to report
          // One failed measurement is recorded and the run goes on: the other figures still count.
          const message = `round ${r + 1}, ${PATH_LABELS[name]}, ${metric}: ${(error as Error).message.split('\n')[0]}`;
          log(`  error: ${message}`);
          errors.push(message);
          (into.errors ??= []).push(message);
        }
      }
    }
  }

  const tunnel = forwards.get('drawbridge');
  let frozenReader: FrozenReaderResult | undefined;
  if (tunnel && !s.skip.includes('frozen')) {
    log(`[frozen reader] ${s.frozenStreams} download streams of ${(s.frozenBytesPerStream / 2 ** 20).toFixed(0)} MiB beside a stream whose reader stopped`);
    try {
      frozenReader = await measureFrozenReader(tunnel, { streams: s.frozenStreams, bytesPerStream: s.frozenBytesPerStream, repeats: s.frozenRepeats }, log);
    } catch (error) {
      assertRunning();
      errors.push(`frozen reader: ${(error as Error).message.split('\n')[0]}`);
      log(`  error: ${(error as Error).message}`);
    }
  }
  for (const forward of forwards.values()) await forward.stop();
  await stopProcess(target);

  let scale: ScaleResult | undefined;
  if (s.paths.includes('drawbridge') && !s.skip.includes('scale')) {
    log(`[scale] one agent with ${Math.min(s.agentDevices, s.devices)} devices; ${s.devices} idle devices on one hub`);
    try {
      scale = await measureScale(s.devices, s.agentDevices, logDir, log);
    } catch (error) {
      assertRunning();
      errors.push(`scale: ${(error as Error).message.split('\n')[0]}`);
      log(`  error: ${(error as Error).message}`);
    }
  }

  const summary = summarize(rounds);
  const evaluated = { summary, versusSsh: ratios(rounds, summary, 'ssh'), versusBastion: ratios(rounds, summary, 'bastion'), frozenReader, scale };
  const targets = evaluateTargets(evaluated);
  const sshCipher = paths.ssh?.details?.['cipher'];
  const tls = paths.drawbridge?.details?.['cipher'];
  process.stdout.write(`\n${renderTable(paths, rounds, evaluated, targets)}\n`);
  process.stdout.write(`\nloopback, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}; ` +
    `${(s.bytes / 2 ** 20).toFixed(0)} MiB per throughput run; MB = 10^6 bytes` +
    `${sshCipher ? `; ssh cipher ${sshCipher}` : ''}; drawbridge: ${tls ?? 'TLS'} on both legs, stream window ${s.streamWindow ?? 'hub default'}; ` +
    `load average ${loadAtStart.toFixed(2)} at start, ${(loadavg()[0] ?? 0).toFixed(2)} at end\n`);
  for (const [name, info] of Object.entries(paths)) if (!info.available) process.stdout.write(`skipped ${PATH_LABELS[name as PathName]}: ${info.skippedReason}\n`);
  if (errors.length) process.stdout.write(`\n${errors.length} measurement(s) failed:\n${errors.map((e) => `  ${e}`).join('\n')}\n`);

  const record = {
    format: FORMAT_VERSION,
    machine: {
      cpuModel: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
      kernel: release(),
      node: process.version,
      ssh: missing.ssh ? null : toolVersion('ssh', ['-V']),
      socat: missing.socat ? null : toolVersion('socat', ['-V'], /^socat version .*$/m),
      date: started.toISOString(),
      loadAverageAtStart: Number(loadAtStart.toFixed(2)),
      loadAverageAtEnd: Number((loadavg()[0] ?? 0).toFixed(2)),
    },
    settings: s,
    paths,
    rounds,
    summary,
    ratios: { drawbridgeVsSsh: evaluated.versusSsh, drawbridgeVsBastion: evaluated.versusBastion },
    scenarios: { frozenReader: frozenReader ?? null, scale: scale ?? null },
    targets,
    errors,
    durationSeconds: Number(((Date.now() - started.getTime()) / 1000).toFixed(1)),
  };
  mkdirSync(dirname(s.out), { recursive: true });
  writeFileSync(s.out, JSON.stringify(record, null, 2) + '\n');
  log(`results written to ${s.out} (${record.durationSeconds} s)`);
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  // A second signal exits at once.
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`\n${signal}: stopping every process the bench started`);
    void cleanup().finally(() => process.exit(130));
  });
}
process.once('exit', () => killAllNow());

let settings: Settings | undefined;
try {
  settings = parseSettings(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`bench: ${(error as Error).message}\n`);
  process.exit(2);
}
if (settings) {
  if (settings.profile) setNodeArgs(['--cpu-prof', `--cpu-prof-dir=${settings.profile}`]);
  main(settings).then(
    async () => {
      await cleanup();
    },
    async (error: unknown) => {
      if (isStopping()) return; // interrupted: the signal handler exits
      process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
      await cleanup();
      process.exitCode = 1;
    },
  );
}
