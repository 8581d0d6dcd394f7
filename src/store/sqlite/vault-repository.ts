/**
 * The vault's tables in the embedded engine (migration 4). Every auditable change runs in
 * SqliteStore.withAudit, so the change and its audit record commit together; a locked
 * database is retried asynchronously like the Store's own methods.
 */
import type { AuditEntry } from '../store.js';
import type {
  AccessKind,
  DeliveryAck,
  DeliveryRecord,
  DeliveryRemoval,
  ReadCount,
  SealedValue,
  SecretAccessRule,
  SecretRecord,
  SecretVersionRecord,
  VaultStore,
} from '../vault-store.js';
import { retryWhileBusy, type Row, type SqliteStore } from './sqlite-store.js';

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function toSecret(r: Row): SecretRecord {
  return { name: String(r['name']), currentVersion: num(r['current_version']), createdAt: num(r['created_at']), updatedAt: num(r['updated_at']) };
}

function toVersion(r: Row): SecretVersionRecord {
  return {
    name: String(r['name']),
    version: num(r['version']),
    createdAt: num(r['created_at']),
    createdBy: String(r['created_by']),
    size: num(r['size']),
    deletedAt: numOrNull(r['deleted_at']),
    destroyedAt: numOrNull(r['destroyed_at']),
  };
}

function toSealed(r: Row): SealedValue | null {
  if (r['ciphertext'] === null || r['ciphertext'] === undefined) return null;
  return { kekId: String(r['kek_id']), wrappedKey: r['wrapped_key'] as Buffer, ciphertext: r['ciphertext'] as Buffer };
}

function toRule(r: Row): SecretAccessRule {
  return { name: String(r['name']), kind: String(r['kind']) as AccessKind, subject: String(r['subject']), createdAt: num(r['created_at']), createdBy: String(r['created_by']) };
}

function toDelivery(r: Row): DeliveryRecord {
  return {
    edgeId: String(r['edge_id']),
    name: String(r['name']),
    version: num(r['version']),
    deliveredAt: num(r['delivered_at']),
    lastReadAt: numOrNull(r['last_read_at']),
    reads: num(r['reads']),
  };
}

const VERSION_COLUMNS = 'name, version, created_at, created_by, size, deleted_at, destroyed_at';

class Refused extends Error {}

export class SqliteVaultRepository implements VaultStore {
  constructor(private readonly store: SqliteStore) {}

  private get db(): SqliteStore['database'] {
    return this.store.database;
  }

  /** Runs a change with its audit record; false when `fn` refused (no row to change). */
  private change(audit: AuditEntry | undefined, fn: () => boolean | void): Promise<boolean> {
    return retryWhileBusy(() => {
      try {
        this.store.withAudit(audit, () => {
          if (fn() === false) throw new Refused();
        });
        return true;
      } catch (error) {
        if (error instanceof Refused) return false;
        throw error;
      }
    });
  }

  private read<T>(fn: () => T): Promise<T> {
    return retryWhileBusy(fn);
  }

  countSealed(): Promise<number> {
    return this.read(() => num((this.db.prepare('SELECT COUNT(*) AS n FROM secret_versions WHERE ciphertext IS NOT NULL').get() as Row)['n']));
  }

  getSecret(name: string): Promise<SecretRecord | undefined> {
    return this.read(() => {
      const row = this.db.prepare('SELECT * FROM secrets WHERE name = ?').get(name) as Row | undefined;
      return row ? toSecret(row) : undefined;
    });
  }

  listSecrets(): Promise<(SecretRecord & { versions: number; latest: SecretVersionRecord | undefined; rules: number })[]> {
    return this.read(() => {
      const rows = this.db
        .prepare(
          `SELECT s.*, (SELECT COUNT(*) FROM secret_versions v WHERE v.name = s.name) AS versions,
                  (SELECT COUNT(*) FROM secret_access a WHERE a.name = s.name) AS rules
           FROM secrets s ORDER BY s.name`,
        )
        .all() as Row[];
      const latest = this.db.prepare(`SELECT ${VERSION_COLUMNS} FROM secret_versions WHERE name = ? AND version = ?`);
      return rows.map((r) => {
        const secret = toSecret(r);
        const row = latest.get(secret.name, secret.currentVersion) as Row | undefined;
        return { ...secret, versions: num(r['versions']), rules: num(r['rules']), latest: row ? toVersion(row) : undefined };
      });
    });
  }

  listVersions(name: string): Promise<SecretVersionRecord[]> {
    return this.read(() => (this.db.prepare(`SELECT ${VERSION_COLUMNS} FROM secret_versions WHERE name = ? ORDER BY version DESC`).all(name) as Row[]).map(toVersion));
  }

