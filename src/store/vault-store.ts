/**
 * The vault's persistence, behind its own interface so another engine (PostgreSQL) can
 * implement it beside the Store. Values never appear here in clear: a version holds its
 * ciphertext and its data key wrapped by the key-encryption key (src/vault/envelope.ts).
 *
 * As in the Store, every auditable change takes its audit entry and the engine writes both
 * in one transaction.
 */
import type { AuditEntry } from './store.js';

export interface SealedValue {
  /** The key-encryption key that wrapped the data key. */
  kekId: string;
  wrappedKey: Buffer;
  /** nonce || AES-256-GCM ciphertext || tag */
  ciphertext: Buffer;
}

export interface SecretRecord {
  name: string;
  /** The newest version ever written (check-and-set compares with it; 0 never happens). */
  currentVersion: number;
  createdAt: number;
  updatedAt: number;
}

export interface SecretVersionRecord {
  name: string;
  version: number;
  createdAt: number;
  createdBy: string;
  /** Bytes of the value */
  size: number;
  deletedAt: number | null;
  destroyedAt: number | null;
}

export type AccessKind = 'edge' | 'device' | 'tag';

export interface SecretAccessRule {
  name: string;
  kind: AccessKind;
  /** edge id, device name, or "key=value" */
  subject: string;
  createdAt: number;
  createdBy: string;
}

/** What an edge holds: the version it acknowledged, and when an app last read it there. */
export interface DeliveryRecord {
  edgeId: string;
  name: string;
  version: number;
  deliveredAt: number;
  lastReadAt: number | null;
  reads: number;
}

export interface DeliveryAck {
  edgeId: string;
  name: string;
  version: number;
  at: number;
  audit: AuditEntry;
}

export interface DeliveryRemoval {
  edgeId: string;
  name: string;
  audit: AuditEntry;
}

export interface ReadCount {
  name: string;
  version: number;
  count: number;
  lastReadAt: number;
}

export interface VaultStore {
  /** Versions that still hold a sealed value (0 means no key-encryption key is needed yet). */
  countSealed(): Promise<number>;
  getSecret(name: string): Promise<SecretRecord | undefined>;
  listSecrets(): Promise<(SecretRecord & { versions: number; latest: SecretVersionRecord | undefined; rules: number })[]>;
  listVersions(name: string): Promise<SecretVersionRecord[]>;
  getVersion(name: string, version: number): Promise<(SecretVersionRecord & { sealed: SealedValue | null }) | undefined>;
  /**
   * Writes version `expectedCurrent + 1` (expectedCurrent 0 creates the secret) if and only
   * if the secret's current version is still `expectedCurrent`; then drops the oldest
   * versions beyond `maxVersions`. Returns false when another write got there first.
   */
  putVersion(
    record: Omit<SecretVersionRecord, 'deletedAt' | 'destroyedAt'>,
    sealed: SealedValue,
    expectedCurrent: number,
    maxVersions: number,
    audit: AuditEntry,
  ): Promise<{ written: boolean; pruned: number[] }>;
  /** Soft delete (deletedAt = a time) or undelete (null). False when there is no such live version. */
  setDeleted(name: string, version: number, deletedAt: number | null, audit: AuditEntry): Promise<boolean>;
  /** Erases the sealed value for good; the version's metadata stays. False when no such version. */
  destroyVersion(name: string, version: number, at: number, audit: AuditEntry): Promise<boolean>;
  /**
   * The version each secret's edges should hold: its current version when that one is
   * neither deleted nor destroyed. Secrets without a live current version are absent.
   */
  deliverableVersions(names?: readonly string[]): Promise<Map<string, number>>;

  // access rules
  addRule(rule: SecretAccessRule, audit: AuditEntry): Promise<boolean>;
  removeRule(name: string, kind: AccessKind, subject: string, audit: AuditEntry): Promise<boolean>;
  listRules(name?: string): Promise<SecretAccessRule[]>;

  // deliveries (what each edge holds)
  deliveriesOfEdge(edgeId: string): Promise<DeliveryRecord[]>;
  deliveriesOfSecret(name: string): Promise<DeliveryRecord[]>;
  /** Audit records of deliveries about to be sent, in one transaction (no record, no delivery). */
  appendAuditBatch(entries: AuditEntry[]): Promise<void>;
  /** Edges acknowledged storing these versions: each with its audit record, all in one transaction. */
  recordAcks(acks: readonly DeliveryAck[]): Promise<void>;
  /** Edges confirmed they removed these secrets: each with its audit record, all in one transaction. */
  recordRemovals(removals: readonly DeliveryRemoval[]): Promise<void>;
  /**
   * Makes the stored holdings of an edge match what it reported at link-up (its cache may
   * have been lost or refused as tampered): entries it no longer holds are dropped, versions
   * corrected. Times of unchanged entries are kept.
   */
  reconcileHoldings(edgeId: string, held: readonly { name: string; version: number }[], at: number): Promise<void>;
  recordReads(edgeId: string, reads: readonly ReadCount[], audit: AuditEntry): Promise<void>;

  // rekey
  /** Sealed versions whose data key is wrapped by a key other than `kekId`. */
  sealedNotWrappedBy(kekId: string, limit: number): Promise<{ name: string; version: number; sealed: SealedValue }[]>;
  /** Replaces wrapped data keys, only where the version still holds the ciphertext given. */
  rewrap(updates: readonly { name: string; version: number; sealed: SealedValue }[]): Promise<number>;
  kekIdsInUse(): Promise<string[]>;
}
