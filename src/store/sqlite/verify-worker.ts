/**
 * Verifies the audit chain in a worker thread, on its own read-only connection to the
 * database file (WAL lets it read while the hub writes), so that checking a million records
 * never stalls the hub's event loop.
 */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import { AuditChainVerifier } from '../audit-chain.js';
import { toAudit, type Row } from './sqlite-store.js';

const { path } = workerData as { path: string };
const db = new Database(path, { readonly: true, fileMustExist: true });
try {
  const verifier = new AuditChainVerifier();
  let failure: { seq: number; problem: string; message: string } | undefined;
  for (const row of db.prepare('SELECT * FROM audit ORDER BY seq').iterate() as Iterable<Row>) {
    const problem = verifier.feed(toAudit(row));
    if (problem) {
      failure = problem;
      break;
    }
  }
  parentPort?.postMessage(failure ? { ok: false, checked: verifier.count, firstBadSeq: failure.seq, problem: failure.problem, message: failure.message } : { ok: true, checked: verifier.count, headHash: verifier.headHash });
} finally {
  db.close();
}
