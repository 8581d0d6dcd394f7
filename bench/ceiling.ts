/**
 * `node dist/bench/ceiling.js`: what a bare Node relay chain reaches on this machine, next to
 * `ssh -L` and Drawbridge, interleaved round by round. A "pipe" path is a chain of minimal
 * Node relays (bench/pipe-relay.ts: accept, dial, `pipe` both ways, one TLS connection per
 * stream, nothing else):
 *  - pipe x2: local TCP -> relay -> TLS -> relay -> target, the shape of `ssh -L`;
 *  - pipe x3: local TCP -> relay -> TLS -> relay -> TLS -> relay -> target, the shape of
 *    Drawbridge (connect, hub, agent) with TLS on both legs.
 * What Drawbridge does beyond moving bytes (framing, multiplexing, credit, audit) adds to the
 * cost of pipe x3, so pipe x3 / ssh -L is what a Drawbridge written this way could hope for.
 * Prints each round, then medians, ratios to ssh -L and CPU per process; writes
 * bench/results/ceiling.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureHubPki } from '../src/hub/certificates.js';
import { startDrawbridgeTunnel } from './drawbridge.js';
import { measureLatency, measureStreamRate, measureThroughput, warmUp, WARMUP_RATE_SECONDS } from './measure.js';
import { cleanup, startProcess, startTargetServer, tempDir } from './processes.js';
import { median, rotate } from './report.js';
import { parseSize } from './settings.js';
import { sshMissing, startSshForward, type Forward, type RelayProcess } from './sshd.js';

const USAGE = `usage: node dist/bench/ceiling.js [options]
  minimal Node relay chains (2 and 3 processes, TLS between them) beside ssh -L and
  Drawbridge, every metric interleaved round by round
  --rounds N        rounds (5)
  --bytes SIZE      bytes per throughput run (512MiB)
  --no-drawbridge   leave the Drawbridge path out
  --out FILE        results (bench/results/ceiling.json)
  --help`;

const METRICS = ['throughput', 'rtt', 'rate'] as const;
type Metric = (typeof METRICS)[number];
const UNITS: Record<Metric, string> = { throughput: 'MB/s', rtt: 'µs p50', rate: 'streams/s' };

interface Sample {
  value: number;
  /** CPU per GiB (throughput) or per stream in ms (rate), by process */
  cpu?: Record<string, number>;
}

const PIPE_RELAY = fileURLToPath(new URL('./pipe-relay.js', import.meta.url));

/** A chain of pipe relays: hops[0] listens on local TCP, the last dials the target. */
async function startPipeChain(name: string, hops: number, targetPort: number, pki: string, logDir: string): Promise<Forward> {
  const processes: RelayProcess[] = [];
  let next = targetPort;
  // Started from the target end, so each relay knows the port of the one after it.
  for (let i = hops - 1; i >= 0; i--) {
    const inbound = i === 0 ? 'tcp' : 'tls';
    const outbound = i === hops - 1 ? 'tcp' : 'tls';
    const relay = await startProcess(`${name}-${i + 1}`, process.execPath, [PIPE_RELAY, '--in', inbound, '--out', outbound, '--to', String(next), '--pki', pki], {
      logDir,
      ready: /\{"port":(\d+)\}/,
    });
    next = Number(relay.match?.[1]);
    processes.unshift({ name: `relay ${i + 1}`, pid: relay.pid });
  }
  return { port: next, processes, details: {}, settle: async () => undefined, stop: async () => undefined };
}

