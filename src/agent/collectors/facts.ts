/**
 * Facts about the host: OS, kernel, architecture, agent version, host name, and when it
 * booted (the hub shows uptime from it; sending uptime itself would change every minute).
 */
import { readFile } from 'node:fs/promises';
import { arch, hostname, release, uptime } from 'node:os';
import { join } from 'node:path';
import type { InventoryRow } from '../../protocol/messages/telemetry.js';
import { VERSION } from '../../version.js';
import type { SourceResult } from './source.js';

export function osName(osRelease: string): string | undefined {
  const match = /^PRETTY_NAME=(?:"([^"]*)"|(.*))$/m.exec(osRelease);
  return (match?.[1] ?? match?.[2])?.trim().slice(0, 128);
}

/** The boot time from /proc/stat's btime (seconds), to the minute. */
export function bootTime(procStat: string): number | undefined {
  const match = /^btime (\d+)$/m.exec(procStat);
  return match ? Math.floor(Number(match[1]) / 60) * 60_000 : undefined;
}

export class FactsCollector {
  constructor(private readonly procRoot = '/proc') {}

  async collect(): Promise<SourceResult> {
    const os = await readFile('/etc/os-release', 'utf8').then(osName, () => undefined);
    const boot = (await readFile(join(this.procRoot, 'stat'), 'utf8').then(bootTime, () => undefined)) ?? Math.floor((Date.now() - uptime() * 1000) / 60_000) * 60_000;
    const row: InventoryRow = {
      k: 'facts',
      os: os ?? 'unknown',
      kernel: release().slice(0, 128),
      arch: arch().slice(0, 32),
      agent: VERSION.slice(0, 64),
      hostname: hostname().slice(0, 253),
      bootAt: new Date(boot).toISOString(),
    };
    return { rows: [row] };
  }
}
