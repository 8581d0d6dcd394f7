/**
 * The benchmark's output: per-path medians over the rounds, ratios of Drawbridge to
 * `ssh -L` and to the bastion chain (of the medians, and their range over the rounds,
 * each round's ratio taken between measurements made minutes apart at most), the targets
 * of issue 6 with met / not met, and the text table.
 */
import type { IsolationResult, Percentiles, RateResult, ThroughputResult } from './measure.js';
import type { FrozenReaderResult } from './scenarios.js';
import type { ScaleResult } from './scale.js';

export const PATHS = ['direct', 'socat', 'ssh', 'bastion', 'drawbridge'] as const;
export type PathName = (typeof PATHS)[number];

export const PATH_LABELS: Record<PathName, string> = {
  direct: 'direct TCP',
  socat: 'socat',
  ssh: 'ssh -L',
  bastion: 'bastion',
  drawbridge: 'drawbridge',
};

/** What one path measured in one round. */
export interface PathRound {
  throughput?: ThroughputResult;
  latencyMicros?: Percentiles;
  setupMs?: Percentiles;
  rate?: RateResult;
  /** bulk and ping-pong on two streams through the same path (for Drawbridge: same connect, same device) */
  isolation?: IsolationResult;
  /** Drawbridge only: bulk through one connect and device, ping-pong through a second connect to a second device of the same agent */
  isolationSecondLink?: IsolationResult;
  errors?: string[];
}

export interface Round {
  round: number;
  /** the order the paths ran in, for every metric of this round */
  order: PathName[];
  paths: Partial<Record<PathName, PathRound>>;
}

export interface PathInfo {
  available: boolean;
  skippedReason?: string;
  /** relay processes whose CPU is measured */
  processes?: string[];
  details?: Record<string, string>;
}

interface MetricDef {
  key: string;
  label: string;
  digits: number;
  get(r: PathRound): number | undefined;
}

export const METRICS: MetricDef[] = [
  { key: 'throughputMBps', label: 'throughput (MB/s)', digits: 0, get: (r) => r.throughput?.megabytesPerSecond },
  { key: 'cpuSecondsPerGiB', label: 'CPU s per GiB, relays', digits: 2, get: (r) => r.throughput?.cpuSecondsPerGiBTotal },
  { key: 'rttP50Micros', label: 'RTT p50 (us)', digits: 0, get: (r) => r.latencyMicros?.p50 },
  { key: 'rttP99Micros', label: 'RTT p99 (us)', digits: 0, get: (r) => r.latencyMicros?.p99 },
  { key: 'setupP50Ms', label: 'setup p50 (ms)', digits: 2, get: (r) => r.setupMs?.p50 },
  { key: 'setupP99Ms', label: 'setup p99 (ms)', digits: 2, get: (r) => r.setupMs?.p99 },
  { key: 'streamsPerSecond', label: 'new streams/s (16 in flight)', digits: 0, get: (r) => r.rate?.streamsPerSecond },
  { key: 'setupUnderLoadP50Ms', label: '  setup p50 at that load (ms)', digits: 2, get: (r) => r.rate?.setupUnderLoad.p50 },
  { key: 'cpuMsPerStream', label: '  CPU ms per stream, relays', digits: 2, get: (r) => r.rate?.cpuMsPerStreamTotal },
  { key: 'isolationRttP50Micros', label: 'RTT p50 beside bulk (us)', digits: 0, get: (r) => r.isolation?.latencyMicros.p50 },
  { key: 'isolationRttP99Micros', label: 'RTT p99 beside bulk (us)', digits: 0, get: (r) => r.isolation?.latencyMicros.p99 },
  { key: 'isolationBulkMBps', label: '  the bulk stream (MB/s)', digits: 0, get: (r) => r.isolation?.bulkMegabytesPerSecond },
];

/** The same list, started `by` places further on: round r runs the paths in rotate(paths, r). */
export const rotate = <T>(items: T[], by: number): T[] => items.map((_, i) => items[(i + by) % items.length] as T);

