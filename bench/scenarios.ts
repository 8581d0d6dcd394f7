/**
 * Drawbridge-only scenario: a frozen reader. One stream's local reader stops reading (it
 * asked the target for endless data and never reads again) while other streams on the
 * same connect link and device download at full speed. End-to-end credit should stall
 * only the frozen stream, and no process should buffer its data: the others keep their
 * speed and the hub, agent and connect keep flat memory.
 */
import { performance } from 'node:perf_hooks';
import { measureDownload, openFrozenReader } from './measure.js';
import { rssKiB } from './processes.js';
import { median } from './report.js';
import type { Forward } from './sshd.js';

export interface FrozenReaderResult {
  streams: number;
  bytesPerStream: number;
  /** aggregate MB/s of the other streams, per measurement */
  withoutMBpsSamples: number[];
  withMBpsSamples: number[];
  withoutMBps: number;
  withMBps: number;
  /** with / without */
  othersRatio: number;
  /** how long the frozen stream was held */
  frozenSeconds: number;
  /** per process: before (largest while the others ran without it), at the start, largest and at the end of the frozen period, after */
  rssKiB: Record<string, { before: number; frozenStart: number; frozenMax: number; frozenEnd: number; after: number }>;
  /** frozenMax - before, per process */
  rssGrowthKiB: Record<string, number>;
  /** RSS (KiB) per process, about once a second over the whole scenario */
  rssSeries: { seconds: number; phase: string; rssKiB: Record<string, number> }[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Samples the RSS of `processes` every 250 ms, tagging each sample with the current phase. */
function rssSampler(processes: { name: string; pid: number }[]): { phase: string; samples: { seconds: number; phase: string; rssKiB: Record<string, number> }[]; stop(): void } {
  const started = performance.now();
  const state = {
    phase: 'before',
    samples: [] as { seconds: number; phase: string; rssKiB: Record<string, number> }[],
    stop: () => clearInterval(timer),
  };
  const sample = (): void => {
    const rss: Record<string, number> = {};
    for (const p of processes) rss[p.name] = rssKiB(p.pid);
    state.samples.push({ seconds: (performance.now() - started) / 1000, phase: state.phase, rssKiB: rss });
  };
  const timer = setInterval(sample, 250);
  sample();
  return state;
}

export async function measureFrozenReader(
  tunnel: Forward,
  options: { streams: number; bytesPerStream: number; repeats: number },
  log: (line: string) => void,
): Promise<FrozenReaderResult> {
  const others = async (): Promise<number> => {
    const started = performance.now();
    await Promise.all(Array.from({ length: options.streams }, () => measureDownload(tunnel.port, options.bytesPerStream)));
    return (options.streams * options.bytesPerStream) / ((performance.now() - started) / 1000) / 1e6;
  };
  const sampler = rssSampler(tunnel.processes);
  const withoutSamples: number[] = [];
  const withSamples: number[] = [];
  let frozenSeconds = 0;
  try {
    for (let i = 0; i < options.repeats; i++) withoutSamples.push(await others());
    await tunnel.settle();
    sampler.phase = 'frozen';
    const frozenAt = performance.now();
    const unfreeze = await openFrozenReader(tunnel.port);
    try {
      // Let the frozen stream fill every buffer and window on its way before measuring.
      await sleep(2000);
      for (let i = 0; i < options.repeats; i++) withSamples.push(await others());
      await sleep(1000);
    } finally {
      unfreeze();
      frozenSeconds = (performance.now() - frozenAt) / 1000;
    }
    sampler.phase = 'after';
    await tunnel.settle();
    for (let i = 0; i < options.repeats; i++) withoutSamples.push(await others());
    await sleep(500);
  } finally {
    sampler.stop();
  }
  const withoutMBps = median(withoutSamples) ?? NaN;
  const withMBps = median(withSamples) ?? NaN;
  const rss: FrozenReaderResult['rssKiB'] = {};
  const growth: Record<string, number> = {};
  for (const p of tunnel.processes) {
    const of = (phase: string): number[] => sampler.samples.filter((s) => s.phase === phase).map((s) => s.rssKiB[p.name] as number);
    const frozen = of('frozen');
    const before = Math.max(...of('before'));
    rss[p.name] = { before, frozenStart: frozen[0] ?? NaN, frozenMax: Math.max(...frozen), frozenEnd: frozen[frozen.length - 1] ?? NaN, after: of('after').pop() ?? NaN };
    growth[p.name] = Math.max(...frozen) - before;
  }
  log(`  others: ${withoutMBps.toFixed(0)} MB/s without the frozen reader, ${withMBps.toFixed(0)} MB/s with it`);
  return {
    streams: options.streams,
    bytesPerStream: options.bytesPerStream,
    withoutMBpsSamples: withoutSamples,
    withMBpsSamples: withSamples,
    withoutMBps,
    withMBps,
    othersRatio: withMBps / withoutMBps,
    frozenSeconds,
    rssKiB: rss,
    rssGrowthKiB: growth,
    // About one sample a second is enough for the record.
    rssSeries: sampler.samples.filter((_, i) => i % 4 === 0),
  };
}
