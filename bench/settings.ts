/**
 * The bench's command line: flags, their defaults, and the lighter defaults of --quick.
 * An explicit flag always wins over --quick.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PATHS, type PathName } from './report.js';

export const SCENARIOS = ['isolation', 'frozen', 'scale'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export const USAGE = `usage: npm run bench -- [options]   (or node dist/bench/run.js [options] after a build)
  --quick                  a lighter run (about 1 minute): the defaults in brackets below
  --rounds N               rounds; every path runs every metric once per round (3) [1]
  --bytes SIZE             bytes pushed one way per throughput run (1GiB) [256MiB]
  --round-trips N          1-byte ping-pongs for RTT (2000) [500]
  --setups N               sequential new streams for setup time (500) [100]
  --concurrency N          streams in flight for new streams per second (16)
  --rate-seconds S         how long each streams-per-second run lasts (3) [1]
  --isolation-round-trips N  ping-pongs beside a bulk stream (1000) [300]
  --frozen-repeats N       measurements of the other streams in each frozen-reader phase (3) [1]
  --devices N              idle devices on the hub for its memory per device (10000) [2000]
  --agent-devices N        devices on the one agent whose connections and RSS are counted (1000)
  --stream-window SIZE     hub limits.streamWindow for the Drawbridge path (hub default)
  --paths LIST             subset of ${PATHS.join(',')} (all)
  --skip LIST              scenarios to leave out: ${SCENARIOS.join(',')}
  --out FILE               results JSON (bench/results/latest.json)
  --profile DIR            run hub, agent and connect with --cpu-prof, profiles to DIR
  --help`;

export interface Settings {
  quick: boolean;
  rounds: number;
  bytes: number;
  roundTrips: number;
  latencyWarmup: number;
  setups: number;
  setupWarmup: number;
  concurrency: number;
  rateSeconds: number;
  isolationRoundTrips: number;
  frozenRepeats: number;
  /** bytes of each of the other streams per frozen-reader measurement */
  frozenBytesPerStream: number;
  frozenStreams: number;
  devices: number;
  agentDevices: number;
  streamWindow: string | undefined;
  paths: PathName[];
  skip: Scenario[];
  out: string;
  profile: string | undefined;
}

export function parseSize(text: string): number {
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

function list<T extends string>(text: string, allowed: readonly T[], flag: string): T[] {
  const items = text.split(',').map((p) => p.trim()).filter(Boolean);
  for (const item of items) if (!allowed.includes(item as T)) throw new Error(`unknown "${item}" in ${flag} (use ${allowed.join(',')})`);
  return items as T[];
}

/** Parsed settings, or undefined after printing the usage for --help. */
export function parseSettings(argv: string[]): Settings | undefined {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      bytes: { type: 'string' },
      'round-trips': { type: 'string' },
      setups: { type: 'string' },
      concurrency: { type: 'string' },
      'rate-seconds': { type: 'string' },
      'isolation-round-trips': { type: 'string' },
      'frozen-repeats': { type: 'string' },
      devices: { type: 'string' },
      'agent-devices': { type: 'string' },
      'stream-window': { type: 'string' },
      paths: { type: 'string' },
      skip: { type: 'string' },
      out: { type: 'string' },
      profile: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (v.help) {
    process.stdout.write(USAGE + '\n');
    return undefined;
  }
  const q = v.quick === true;
  const int = (flag: keyof typeof v, full: number, quick: number): number => {
    const text = v[flag];
    return typeof text === 'string' ? positiveInt(text, `--${flag}`) : q ? quick : full;
  };
  const bytes = v.bytes !== undefined ? parseSize(v.bytes) : q ? 256 * 2 ** 20 : 2 ** 30;
  if (bytes < 1) throw new Error('--bytes must be at least 1 byte');
  const rateSeconds = v['rate-seconds'] !== undefined ? Number(v['rate-seconds']) : q ? 1 : 3;
  if (!(rateSeconds > 0)) throw new Error('--rate-seconds must be a positive number');
  if (v['stream-window'] !== undefined) parseSize(v['stream-window']); // the hub validates its range
  return {
    quick: q,
    rounds: int('rounds', 3, 1),
    bytes,
    roundTrips: int('round-trips', 2000, 500),
    latencyWarmup: 100,
    setups: int('setups', 500, 100),
    setupWarmup: 20,
    concurrency: int('concurrency', 16, 16),
    rateSeconds,
    isolationRoundTrips: int('isolation-round-trips', 1000, 300),
    frozenRepeats: int('frozen-repeats', 3, 1),
    frozenBytesPerStream: Math.max(16 * 2 ** 20, Math.floor(bytes / 4)),
    frozenStreams: 2,
    devices: int('devices', 10_000, 2000),
    agentDevices: int('agent-devices', 1000, 1000),
    streamWindow: v['stream-window'],
    paths: v.paths !== undefined ? list(v.paths, PATHS, '--paths') : [...PATHS],
    skip: v.skip !== undefined ? list(v.skip, SCENARIOS, '--skip') : [],
    out: v.out ?? fileURLToPath(new URL('../../bench/results/latest.json', import.meta.url)),
    profile: v.profile !== undefined ? resolve(v.profile) : undefined,
  };
}