export function median(values: number[]): number | undefined {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export interface Stat {
  median: number;
  min: number;
  max: number;
  /** one value per round that measured it */
  rounds: number[];
}

function stat(values: (number | undefined)[]): Stat | undefined {
  const present = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  const m = median(present);
  return m === undefined ? undefined : { median: m, min: Math.min(...present), max: Math.max(...present), rounds: present };
}

export interface PathSummary {
  metrics: Record<string, Stat>;
  /** median CPU seconds per GiB of each relay process during the throughput runs */
  cpuSecondsPerGiBByProcess: Record<string, number>;
  /** median CPU ms per stream of each relay process during the stream-rate runs */
  cpuMsPerStreamByProcess: Record<string, number>;
  /** Drawbridge only */
  isolationSecondLink?: { rttP50Micros: Stat | undefined; rttP99Micros: Stat | undefined; bulkMBps: Stat | undefined };
}

function medianByName(records: (Record<string, number> | undefined)[]): Record<string, number> {
  const names = new Set(records.flatMap((r) => Object.keys(r ?? {})));
  return Object.fromEntries([...names].map((n) => [n, median(records.map((r) => r?.[n]).filter((v): v is number => v !== undefined)) ?? NaN]));
}

export function summarize(rounds: Round[]): Partial<Record<PathName, PathSummary>> {
  const summary: Partial<Record<PathName, PathSummary>> = {};
  for (const path of PATHS) {
    const results = rounds.map((r) => r.paths[path]).filter((r): r is PathRound => r !== undefined);
    if (results.length === 0) continue;
    const metrics: Record<string, Stat> = {};
    for (const m of METRICS) {
      const s = stat(results.map(m.get));
      if (s) metrics[m.key] = s;
    }
    const second = results.map((r) => r.isolationSecondLink).filter((r): r is IsolationResult => r !== undefined);
    summary[path] = {
      metrics,
      cpuSecondsPerGiBByProcess: medianByName(results.map((r) => r.throughput?.cpuSecondsPerGiB)),
      cpuMsPerStreamByProcess: medianByName(results.map((r) => r.rate?.cpuMsPerStream)),
      ...(second.length
        ? {
            isolationSecondLink: {
              rttP50Micros: stat(second.map((r) => r.latencyMicros.p50)),
              rttP99Micros: stat(second.map((r) => r.latencyMicros.p99)),
              bulkMBps: stat(second.map((r) => r.bulkMegabytesPerSecond)),
            },
          }
        : {}),
    };
  }
  return summary;
}

export interface Ratio {
  /** Drawbridge's median / the other path's median */
  ofMedians: number;
  /** the smallest and largest per-round ratio (both measured in the same round) */
  roundMin: number;
  roundMax: number;
}

/** Drawbridge / `other` for every metric both measured. */
export function ratios(rounds: Round[], summary: Partial<Record<PathName, PathSummary>>, other: PathName): Record<string, Ratio> {
  const out: Record<string, Ratio> = {};
  const db = summary.drawbridge;
  const them = summary[other];
  if (!db || !them) return out;
  for (const m of METRICS) {
    const a = db.metrics[m.key]?.median;
    const b = them.metrics[m.key]?.median;
    if (a === undefined || b === undefined || b <= 0) continue;
    const perRound = rounds
      .map((r) => {
        const x = r.paths.drawbridge ? m.get(r.paths.drawbridge) : undefined;
        const y = r.paths[other] ? m.get(r.paths[other] as PathRound) : undefined;
        return x !== undefined && y !== undefined && y > 0 ? x / y : undefined;
      })
      .filter((v): v is number => v !== undefined);
    out[m.key] = { ofMedians: a / b, roundMin: Math.min(...perRound), roundMax: Math.max(...perRound) };
  }
  return out;
}

export interface TargetCheck {
  metric: string;
  target: string;
  value: string;
  met: boolean | null;
}

export interface Evaluated {
  summary: Partial<Record<PathName, PathSummary>>;
  versusSsh: Record<string, Ratio>;
  versusBastion: Record<string, Ratio>;
  frozenReader: FrozenReaderResult | undefined;
  scale: ScaleResult | undefined;
}

/** The figures issue 6 asks for (section 4), plus the frozen-reader checks (see bench/README.md). */
export function evaluateTargets(e: Evaluated): TargetCheck[] {
  const show = (v: number | undefined, digits: number, unit = ''): string => (v === undefined || Number.isNaN(v) ? 'n/a' : `${v.toFixed(digits)}${unit}`);
  const check = (metric: string, target: string, v: number | undefined, digits: number, unit: string, ok: (v: number) => boolean): TargetCheck => ({
    metric,
    target,
    value: show(v, digits, unit),
    met: v === undefined || Number.isNaN(v) ? null : ok(v),
  });
  const db = e.summary.drawbridge?.metrics;
  const scale = e.scale;
  const frozen = e.frozenReader;
  const at = scale ? ` (at ${scale.devices})` : '';
  return [
    check('throughput vs ssh -L', '>= 0.8x', e.versusSsh['throughputMBps']?.ofMedians, 2, 'x', (v) => v >= 0.8),
    check('throughput vs bastion chain', '>= 1.4x', e.versusBastion['throughputMBps']?.ofMedians, 2, 'x', (v) => v >= 1.4),
    check('RTT p50 vs bastion chain', '<= 1.0x', e.versusBastion['rttP50Micros']?.ofMedians, 2, 'x', (v) => v <= 1.0),
    check('RTT p50 vs ssh -L', '<= 2.0x', e.versusSsh['rttP50Micros']?.ofMedians, 2, 'x', (v) => v <= 2.0),
    check('new streams/s, 16 in flight', '>= 1500/s', db?.['streamsPerSecond']?.median, 0, '/s', (v) => v >= 1500),
    check('stream setup p50', '<= 3 ms', db?.['setupP50Ms']?.median, 2, ' ms', (v) => v <= 3),
    check('isolation: RTT p50 beside bulk', '<= 10 ms', db?.['isolationRttP50Micros'] ? db['isolationRttP50Micros'].median / 1000 : undefined, 2, ' ms', (v) => v <= 10),
    check('frozen reader: others\' speed', '>= 0.8x', frozen?.othersRatio, 2, 'x', (v) => v >= 0.8),
    check('frozen reader: RSS growth', '<= 32 MiB', frozen ? Math.max(...Object.values(frozen.rssGrowthKiB)) / 1024 : undefined, 1, ' MiB', (v) => v <= 32),
    check(`1 agent, ${scale?.agentDevices ?? 1000} devices: TCP to hub`, '= 1', scale?.agent.tcpToHub, 0, '', (v) => v === 1),
    check(`1 agent, ${scale?.agentDevices ?? 1000} devices: agent RSS`, '<= 80 MB', scale ? (scale.agent.rssKiB * 1024) / 1e6 : undefined, 1, ' MB', (v) => v <= 80),
    check(`hub per idle device${at}`, '<= 20 KiB', scale?.hubKiBPerDevice, 1, ' KiB', (v) => v <= 20),
  ];
}

const pad = (text: string, width: number, left = false): string => (left ? text.padEnd(width) : text.padStart(width));

function fmt(v: number | undefined, digits: number): string {
  return v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits);
}

