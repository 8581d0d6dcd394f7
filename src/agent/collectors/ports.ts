/**
 * Listening ports from the kernel's tables: TCP sockets in LISTEN and bound, unconnected UDP
 * sockets, IPv4 and IPv6 (/proc/net/{tcp,tcp6,udp,udp6}), with the owning process found
 * through /proc/PID/fd where this user may read it (another user's processes need root; the
 * source then says how many owners it could not see).
 *
 * A UDP socket that appears after the first scan counts once it is seen in two scans in a
 * row: clients (DNS lookups, NTP queries) bind short-lived UDP sockets that would otherwise
 * come and go as "new ports".
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { InventoryRow } from '../../protocol/messages/telemetry.js';
import type { SourceResult } from './source.js';

const TCP_LISTEN = '0A';
const UDP_UNCONNECTED = '07';
/** Descriptors looked at per scan when searching for socket owners: bounded work on a busy host. */
const MAX_FDS_SCANNED = 50_000;

export interface ProcSocket {
  proto: 'tcp' | 'udp';
  addr: string;
  port: number;
  inode: string;
}

/** "0100007F" (little-endian words, as the kernel prints them) to "127.0.0.1"; 32 digits to an IPv6 text. */
export function procAddress(hex: string): string {
  if (hex.length === 8) {
    const n = parseInt(hex, 16);
    return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.');
  }
  const bytes: number[] = [];
  for (let word = 0; word < 4; word++) {
    const w = hex.slice(word * 8, word * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(parseInt(w.slice(b * 2, b * 2 + 2), 16));
  }
  const groups = Array.from({ length: 8 }, (_, i) => ((bytes[i * 2] as number) << 8) | (bytes[i * 2 + 1] as number));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${bytes.slice(12).join('.')}`;
  return compressIpv6(groups);
}

function compressIpv6(groups: number[]): string {
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength && j - i > 1) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** The sockets of one /proc/net table that count as listening. */
export function parseProcNet(text: string, proto: 'tcp' | 'udp'): ProcSocket[] {
  const sockets: ProcSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const [localHex, localPort] = (fields[1] as string).split(':') as [string, string | undefined];
    const [remoteHex, remotePort] = (fields[2] as string).split(':') as [string, string | undefined];
    const state = fields[3];
    if (!localPort || !remotePort || !/^[0-9A-F]+$/i.test(localHex) || (localHex.length !== 8 && localHex.length !== 32)) continue;
    const listening = proto === 'tcp' ? state === TCP_LISTEN : state === UDP_UNCONNECTED && /^0+$/.test(remoteHex) && parseInt(remotePort, 16) === 0;
    if (!listening) continue;
    sockets.push({ proto, addr: procAddress(localHex), port: parseInt(localPort, 16), inode: fields[9] as string });
  }
  return sockets;
}

export function portRowKey(proto: string, addr: string, port: number): string {
  return `${proto}/${addr.includes(':') ? `[${addr}]` : addr}:${port}`;
}

export class PortsCollector {
  /** socket inode -> process name, kept across scans (a listener's socket keeps its inode). */
  private owners = new Map<string, string | null>();
  private previousUdp = new Set<string>();
  private scanned = false;

  constructor(private readonly procRoot: string) {}

  async collect(): Promise<SourceResult> {
    const sockets: ProcSocket[] = [];
    const unreadable: string[] = [];
    let failed = 0;
    for (const [file, proto] of [['tcp', 'tcp'], ['tcp6', 'tcp'], ['udp', 'udp'], ['udp6', 'udp']] as const) {
      try {
        sockets.push(...parseProcNet(await readFile(join(this.procRoot, 'net', file), 'utf8'), proto));
      } catch (error) {
        failed++;
        // A kernel without IPv6 has no tcp6/udp6: not worth a complaint.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || !file.endsWith('6')) unreadable.push(`${file}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`);
      }
    }
    if (failed === 4) return { error: `cannot read ${join(this.procRoot, 'net')}: ${unreadable.join(', ')}` };
    const unknown = sockets.filter((s) => !this.owners.has(s.inode)).map((s) => s.inode);
    const hidden = unknown.length > 0 ? await this.findOwners(new Set(unknown)) : 0;
    const live = new Set(sockets.map((s) => s.inode));
    for (const inode of this.owners.keys()) if (!live.has(inode)) this.owners.delete(inode);

    const rows = new Map<string, InventoryRow>();
    const udpNow = new Set<string>();
    for (const s of sockets) {
      const k = portRowKey(s.proto, s.addr, s.port);
      if (s.proto === 'udp') {
        udpNow.add(k);
        // The first scan takes what is there (the baseline); later ones wait for a second sighting.
        if (this.scanned && !this.previousUdp.has(k)) continue;
      }
      rows.set(k, { k, proto: s.proto, addr: s.addr, port: s.port, proc: this.owners.get(s.inode) ?? null });
    }
    this.previousUdp = udpNow;
    this.scanned = true;
    const root = process.getuid?.() === 0;
    const owners = root ? `no process found for ${hidden} sockets (kernel sockets, or another namespace)` : `the owner of ${hidden} sockets is not readable by this user (root sees every process)`;
    const notes = [...unreadable, ...(hidden > 0 ? [owners] : [])];
    return { rows: [...rows.values()], ...(notes.length > 0 ? { note: notes.join('; ').slice(0, 300) } : {}) };
  }

  /** Finds the processes holding these socket inodes; returns how many stayed unknown. */
  private async findOwners(wanted: Set<string>): Promise<number> {
    let scanned = 0;
    let entries: string[] = [];
    try {
      entries = (await readdir(this.procRoot)).filter((e) => /^\d+$/.test(e));
    } catch {
      return wanted.size;
    }
    for (const pid of entries) {
      if (wanted.size === 0 || scanned >= MAX_FDS_SCANNED) break;
      let fds: string[];
      try {
        fds = await readdir(join(this.procRoot, pid, 'fd'));
      } catch {
        continue;
      }
      for (const fd of fds) {
        if (++scanned > MAX_FDS_SCANNED) break;
        let target: string;
        try {
          target = await readlink(join(this.procRoot, pid, 'fd', fd));
        } catch {
          continue;
        }
        const match = /^socket:\[(\d+)\]$/.exec(target);
        if (!match || !wanted.has(match[1] as string)) continue;
        wanted.delete(match[1] as string);
        this.owners.set(match[1] as string, await readFile(join(this.procRoot, pid, 'comm'), 'utf8').then((c) => c.trim().slice(0, 64) || null, () => null));
      }
    }
    // Not found: remember as unknown so a scan does not search again for the same socket.
    for (const inode of wanted) this.owners.set(inode, null);
    return wanted.size;
  }
}
