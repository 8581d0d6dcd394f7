/**
 * The audit hash chain. Each record's hash covers its sequence number, content and the
 * previous record's hash, so changing, removing or inserting a record breaks the chain at
 * that point. Engines call `sealAuditRecord` inside the same transaction as the insert.
 */
import { createHash } from 'node:crypto';
import type { AuditRecord } from './store.js';

export const GENESIS_HASH = '0'.repeat(64);

/**
 * Deterministic JSON: object keys sorted at every depth (UTF-16 code unit order), undefined
 * members left out, no whitespace. Written as loops rather than entries/filter/map/join: it
 * runs for every audit record written (two per stream) and read back by `audit verify`, and
 * its output must never change (it is what the chain's hashes cover).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      // A hole stays empty, as Array.prototype.join leaves it.
      if (i in value) out += canonicalJson(value[i]);
    }
    return out + ']';
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let out = '{';
  for (const key of keys) {
    const member = record[key];
    if (member === undefined) continue;
    if (out.length > 1) out += ',';
    out += JSON.stringify(key) + ':' + canonicalJson(member);
  }
  return out + '}';
}

export function hashAuditRecord(record: Omit<AuditRecord, 'hash'>): string {
  const canonical = canonicalJson({
    seq: record.seq,
    ts: record.ts,
    actor: record.actor,
    action: record.action,
    device: record.device,
    details: record.details,
    prevHash: record.prevHash,
  });
  return createHash('sha256').update(canonical).digest('hex');
}

export function sealAuditRecord(record: Omit<AuditRecord, 'hash'>): AuditRecord {
  return { ...record, hash: hashAuditRecord(record) };
}

export interface ChainProblem {
  seq: number;
  problem: 'changed' | 'removed-before' | 'inserted-or-reordered';
  message: string;
}

/**
 * Incremental verifier: feed records in seq order; returns the first problem found.
 * - a record whose own hash does not match its content was changed;
 * - a gap in seq means records were removed before this one;
 * - a prevHash that does not match the previous record's hash means a record was inserted
 *   (or the previous one removed and the chain re-stitched).
 */
export class AuditChainVerifier {
  private lastSeq = 0;
  private lastHash = GENESIS_HASH;
  count = 0;

  get headHash(): string {
    return this.lastHash;
  }

  feed(record: AuditRecord): ChainProblem | undefined {
    if (hashAuditRecord(record) !== record.hash) {
      return { seq: record.seq, problem: 'changed', message: `record ${record.seq} was changed: its hash does not match its content` };
    }
    if (record.seq !== this.lastSeq + 1) {
      return {
        seq: record.seq,
        problem: 'removed-before',
        message: `record ${record.seq} follows ${this.lastSeq}: records ${this.lastSeq + 1}..${record.seq - 1} were removed`,
      };
    }
    if (record.prevHash !== this.lastHash) {
      return {
        seq: record.seq,
        problem: 'inserted-or-reordered',
        message: `record ${record.seq} does not link to record ${this.lastSeq}: a record was inserted, removed or re-sealed here`,
      };
    }
    this.lastSeq = record.seq;
    this.lastHash = record.hash;
    this.count++;
    return undefined;
  }
}