function ratioText(r: Ratio | undefined): string {
  if (!r) return '-';
  return r.roundMin === r.roundMax ? `${r.ofMedians.toFixed(2)}x` : `${r.ofMedians.toFixed(2)}x (${r.roundMin.toFixed(2)}-${r.roundMax.toFixed(2)})`;
}

export function renderTable(paths: Partial<Record<PathName, PathInfo>>, rounds: Round[], e: Evaluated, targets: TargetCheck[]): string {
  const cols = PATHS.filter((p) => paths[p]);
  const first = 30;
  const width = 11;
  const ratioWidth = 22;
  const lines: string[] = [];
  lines.push(`median of ${rounds.length} round(s), paths interleaved; ratios are drawbridge / other (median ratio, and its range over the rounds)`);
  lines.push(
    pad('metric', first, true) + cols.map((c) => pad(PATH_LABELS[c], width)).join('') + pad('db / ssh -L', ratioWidth) + pad('db / bastion', ratioWidth),
  );
  lines.push('-'.repeat(first + width * cols.length + 2 * ratioWidth));
  for (const m of METRICS) {
    const values = cols.map((c) => pad(paths[c]?.available ? fmt(e.summary[c]?.metrics[m.key]?.median, m.digits) : 'skipped', width));
    lines.push(pad(m.label, first, true) + values.join('') + pad(ratioText(e.versusSsh[m.key]), ratioWidth) + pad(ratioText(e.versusBastion[m.key]), ratioWidth));
  }
  const byProcess = (title: string, pick: (p: PathSummary) => Record<string, number>): void => {
    lines.push(title);
    for (const c of cols) {
      const values = Object.entries(e.summary[c] ? pick(e.summary[c]) : {});
      if (values.length) lines.push(`  ${pad(PATH_LABELS[c], 12, true)}${values.map(([name, v]) => `${name} ${fmt(v, 2)}`).join(', ')}`);
    }
  };
  lines.push('');
  byProcess('CPU seconds per GiB, by process (median):', (p) => p.cpuSecondsPerGiBByProcess);
  byProcess('CPU milliseconds per new stream, by process (median):', (p) => p.cpuMsPerStreamByProcess);
  const second = e.summary.drawbridge?.isolationSecondLink;
  if (second) {
    lines.push('');
    lines.push('isolation (drawbridge): bulk download and ping-pong through the same agent;');
    lines.push(`  same connect link, same device:            RTT p50 ${fmt((e.summary.drawbridge?.metrics['isolationRttP50Micros']?.median ?? NaN) / 1000, 2)} ms, ` +
      `p99 ${fmt((e.summary.drawbridge?.metrics['isolationRttP99Micros']?.median ?? NaN) / 1000, 2)} ms, bulk ${fmt(e.summary.drawbridge?.metrics['isolationBulkMBps']?.median, 0)} MB/s`);
    lines.push(`  second connect link, second device:        RTT p50 ${fmt((second.rttP50Micros?.median ?? NaN) / 1000, 2)} ms, ` +
      `p99 ${fmt((second.rttP99Micros?.median ?? NaN) / 1000, 2)} ms, bulk ${fmt(second.bulkMBps?.median, 0)} MB/s`);
  }
  const frozen = e.frozenReader;
  if (frozen) {
    lines.push('');
    lines.push(`frozen reader (drawbridge): ${frozen.streams} download streams beside one stream whose reader stopped, same connect link and device;`);
    lines.push(`  others ${fmt(frozen.withoutMBps, 0)} MB/s without it, ${fmt(frozen.withMBps, 0)} MB/s with it (${fmt(frozen.othersRatio, 2)}x); frozen for ${fmt(frozen.frozenSeconds, 0)} s`);
    lines.push('  RSS MiB (before -> frozen start -> frozen max -> after):  ' +
      Object.entries(frozen.rssKiB)
        .map(([name, r]) => `${name} ${fmt(r.before / 1024, 1)} -> ${fmt(r.frozenStart / 1024, 1)} -> ${fmt(r.frozenMax / 1024, 1)} -> ${fmt(r.after / 1024, 1)}`)
        .join('; '));
  }
  const scale = e.scale;
  if (scale) {
    lines.push('');
    lines.push(`scale: one agent hosting ${scale.agentDevices} devices: ${scale.agent.tcpToHub} TCP connection(s) to the hub (${scale.agent.tcpEstablished} established in all), ` +
      `RSS ${fmt(scale.agent.rssKiB / 1024, 1)} MiB, online in ${fmt(scale.agent.onlineSeconds, 1)} s` +
      (scale.secondAgentRssKiB !== null ? `; the agent with the other ${scale.devices - scale.agentDevices}: RSS ${fmt(scale.secondAgentRssKiB / 1024, 1)} MiB` : '') +
      (scale.agentKiBPerExtraDevice !== null ? ` (${fmt(scale.agentKiBPerExtraDevice, 1)} KiB per extra device)` : ''));
    lines.push(`  hub with ${scale.devices} idle devices: RSS ${fmt(scale.hubRssKiB.warm / 1024, 1)} MiB (warm) -> ${fmt(scale.hubRssKiB.registered / 1024, 1)} MiB (registered) -> ` +
      `${fmt(scale.hubRssKiB.online / 1024, 1)} MiB (all online): ${fmt(scale.hubKiBPerDevice, 1)} KiB per device (${fmt(scale.hubKiBPerOnlineDevice, 1)} KiB of it for being online); ` +
      `enrolled in ${fmt(scale.enrollSeconds, 0)} s`);
  }
  lines.push('');
  lines.push(pad('target (issue 6)', 40, true) + pad('goal', 11) + pad('measured', 13) + pad('met', 9));
  lines.push('-'.repeat(73));
  for (const t of targets) {
    lines.push(pad(t.metric, 40, true) + pad(t.target, 11) + pad(t.value, 13) + pad(t.met === null ? 'n/a' : t.met ? 'yes' : 'NOT MET', 9));
  }
  return lines.join('\n');
}