async function measure(metric: Metric, forward: Forward, bytes: number): Promise<Sample> {
  switch (metric) {
    case 'throughput': {
      const r = await measureThroughput(forward.port, bytes, forward.processes);
      return { value: r.megabytesPerSecond, cpu: r.cpuSecondsPerGiB };
    }
    case 'rtt':
      return { value: (await measureLatency(forward.port, 2000, 100)).p50 };
    case 'rate': {
      const r = await measureStreamRate(forward.port, 16, 3, forward.processes);
      return { value: r.streamsPerSecond, cpu: r.cpuMsPerStream };
    }
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '5' },
      bytes: { type: 'string', default: '512MiB' },
      'no-drawbridge': { type: 'boolean', default: false },
      out: { type: 'string', default: fileURLToPath(new URL('../../bench/results/ceiling.json', import.meta.url)) },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  const bytes = parseSize(values.bytes);
  const missing = sshMissing();
  if (missing) throw new Error(`ssh -L is the reference and cannot run: ${missing}`);

  const logDir = tempDir('db-ceiling-logs-');
  const pki = tempDir('db-ceiling-pki-');
  await ensureHubPki(pki, []);
  const { port: targetPort } = await startTargetServer(logDir);
  const paths = new Map<string, Forward>();
  paths.set('ssh -L', await startSshForward(targetPort, logDir));
  paths.set('pipe x2', await startPipeChain('pipe2', 2, targetPort, pki, logDir));
  paths.set('pipe x3', await startPipeChain('pipe3', 3, targetPort, pki, logDir));
  if (!values['no-drawbridge']) paths.set('drawbridge', await startDrawbridgeTunnel(targetPort, logDir));
  const names = [...paths.keys()];

  process.stdout.write(`warm-up: round trips, ${WARMUP_RATE_SECONDS} s of new streams and a short push on every path\n`);
  for (const forward of paths.values()) {
    await warmUp(forward.port, { concurrency: 16, rateSeconds: WARMUP_RATE_SECONDS, bytes: 64 * 2 ** 20 });
    await forward.settle();
  }

  const results: Record<Metric, Record<string, Sample[]>> = { throughput: {}, rtt: {}, rate: {} };
  for (const metric of METRICS) for (const name of names) results[metric][name] = [];
  for (let r = 0; r < rounds; r++) {
    const order = rotate(names, r);
    for (const metric of METRICS) {
      const line: string[] = [];
      for (const name of order) {
        const forward = paths.get(name) as Forward;
        const sample = await measure(metric, forward, bytes);
        await forward.settle();
        (results[metric][name] as Sample[]).push(sample);
        line.push(`${name} ${sample.value.toFixed(0)}`);
      }
      process.stdout.write(`round ${r + 1} ${metric} (${UNITS[metric]}): ${line.join(' | ')}\n`);
    }
  }

  const summary: Record<string, Record<string, unknown>> = {};
  process.stdout.write(`\nmedians over ${rounds} rounds (ratio to ssh -L: of the medians, and the range of the per-round ratios)\n`);
  for (const metric of METRICS) {
    process.stdout.write(`${metric} (${UNITS[metric]}):\n`);
    const reference = (results[metric]['ssh -L'] as Sample[]).map((s) => s.value);
    for (const name of names) {
      const samples = results[metric][name] as Sample[];
      const value = median(samples.map((s) => s.value)) as number;
      // For RTT lower is better, but the ratio is reported the same way: path / ssh -L.
      const perRound = samples.map((s, i) => s.value / (reference[i] as number));
      const ratio = value / (median(reference) as number);
      const cpuNames = Object.keys(samples[0]?.cpu ?? {});
      const cpu = Object.fromEntries(cpuNames.map((p) => [p, median(samples.map((s) => s.cpu?.[p] ?? NaN)) as number]));
      const cpuTotal = Object.values(cpu).reduce((a, b) => a + b, 0);
      summary[`${metric}/${name}`] = { median: value, ratio, perRound: samples.map((s) => s.value), cpu, cpuTotal };
      const cpuText = cpuNames.length ? `; CPU ${metric === 'throughput' ? 's/GiB' : 'ms/stream'} ${cpuNames.map((p) => `${p} ${(cpu[p] as number).toFixed(2)}`).join(', ')} = ${cpuTotal.toFixed(2)}` : '';
      process.stdout.write(`  ${name.padEnd(10)} ${value.toFixed(0).padStart(6)}  ${ratio.toFixed(2)}x (${Math.min(...perRound).toFixed(2)}-${Math.max(...perRound).toFixed(2)})${cpuText}\n`);
    }
  }
  mkdirSync(dirname(values.out), { recursive: true });
  writeFileSync(values.out, JSON.stringify({ date: new Date().toISOString(), rounds, bytes, summary, results }, null, 2) + '\n');
  process.stdout.write(`results written to ${values.out}\n`);
}

main()
  .catch((error: unknown) => {
    process.stderr.write(`ceiling: ${(error as Error).message}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