  getVersion(name: string, version: number): Promise<(SecretVersionRecord & { sealed: SealedValue | null }) | undefined> {
    return this.read(() => {
      const row = this.db.prepare('SELECT * FROM secret_versions WHERE name = ? AND version = ?').get(name, version) as Row | undefined;
      return row ? { ...toVersion(row), sealed: toSealed(row) } : undefined;
    });
  }

  async putVersion(
    record: Omit<SecretVersionRecord, 'deletedAt' | 'destroyedAt'>,
    sealed: SealedValue,
    expectedCurrent: number,
    maxVersions: number,
    audit: AuditEntry,
  ): Promise<{ written: boolean; pruned: number[] }> {
    let pruned: number[] = [];
    const written = await this.change(audit, () => {
      const existing = this.db.prepare('SELECT current_version FROM secrets WHERE name = ?').get(record.name) as Row | undefined;
      const current = existing ? num(existing['current_version']) : 0;
      if (current !== expectedCurrent || record.version !== expectedCurrent + 1) return false;
      if (existing) {
        this.db.prepare('UPDATE secrets SET current_version = ?, updated_at = ? WHERE name = ?').run(record.version, record.createdAt, record.name);
      } else {
        this.db.prepare('INSERT INTO secrets (name, current_version, created_at, updated_at) VALUES (?, ?, ?, ?)').run(record.name, record.version, record.createdAt, record.createdAt);
      }
      this.db
        .prepare('INSERT INTO secret_versions (name, version, created_at, created_by, size, kek_id, wrapped_key, ciphertext) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(record.name, record.version, record.createdAt, record.createdBy, record.size, sealed.kekId, sealed.wrappedKey, sealed.ciphertext);
      // Versions beyond the limit are gone for good, oldest first (never the new one).
      pruned = (
        this.db
          .prepare('DELETE FROM secret_versions WHERE name = ? AND version <= ? RETURNING version')
          .all(record.name, record.version - maxVersions) as Row[]
      ).map((r) => num(r['version']));
      return true;
    });
    return { written, pruned: pruned.sort((a, b) => a - b) };
  }

  setDeleted(name: string, version: number, deletedAt: number | null, audit: AuditEntry): Promise<boolean> {
    return this.change(audit, () => {
      const sql = deletedAt === null
        ? 'UPDATE secret_versions SET deleted_at = NULL WHERE name = ? AND version = ? AND deleted_at IS NOT NULL AND destroyed_at IS NULL'
        : 'UPDATE secret_versions SET deleted_at = ? WHERE name = ? AND version = ? AND deleted_at IS NULL AND destroyed_at IS NULL';
      const result = deletedAt === null ? this.db.prepare(sql).run(name, version) : this.db.prepare(sql).run(deletedAt, name, version);
      return result.changes === 1;
    });
  }

  destroyVersion(name: string, version: number, at: number, audit: AuditEntry): Promise<boolean> {
    return this.change(audit, () => {
      const result = this.db
        .prepare('UPDATE secret_versions SET kek_id = NULL, wrapped_key = NULL, ciphertext = NULL, destroyed_at = ? WHERE name = ? AND version = ? AND destroyed_at IS NULL')
        .run(at, name, version);
      return result.changes === 1;
    });
  }

  deliverableVersions(names?: readonly string[]): Promise<Map<string, number>> {
    return this.read(() => {
      const base = `SELECT s.name, s.current_version FROM secrets s JOIN secret_versions v ON v.name = s.name AND v.version = s.current_version
                    WHERE v.deleted_at IS NULL AND v.destroyed_at IS NULL`;
      const rows = names
        ? names.flatMap((n) => this.db.prepare(`${base} AND s.name = ?`).all(n) as Row[])
        : (this.db.prepare(base).all() as Row[]);
      return new Map(rows.map((r) => [String(r['name']), num(r['current_version'])]));
    });
  }

  addRule(rule: SecretAccessRule, audit: AuditEntry): Promise<boolean> {
    return this.change(audit, () => {
      const result = this.db
        .prepare('INSERT INTO secret_access (name, kind, subject, created_at, created_by) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING')
        .run(rule.name, rule.kind, rule.subject, rule.createdAt, rule.createdBy);
      return result.changes === 1;
    });
  }

  removeRule(name: string, kind: AccessKind, subject: string, audit: AuditEntry): Promise<boolean> {
    return this.change(audit, () => this.db.prepare('DELETE FROM secret_access WHERE name = ? AND kind = ? AND subject = ?').run(name, kind, subject).changes === 1);
  }

  listRules(name?: string): Promise<SecretAccessRule[]> {
    return this.read(() =>
      (name === undefined
        ? (this.db.prepare('SELECT * FROM secret_access ORDER BY name, kind, subject').all() as Row[])
        : (this.db.prepare('SELECT * FROM secret_access WHERE name = ? ORDER BY kind, subject').all(name) as Row[])
      ).map(toRule),
    );
  }

  deliveriesOfEdge(edgeId: string): Promise<DeliveryRecord[]> {
    return this.read(() => (this.db.prepare('SELECT * FROM secret_deliveries WHERE edge_id = ? ORDER BY name').all(edgeId) as Row[]).map(toDelivery));
  }

  deliveriesOfSecret(name: string): Promise<DeliveryRecord[]> {
    return this.read(() => (this.db.prepare('SELECT * FROM secret_deliveries WHERE name = ?').all(name) as Row[]).map(toDelivery));
  }

  async appendAuditBatch(entries: AuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    // Savepoints inside one transaction: one commit for the whole batch.
    await this.change(undefined, () => {
      for (const entry of entries) this.store.withAudit(entry, () => undefined);
    });
  }

  async recordAcks(acks: readonly DeliveryAck[]): Promise<void> {
    if (acks.length === 0) return;
    await this.change(undefined, () => {
      const upsert = this.db.prepare(
        `INSERT INTO secret_deliveries (edge_id, name, version, delivered_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (edge_id, name) DO UPDATE SET version = excluded.version, delivered_at = excluded.delivered_at`,
      );
      // Each ack and its record in a savepoint of the one transaction.
      for (const ack of acks) this.store.withAudit(ack.audit, () => upsert.run(ack.edgeId, ack.name, ack.version, ack.at));
    });
  }

  async recordRemovals(removals: readonly DeliveryRemoval[]): Promise<void> {
    if (removals.length === 0) return;
    await this.change(undefined, () => {
      const remove = this.db.prepare('DELETE FROM secret_deliveries WHERE edge_id = ? AND name = ?');
      for (const removal of removals) this.store.withAudit(removal.audit, () => remove.run(removal.edgeId, removal.name));
    });
  }

  async reconcileHoldings(edgeId: string, held: readonly { name: string; version: number }[], at: number): Promise<void> {
    await this.change(undefined, () => {
      const reported = new Map(held.map((h) => [h.name, h.version]));
      for (const row of this.db.prepare('SELECT name, version FROM secret_deliveries WHERE edge_id = ?').all(edgeId) as Row[]) {
        const name = String(row['name']);
        const version = reported.get(name);
        if (version === undefined) this.db.prepare('DELETE FROM secret_deliveries WHERE edge_id = ? AND name = ?').run(edgeId, name);
        else if (version !== num(row['version'])) this.db.prepare('UPDATE secret_deliveries SET version = ?, delivered_at = ? WHERE edge_id = ? AND name = ?').run(version, at, edgeId, name);
        reported.delete(name);
      }
      // Held but unknown here (a database restored from an older backup): the edge's word stands.
      for (const [name, version] of reported) {
        this.db.prepare('INSERT INTO secret_deliveries (edge_id, name, version, delivered_at) VALUES (?, ?, ?, ?)').run(edgeId, name, version, at);
      }
    });
  }

  async recordReads(edgeId: string, reads: readonly ReadCount[], audit: AuditEntry): Promise<void> {
    await this.change(audit, () => {
      const update = this.db.prepare(
        'UPDATE secret_deliveries SET reads = reads + ?, last_read_at = MAX(COALESCE(last_read_at, 0), ?) WHERE edge_id = ? AND name = ?',
      );
      for (const r of reads) update.run(r.count, r.lastReadAt, edgeId, r.name);
    });
  }

  sealedNotWrappedBy(kekId: string, limit: number): Promise<{ name: string; version: number; sealed: SealedValue }[]> {
    return this.read(() =>
      (this.db.prepare('SELECT * FROM secret_versions WHERE ciphertext IS NOT NULL AND kek_id != ? LIMIT ?').all(kekId, limit) as Row[]).map((r) => ({
        name: String(r['name']),
        version: num(r['version']),
        sealed: toSealed(r) as SealedValue,
      })),
    );
  }

  async rewrap(updates: readonly { name: string; version: number; sealed: SealedValue }[]): Promise<number> {
    let changed = 0;
    await this.change(undefined, () => {
      const update = this.db.prepare('UPDATE secret_versions SET kek_id = ?, wrapped_key = ? WHERE name = ? AND version = ? AND ciphertext = ?');
      for (const u of updates) changed += update.run(u.sealed.kekId, u.sealed.wrappedKey, u.name, u.version, u.sealed.ciphertext).changes;
    });
    return changed;
  }

  kekIdsInUse(): Promise<string[]> {
    return this.read(() => (this.db.prepare('SELECT DISTINCT kek_id FROM secret_versions WHERE kek_id IS NOT NULL').all() as Row[]).map((r) => String(r['kek_id'])));
  }
}
