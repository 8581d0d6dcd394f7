/**
 * `node dist/bench/ab.js`: one metric, alternated round by round between builds of
 * Drawbridge (and `ssh -L` as the reference), to tell whether a change helped on a machine
 * whose speed drifts by ±30% within minutes. Each build is a compiled tree (its `dist`
 * directory, with node_modules reachable from it), e.g. the current one and a git worktree
 * of the commit before. Every build keeps its own hub, agent and connect running for the
 * whole run; the order rotates each round. Prints each round and the medians.
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { measureLatency, measureSetup, measureStreamRate, measureThroughput } from './measure.js';
import { cleanup, startTargetServer, tempDir } from './processes.js';
import { median, rotate } from './report.js';
import { parseSize } from './settings.js';
import { startSshForward, type Forward } from './sshd.js';

const USAGE = `usage: node dist/bench/ab.js [options] BUILD_DIST...
  alternates one metric round by round between Drawbridge builds (each BUILD_DIST is a
  compiled dist/ directory) and ssh -L
  --metric M        throughput | rtt | rate | setup (throughput)
  --rounds N        rounds (6)
  --bytes SIZE      bytes per throughput run (512MiB)
  --windows LIST    instead of several builds: the first build once per hub streamWindow (e.g. 512KiB,2MiB)
  --no-ssh          leave ssh -L out
  --help`;

const METRICS = ['throughput', 'rtt', 'rate', 'setup'] as const;
type Metric = (typeof METRICS)[number];

interface Candidate {
  name: string;
  forward: Forward;
}

/** The metric's headline figure and a second one (CPU per unit, or p99). */
async function measure(metric: Metric, forward: Forward, bytes: number): Promise<[number, number]> {
  switch (metric) {
    case 'throughput': {
      const r = await measureThroughput(forward.port, bytes, forward.processes);
      return [r.megabytesPerSecond, r.cpuSecondsPerGiBTotal];
    }
    case 'rtt': {
      const r = await measureLatency(forward.port, 1000, 100);
      return [r.p50, r.p99];
    }
    case 'rate': {
      const r = await measureStreamRate(forward.port, 16, 2, forward.processes);
      return [r.streamsPerSecond, r.cpuMsPerStreamTotal];
    }
    case 'setup': {
      const r = await measureSetup(forward.port, 300, 30);
      return [r.p50, r.p99];
    }
  }
}

const SECOND: Record<Metric, string> = { throughput: 'CPU s/GiB', rtt: 'p99 us', rate: 'CPU ms/stream', setup: 'p99 ms' };
const FIRST: Record<Metric, string> = { throughput: 'MB/s', rtt: 'p50 us', rate: 'streams/s', setup: 'p50 ms' };

/** cleanup() of the other builds' process lists */
const otherCleanups: (() => Promise<void>)[] = [];

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      metric: { type: 'string', default: 'throughput' },
      rounds: { type: 'string', default: '6' },
      bytes: { type: 'string', default: '512MiB' },
      windows: { type: 'string' },
      'no-ssh': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const metric = values.metric as Metric;
  if (!METRICS.includes(metric)) throw new Error(`--metric must be one of ${METRICS.join(', ')}`);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  const bytes = parseSize(values.bytes);
  if (positionals.length === 0) throw new Error(`name at least one build's dist directory\n${USAGE}`);
  const builds = positionals.map((p) => resolve(p));
  const windows = values.windows ? values.windows.split(',').filter(Boolean) : [];

  const logDir = tempDir('db-ab-logs-');
  const { port: targetPort } = await startTargetServer(logDir, resolve(builds[0] as string, 'bench/target-server.js'));
  const candidates: Candidate[] = [];
  if (!values['no-ssh']) candidates.push({ name: 'ssh -L', forward: await startSshForward(targetPort, logDir) });
  const runs = windows.length > 0 ? windows.map((w) => ({ build: builds[0] as string, window: w as string | undefined })) : builds.map((b) => ({ build: b, window: undefined }));
  for (const [i, run] of runs.entries()) {
    // Each build's own bench module starts its own CLI, so the processes are that build's;
    // they are registered in that build's process list, which is cleaned up at the end too.
    const module = (await import(pathToFileURL(resolve(run.build, 'bench/drawbridge.js')).href)) as typeof import('./drawbridge.js');
    const processes = (await import(pathToFileURL(resolve(run.build, 'bench/processes.js')).href)) as typeof import('./processes.js');
    if (processes.cleanup !== cleanup) otherCleanups.push(processes.cleanup);
    const forward = await module.startDrawbridgeTunnel(targetPort, logDir, { streamWindow: run.window });
    candidates.push({ name: run.window ? `window ${run.window}` : `#${i + 1} ${run.build}`, forward });
  }
  for (const c of candidates) {
    await measure(metric, c.forward, Math.min(bytes, 64 * 2 ** 20));
    await c.forward.settle();
  }
  const results = new Map<string, [number, number][]>(candidates.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (const c of rotate(candidates, r)) {
      (results.get(c.name) as [number, number][]).push(await measure(metric, c.forward, bytes));
      await c.forward.settle();
    }
    const line = candidates.map((c) => {
      const [a, b] = (results.get(c.name) as [number, number][]).at(-1) as [number, number];
      return `${c.name}: ${a.toFixed(2)} ${FIRST[metric]}, ${b.toFixed(2)} ${SECOND[metric]}`;
    });
    process.stdout.write(`round ${r + 1}: ${line.join(' | ')}\n`);
  }
  process.stdout.write(`medians over ${rounds} rounds:\n`);
  for (const c of candidates) {
    const samples = results.get(c.name) as [number, number][];
    process.stdout.write(`  ${c.name}: ${median(samples.map((s) => s[0]))?.toFixed(2)} ${FIRST[metric]}, ${median(samples.map((s) => s[1]))?.toFixed(3)} ${SECOND[metric]}\n`);
  }
}

main()
  .catch((error: unknown) => {
    process.stderr.write(`ab: ${(error as Error).message}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const other of otherCleanups) await other();
    await cleanup();
  });
