/**
 * The benchmark's output: medians over interleaved rounds side by side, ratios of Drawbridge
 * to `ssh -L` and to the reverse-SSH bastion chain, CPU per process, the Drawbridge-only
 * scenarios, and the targets of the data-path issue with met / not met.
 */
import type { Percentiles, RateResult, ThroughputResult } from './measure.js';
import type { IsolationResult, MemoryResult, ScaleResult } from './drawbridge.js';

export const PATHS = ['direct', 'socat', 'ssh', 'bastion', 'drawbridge'] as const;
export type PathName = (typeof PATHS)[number];

export const PATH_LABELS: Record<PathName, string> = {
  direct: 'direct TCP',
  socat: 'socat relay',
  ssh: 'ssh -L',
  bastion: 'ssh bastion',
  drawbridge: 'drawbridge',
};

/** One round's measurements of one path. */
export interface RoundResult {
  throughput: ThroughputResult;
  latencyMicros: Percentiles;
  setupMs: Percentiles;
  rate: RateResult;
}

/** Medians over the rounds. */
export interface PathSummary {
  megabytesPerSecond: number;
  cpuSecondsPerGiB: number;
  cpuByProcess: Record<string, number>;
  latencyP50Micros: number;
  latencyP99Micros: number;
  setupP50Ms: number;
  setupP99Ms: number;
  streamsPerSecond: number;
  setupUnderLoadP50Ms: number;
}

export interface PathResult {
  available: boolean;
  skippedReason?: string;
  details?: Record<string, string>;
  rounds?: RoundResult[];
  summary?: PathSummary;
}

