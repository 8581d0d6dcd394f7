/**
 * One hub per data directory. Two hubs on one database would both sweep, both renew the
 * certificate, both hold the audit head, and each believe its own view of which devices are
 * online: the second one is refused at start, naming the first.
 *
 * The lock is an OS-level lock, not a file's existence: SQLite's exclusive locking mode on
 * DATA_DIR/hub.lock holds a POSIX record lock for as long as the hub runs. The kernel drops
 * it when the process ends, however it ends (kill -9, a crash, a power cut), so a stale lock
 * cannot block a restart and a reused pid cannot fake a live holder. hub.pid beside it only
 * tells the refused hub who holds the lock.
 */
import { readFileSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DrawbridgeError } from '../errors.js';
import { writeFileAtomic } from '../util/files.js';

export interface DataDirLock {
  /** Records where the hub listens, for the message a refused hub prints. */
  announce(listen: string): void;
  /** Releases the lock (at shutdown); idempotent. */
  release(): void;
}

interface Holder {
  pid: number;
  host: string;
  startedAt: string;
  listen?: string;
}

function describeHolder(pidFile: string): string {
  try {
    const holder = JSON.parse(readFileSync(pidFile, 'utf8')) as Holder;
    return `pid ${holder.pid} on ${holder.host}, started ${holder.startedAt}${holder.listen ? `, listening on ${holder.listen}` : ''}`;
  } catch {
    return 'holder unknown: hub.pid is missing or unreadable';
  }
}

/**
 * Takes the data directory for this process, or throws HUB_LOCKED naming the hub that holds
 * it. `listen` is written beside the lock for that message.
 */
export function lockDataDir(dataDir: string, listen?: string): DataDirLock {
  const lockFile = join(dataDir, 'hub.lock');
  const pidFile = join(dataDir, 'hub.pid');
  // timeout 0: a held lock is answered at once, not waited for.
  const db = new Database(lockFile, { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    // The first write transaction takes the exclusive lock; in exclusive mode it is kept
    // until the connection closes.
    db.exec('CREATE TABLE IF NOT EXISTS hub_lock (taken_at INTEGER); BEGIN EXCLUSIVE; DELETE FROM hub_lock; INSERT INTO hub_lock VALUES (unixepoch()); COMMIT;');
  } catch (error) {
    db.close();
    if ((error as { code?: string }).code === 'SQLITE_BUSY' || (error as { code?: string }).code === 'SQLITE_LOCKED') {
      throw new DrawbridgeError(
        'HUB_LOCKED',
        `the data directory ${dataDir} is in use by another running hub (${describeHolder(pidFile)}); stop that hub first, or use another --data-dir`,
      );
    }
    throw error;
  }
  const holder: Holder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), ...(listen ? { listen } : {}) };
  writeFileAtomic(pidFile, JSON.stringify(holder) + '\n', 0o600);
  let released = false;
  return {
    announce: (where) => {
      if (!released) writeFileAtomic(pidFile, JSON.stringify({ ...holder, listen: where }) + '\n', 0o600);
    },
    release: () => {
      if (released) return;
      released = true;
      rmSync(pidFile, { force: true });
      db.close();
    },
  };
}
