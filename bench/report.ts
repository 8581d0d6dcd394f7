/**
 * The benchmark's output: a side-by-side table with ratios to `ssh -L` and the targets,
 * and the machine-readable record written to bench/results/.
 */
import type { Percentiles, RateResult, ThroughputResult } from './measure.js';
import type { MemoryResult } from './drawbridge.js';

export const PATHS = ['direct', 'socat', 'ssh', 'drawbridge'] as const;
export type PathName = (typeof PATHS)[number];

export const PATH_LABELS: Record<PathName, string> = {
  direct: 'direct TCP',
  socat: 'socat relay',
  ssh: 'ssh -L',
  drawbridge: 'drawbridge',
};

export interface PathResult {
  available: boolean;
  skippedReason?: string;
  details?: Record<string, string>;
  throughput?: ThroughputResult;
  latencyMicros?: Percentiles;
  setupMs?: Percentiles;
  rate?: RateResult;
  error?: string;
}

export interface TargetCheck {
  metric: string;
  target: string;
  value: string;
  met: boolean | null;
}

export function evaluateTargets(paths: Partial<Record<PathName, PathResult>>, memory: MemoryResult | undefined): TargetCheck[] {
  const db = paths.drawbridge;
  const ssh = paths.ssh;
  const ratio = (a: number | undefined, b: number | undefined): number | undefined => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
  const throughputRatio = ratio(db?.throughput?.megabytesPerSecond, ssh?.throughput?.megabytesPerSecond);
  const latencyRatio = ratio(db?.latencyMicros?.p50, ssh?.latencyMicros?.p50);
  const setup = db?.setupMs?.p50;
  const rate = db?.rate?.streamsPerSecond;
  const perDevice = memory?.perDeviceKiB;
  const show = (v: number | undefined, digits: number, unit = ''): string => (v === undefined ? 'n/a' : `${v.toFixed(digits)}${unit}`);
  return [
    { metric: 'throughput vs ssh -L', target: '>= 1.0x', value: show(throughputRatio, 2, 'x'), met: throughputRatio === undefined ? null : throughputRatio >= 1.0 },
    { metric: 'latency p50 vs ssh -L', target: '<= 1.5x', value: show(latencyRatio, 2, 'x'), met: latencyRatio === undefined ? null : latencyRatio <= 1.5 },
    { metric: 'stream setup p50', target: '<= 20 ms', value: show(setup, 2, ' ms'), met: setup === undefined ? null : setup <= 20 },
    { metric: 'new streams per second', target: '>= 200/s', value: show(rate, 0, '/s'), met: rate === undefined ? null : rate >= 200 },
    { metric: 'hub memory per idle device', target: '<= 100 KiB', value: show(perDevice, 1, ' KiB'), met: perDevice === undefined ? null : perDevice <= 100 },
  ];
}

function pad(text: string, width: number, left = false): string {
  return left ? text.padEnd(width) : text.padStart(width);
}

function fmt(v: number | undefined, digits: number): string {
  if (v === undefined || Number.isNaN(v)) return '-';
  return v.toFixed(digits);
}

export function renderTable(paths: Partial<Record<PathName, PathResult>>, memory: MemoryResult | undefined, targets: TargetCheck[]): string {
  const cols = PATHS.filter((p) => paths[p]);
  type Row = { label: string; get: (r: PathResult) => number | undefined; digits: number };
  const rows: Row[] = [
    { label: 'throughput (MB/s)', get: (r) => r.throughput?.megabytesPerSecond, digits: 0 },
    { label: 'relay CPU s per GiB', get: (r) => r.throughput?.relayCpuSecondsPerGiB, digits: 2 },
    { label: 'latency p50 (us)', get: (r) => r.latencyMicros?.p50, digits: 0 },
    { label: 'latency p99 (us)', get: (r) => r.latencyMicros?.p99, digits: 0 },
    { label: 'setup p50 (ms)', get: (r) => r.setupMs?.p50, digits: 2 },
    { label: 'setup p99 (ms)', get: (r) => r.setupMs?.p99, digits: 2 },
    { label: 'new streams/s', get: (r) => r.rate?.streamsPerSecond, digits: 0 },
    { label: 'setup p50 under load (ms)', get: (r) => r.rate?.setupUnderLoad.p50, digits: 2 },
  ];
  const first = 27;
  const width = 12;
  const lines: string[] = [];
  lines.push(pad('metric', first, true) + cols.map((c) => pad(PATH_LABELS[c], width)).join('') + pad('db / ssh', width));
  lines.push('-'.repeat(first + width * (cols.length + 1)));
  for (const row of rows) {
    const values = cols.map((c) => {
      const r = paths[c] as PathResult;
      if (!r.available) return pad('n/a', width);
      return pad(fmt(row.get(r), row.digits), width);
    });
    const db = paths.drawbridge ? row.get(paths.drawbridge) : undefined;
    const ssh = paths.ssh?.available ? row.get(paths.ssh) : undefined;
    const ratio = db !== undefined && ssh !== undefined && ssh > 0 ? `${(db / ssh).toFixed(2)}x` : '-';
    lines.push(pad(row.label, first, true) + values.join('') + pad(ratio, width));
  }
  if (memory) {
    lines.push('');
    lines.push(`hub memory, ${memory.devices} idle devices on one agent: RSS ${(memory.hubRssKiB.baseline / 1024).toFixed(1)} MiB (warm) -> ` +
      `${(memory.hubRssKiB.registered / 1024).toFixed(1)} MiB (registered) -> ${(memory.hubRssKiB.online / 1024).toFixed(1)} MiB (all online)`);
    lines.push(`  ${memory.perDeviceKiB.toFixed(1)} KiB per device (${memory.perConnectionKiB.toFixed(1)} KiB of it for the idle connection); ` +
      `agent RSS ${(memory.agentRssKiB / 1024).toFixed(1)} MiB; registered in ${memory.registerSeconds.toFixed(1)} s, all online in ${memory.onlineSeconds.toFixed(1)} s`);
  }
  lines.push('');
  lines.push(pad('target', 30, true) + pad('goal', 12) + pad('measured', 14) + pad('met', 8));
  lines.push('-'.repeat(64));
  for (const t of targets) {
    lines.push(pad(t.metric, 30, true) + pad(t.target, 12) + pad(t.value, 14) + pad(t.met === null ? 'n/a' : t.met ? 'yes' : 'NO', 8));
  }
  return lines.join('\n');
}
