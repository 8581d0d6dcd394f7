/**
 * How long the CLI takes to start, against bare Node (issue 9: every `ssh` through
 * `ProxyCommand='drawbridge proxy %h'` pays it; aim for at most twice bare Node).
 *
 *   node dist/bench/cli-start.js [--rounds N]
 *
 * Three programs, interleaved round by round in rotating order so that a busy moment of a
 * shared machine hits all of them alike: `node -e 0`; `drawbridge --version`; and a
 * proxy-style start, `drawbridge proxy DEVICE` with credentials for a hub that refuses the
 * connection at once (127.0.0.1:1), which loads everything `proxy` loads before it talks to
 * the hub and then exits with HUB_UNREACHABLE. Wall time from spawn to exit.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'drawbridge.js');
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20' } } });
const ROUNDS = Number(values.rounds);

const PROGRAMS: { name: string; args: string[]; env?: Record<string, string> }[] = [
  { name: 'node -e 0 (bare Node)', args: ['-e', '0'] },
  { name: 'drawbridge --version', args: [BIN, '--version'] },
  {
    name: 'drawbridge proxy DEVICE (hub refuses at once)',
    args: [BIN, 'proxy', 'plc-7-ssh'],
    env: { DRAWBRIDGE_HUB: 'https://127.0.0.1:1', DRAWBRIDGE_TOKEN: `dbp_0123456789abcdef_${'A'.repeat(43)}`, DRAWBRIDGE_CA_PIN: `sha256:${'0'.repeat(64)}`, DRAWBRIDGE_CONFIG_DIR: '/nonexistent' },
  },
];

function run(args: string[], env: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { stdio: 'ignore', env: { ...process.env, ...env } });
    child.once('error', reject);
    child.once('exit', () => resolve(performance.now() - t0));
  });
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;

const samples = PROGRAMS.map(() => [] as number[]);
for (const [i, program] of PROGRAMS.entries()) await run(program.args, program.env).then((ms) => void ms, () => void i); // warm the page cache
for (let round = 0; round < ROUNDS; round++) {
  for (let k = 0; k < PROGRAMS.length; k++) {
    const index = (round + k) % PROGRAMS.length;
    const program = PROGRAMS[index] as (typeof PROGRAMS)[number];
    (samples[index] as number[]).push(await run(program.args, program.env));
  }
}
const bare = percentile([...(samples[0] as number[])].sort((a, b) => a - b), 0.5);
process.stdout.write(`| program | median (ms) | p90 (ms) | median / bare Node |\n|---|---:|---:|---:|\n`);
for (const [i, program] of PROGRAMS.entries()) {
  const sorted = [...(samples[i] as number[])].sort((a, b) => a - b);
  const median = percentile(sorted, 0.5);
  process.stdout.write(`| ${program.name} | ${median.toFixed(0)} | ${percentile(sorted, 0.9).toFixed(0)} | ${(median / bare).toFixed(2)}x |\n`);
}
process.stdout.write(`\n${ROUNDS} interleaved rounds; target: at most 2x bare Node\n`);
