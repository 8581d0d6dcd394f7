/**
 * Local accounts and privileged accounts from the account files (/etc/passwd, /etc/group;
 * never /etc/shadow: no password hash leaves the edge). Privileged: uid 0, or a member of a
 * privileged group (sudo, wheel, admin by default), listed in the group or by primary group.
 */
import { readFile } from 'node:fs/promises';
import { MAX_INVENTORY_ROWS, type InventoryRow } from '../../protocol/messages/telemetry.js';
import type { SourceResult } from './source.js';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  shell: string;
}

const NAME = /^[A-Za-z0-9._][A-Za-z0-9._@-]{0,63}\$?$/;

/** Valid entries of a passwd file; comments, NIS lines (+/-), junk and bad numbers are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length !== 7) continue;
    const [name, , uid, gid, , , shell] = fields as [string, string, string, string, string, string, string];
    if (!NAME.test(name) || !/^\d{1,10}$/.test(uid) || !/^\d{1,10}$/.test(gid)) continue;
    entries.push({ name, uid: Number(uid), gid: Number(gid), shell: shell.trim().slice(0, 256) });
  }
  return entries;
}

/** group name -> {gid, members} */
export function parseGroup(text: string): Map<string, { gid: number; members: string[] }> {
  const groups = new Map<string, { gid: number; members: string[] }>();
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length !== 4) continue;
    const [name, , gid, members] = fields as [string, string, string, string];
    if (!NAME.test(name) || !/^\d{1,10}$/.test(gid)) continue;
    groups.set(name, { gid: Number(gid), members: members.trim() ? members.trim().split(',').map((m) => m.trim()).filter((m) => NAME.test(m)) : [] });
  }
  return groups;
}

export function userRows(users: readonly PasswdEntry[]): InventoryRow[] {
  const seen = new Set<string>();
  const rows: InventoryRow[] = [];
  for (const u of users) {
    if (seen.has(u.name)) continue;
    seen.add(u.name);
    rows.push({ k: u.name, uid: u.uid, gid: u.gid, shell: u.shell });
  }
  return rows;
}

export function adminRows(users: readonly PasswdEntry[], groups: ReadonlyMap<string, { gid: number; members: string[] }>, privilegedGroups: readonly string[]): InventoryRow[] {
  const rows = new Map<string, InventoryRow>();
  for (const u of users) if (u.uid === 0) rows.set(`uid0:${u.name}`, { k: `uid0:${u.name}`, user: u.name, via: 'uid0' });
  for (const name of privilegedGroups) {
    const group = groups.get(name);
    if (!group) continue;
    const members = new Set([...group.members, ...users.filter((u) => u.gid === group.gid).map((u) => u.name)]);
    for (const user of members) rows.set(`${name}:${user}`, { k: `${name}:${user}`, user, via: name });
  }
  return [...rows.values()];
}

export class UsersCollector {
  constructor(
    private readonly passwdPath: string,
    private readonly groupPath: string,
    private readonly privilegedGroups: readonly string[],
  ) {}

  async read(): Promise<{ users: SourceResult; admins: SourceResult }> {
    let passwd: string;
    try {
      passwd = await readFile(this.passwdPath, 'utf8');
    } catch (error) {
      const failed = { error: `cannot read ${this.passwdPath}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
      return { users: failed, admins: failed };
    }
    let groupNote: string | undefined;
    let groups = new Map<string, { gid: number; members: string[] }>();
    try {
      groups = parseGroup(await readFile(this.groupPath, 'utf8'));
    } catch (error) {
      groupNote = `cannot read ${this.groupPath} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'}): group members unknown`;
    }
    const entries = parsePasswd(passwd);
    const users = userRows(entries);
    const admins = adminRows(entries, groups, this.privilegedGroups);
    const cap = (rows: InventoryRow[], note?: string): SourceResult => {
      const notes = [note, rows.length > MAX_INVENTORY_ROWS ? `only the first ${MAX_INVENTORY_ROWS} of ${rows.length} are reported` : undefined].filter(Boolean);
      return { rows: rows.slice(0, MAX_INVENTORY_ROWS), ...(notes.length ? { note: notes.join('; ') } : {}) };
    };
    return { users: cap(users), admins: cap(admins, groupNote) };
  }
}