export interface TargetCheck {
  metric: string;
  target: string;
  value: string;
  met: boolean | null;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function summarize(rounds: RoundResult[]): PathSummary {
  const m = (f: (r: RoundResult) => number): number => median(rounds.map(f));
  const names = Object.keys(rounds[0]?.throughput.relayCpuByProcess ?? {});
  return {
    megabytesPerSecond: m((r) => r.throughput.megabytesPerSecond),
    cpuSecondsPerGiB: m((r) => r.throughput.relayCpuSecondsPerGiB),
    cpuByProcess: Object.fromEntries(names.map((n) => [n, m((r) => r.throughput.relayCpuByProcess[n] ?? NaN)])),
    latencyP50Micros: m((r) => r.latencyMicros.p50),
    latencyP99Micros: m((r) => r.latencyMicros.p99),
    setupP50Ms: m((r) => r.setupMs.p50),
    setupP99Ms: m((r) => r.setupMs.p99),
    streamsPerSecond: m((r) => r.rate.streamsPerSecond),
    setupUnderLoadP50Ms: m((r) => r.rate.setupUnderLoad.p50),
  };
}

const ratio = (a: number | undefined, b: number | undefined): number | undefined => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
const show = (v: number | undefined, digits: number, unit = ''): string => (v === undefined || Number.isNaN(v) ? 'n/a' : `${v.toFixed(digits)}${unit}`);
const check = (v: number | undefined, ok: (v: number) => boolean): boolean | null => (v === undefined || Number.isNaN(v) ? null : ok(v));

export function evaluateTargets(
  paths: Partial<Record<PathName, PathResult>>,
  extras: { isolation?: IsolationResult; scale?: ScaleResult; memory?: MemoryResult },
): TargetCheck[] {
  const db = paths.drawbridge?.summary;
  const ssh = paths.ssh?.summary;
  const bastion = paths.bastion?.summary;
  const vsSsh = ratio(db?.megabytesPerSecond, ssh?.megabytesPerSecond);
  const vsBastion = ratio(db?.megabytesPerSecond, bastion?.megabytesPerSecond);
  const rttVsSsh = ratio(db?.latencyP50Micros, ssh?.latencyP50Micros);
  const rttVsBastion = ratio(db?.latencyP50Micros, bastion?.latencyP50Micros);
  const { isolation, scale, memory } = extras;
  return [
    { metric: 'throughput vs ssh -L', target: '>= 0.8x', value: show(vsSsh, 2, 'x'), met: check(vsSsh, (v) => v >= 0.8) },
    { metric: 'throughput vs bastion chain', target: '>= 1.4x', value: show(vsBastion, 2, 'x'), met: check(vsBastion, (v) => v >= 1.4) },
    { metric: 'RTT p50 vs bastion chain', target: '<= 1.0x', value: show(rttVsBastion, 2, 'x'), met: check(rttVsBastion, (v) => v <= 1.0) },
    { metric: 'RTT p50 vs ssh -L', target: '<= 2.0x', value: show(rttVsSsh, 2, 'x'), met: check(rttVsSsh, (v) => v <= 2.0) },
    { metric: 'new streams/s (16 in flight)', target: '>= 1500/s', value: show(db?.streamsPerSecond, 0, '/s'), met: check(db?.streamsPerSecond, (v) => v >= 1500) },
    { metric: 'stream setup p50', target: '<= 3 ms', value: show(db?.setupP50Ms, 2, ' ms'), met: check(db?.setupP50Ms, (v) => v <= 3) },
    { metric: 'interactive RTT p50 beside bulk', target: '<= 10 ms', value: show(isolation?.interactiveDuringBulk.p50Ms, 2, ' ms'), met: check(isolation?.interactiveDuringBulk.p50Ms, (v) => v <= 10) },
    { metric: 'agent TCP connections, 1,000 devices', target: '1', value: show(scale?.agentHubConnections, 0), met: check(scale?.agentHubConnections, (v) => v === 1) },
    { metric: 'agent RSS, 1,000 devices', target: '<= 80 MB', value: show(scale ? scale.agentRssKiB / 1024 : undefined, 1, ' MiB'), met: check(scale?.agentRssKiB, (v) => v * 1024 <= 80e6) },
    { metric: `hub memory per idle device (${memory?.devices ?? '-'})`, target: '<= 20 KiB', value: show(memory?.perDeviceKiB, 1, ' KiB'), met: check(memory?.perDeviceKiB, (v) => v <= 20) },
  ];
}

function pad(text: string, width: number, left = false): string {
  return left ? text.padEnd(width) : text.padStart(width);
}

export function renderTable(
  paths: Partial<Record<PathName, PathResult>>,
  extras: { isolation?: IsolationResult; scale?: ScaleResult; memory?: MemoryResult },
  targets: TargetCheck[],
  rounds: number,
): string {
  const cols = PATHS.filter((p) => paths[p]);
  type Row = { label: string; get: (s: PathSummary) => number | undefined; digits: number };
  const rows: Row[] = [
    { label: 'throughput (MB/s)', get: (s) => s.megabytesPerSecond, digits: 0 },
    { label: 'CPU s per GiB, all relays', get: (s) => s.cpuSecondsPerGiB, digits: 2 },
    { label: 'RTT p50 (us)', get: (s) => s.latencyP50Micros, digits: 0 },
    { label: 'RTT p99 (us)', get: (s) => s.latencyP99Micros, digits: 0 },
    { label: 'setup p50 (ms)', get: (s) => s.setupP50Ms, digits: 2 },
    { label: 'setup p99 (ms)', get: (s) => s.setupP99Ms, digits: 2 },
    { label: 'new streams/s (16 in flight)', get: (s) => s.streamsPerSecond, digits: 0 },
    { label: 'setup p50 under load (ms)', get: (s) => s.setupUnderLoadP50Ms, digits: 2 },
  ];
  const first = 30;
  const width = 12;
  const lines: string[] = [`medians of ${rounds} interleaved round${rounds === 1 ? '' : 's'}`, ''];
  lines.push(pad('metric', first, true) + cols.map((c) => pad(PATH_LABELS[c], width)).join('') + pad('db/ssh -L', width) + pad('db/bastion', width));
  lines.push('-'.repeat(first + width * (cols.length + 2)));
  for (const row of rows) {
    const values = cols.map((c) => {
      const summary = paths[c]?.summary;
      return pad(summary ? show(row.get(summary), row.digits) : 'n/a', width);
    });
    const db = paths.drawbridge?.summary ? row.get(paths.drawbridge.summary) : undefined;
    const r = (other: PathName): string => {
      const o = paths[other]?.summary ? row.get(paths[other]?.summary as PathSummary) : undefined;
      const value = ratio(db, o);
      return value === undefined ? '-' : `${value.toFixed(2)}x`;
    };
    lines.push(pad(row.label, first, true) + values.join('') + pad(r('ssh'), width) + pad(r('bastion'), width));
  }
  lines.push('');
  lines.push('CPU seconds per GiB, by process (medians):');
  for (const c of cols) {
    const byProcess = paths[c]?.summary?.cpuByProcess ?? {};
    if (Object.keys(byProcess).length === 0) continue;
    lines.push(`  ${pad(PATH_LABELS[c], 12, true)} ${Object.entries(byProcess).map(([n, v]) => `${n} ${v.toFixed(2)}`).join(', ')}`);
  }
  const { isolation, scale, memory } = extras;
  if (isolation) {
    lines.push('');
    lines.push(`isolation (one agent, one client link): interactive RTT p50/p99 ${isolation.interactiveAlone.p50Ms.toFixed(2)}/${isolation.interactiveAlone.p99Ms.toFixed(2)} ms alone, ` +
      `${isolation.interactiveDuringBulk.p50Ms.toFixed(2)}/${isolation.interactiveDuringBulk.p99Ms.toFixed(2)} ms beside a bulk stream at ${isolation.bulkMegabytesPerSecond.toFixed(0)} MB/s`);
    lines.push(`  frozen reader: other stream ${isolation.othersAlone.toFixed(0)} MB/s alone, ${isolation.othersBesideFrozen.toFixed(0)} MB/s beside a frozen reader; ` +
      `RSS growth while frozen: hub ${isolation.rssGrowthKiB.hub} KiB, agent ${isolation.rssGrowthKiB.agent} KiB, connect ${isolation.rssGrowthKiB.connect} KiB`);
  }
  if (scale) {
    lines.push('');
    lines.push(`scale: one agent hosting ${scale.devices} devices: ${scale.agentHubConnections} TCP connection(s) to the hub, agent RSS ${(scale.agentRssKiB / 1024).toFixed(1)} MiB, all online in ${scale.onlineSeconds.toFixed(1)} s`);
  }
  if (memory) {
    lines.push(`hub memory, ${memory.devices} idle devices: RSS ${(memory.hubRssKiB.baseline / 1024).toFixed(1)} MiB (warm) -> ` +
      `${(memory.hubRssKiB.registered / 1024).toFixed(1)} MiB (registered) -> ${(memory.hubRssKiB.online / 1024).toFixed(1)} MiB (all online): ` +
      `${memory.perDeviceKiB.toFixed(1)} KiB per device (${memory.perConnectionKiB.toFixed(1)} KiB of it online state); agent RSS ${(memory.agentRssKiB / 1024).toFixed(1)} MiB`);
  }
  lines.push('');
  lines.push(pad('target', 38, true) + pad('goal', 12) + pad('measured', 14) + pad('met', 6));
  lines.push('-'.repeat(70));
  for (const t of targets) {
    lines.push(pad(t.metric, 38, true) + pad(t.target, 12) + pad(t.value, 14) + pad(t.met === null ? 'n/a' : t.met ? 'yes' : 'NO', 6));
  }
  return lines.join('\n');
}
