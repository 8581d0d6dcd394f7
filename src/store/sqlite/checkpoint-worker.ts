/**
 * Copies the write-ahead log into the database file from a worker thread, on its own
 * connection. SQLite's automatic checkpoint runs inside whichever commit crosses 1,000 WAL
 * pages, on the hub's event loop, and with its fsync it stalled the hub for 60+ ms after
 * large writes (a device removed with thousands of open requests, a sweep backlog). Here a
 * PASSIVE checkpoint (it never waits for the hub's writers or readers) runs every interval
 * while the log has pages to copy; the hub's own connection never checkpoints.
 */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

const { path, intervalMs } = workerData as { path: string; intervalMs: number };
const db = new Database(path, { fileMustExist: true });
// Waits inside the worker are harmless: the hub's event loop is elsewhere.
db.pragma('busy_timeout = 1000');
db.pragma('wal_autocheckpoint = 0');

const checkpoint = (): void => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (error) {
    parentPort?.postMessage({ error: String(error) });
  }
};
const timer = setInterval(checkpoint, intervalMs);
parentPort?.on('message', (message: string) => {
  if (message === 'stop') {
    clearInterval(timer);
    checkpoint();
    db.close();
    parentPort?.close();
  }
});
