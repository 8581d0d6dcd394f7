/**
 * Embedded engine: one SQLite file in WAL mode through better-sqlite3. Calls are
 * synchronous underneath; the async interface keeps the door open for networked engines.
 */
import Database from 'better-sqlite3';
import { chmodSync, existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { AuditChainVerifier, GENESIS_HASH, sealAuditRecord } from '../audit-chain.js';
import type {
  AccessQuery,
  AccessRequestRecord,
  AccessStatus,
  AuditEntry,
  AuditQuery,
  AuditRecord,
  ChainReport,
  DeviceRecord,
  EdgeRecord,
  EnrollmentRecord,
  MembershipChange,
  PrincipalRecord,
  Role,
  SessionRecord,
  Store,
} from '../store.js';
import { MIGRATIONS } from './migrations.js';

export type Row = Record<string, unknown>;

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

function toDevice(r: Row): DeviceRecord {
  return {
    name: String(r['name']),
    tags: JSON.parse(String(r['tags'])) as Record<string, string>,
    enabled: r['enabled'] === 1,
    publicKey: strOrNull(r['public_key']),
    createdAt: num(r['created_at']),
    enrolledAt: numOrNull(r['enrolled_at']),
    lastSeenAt: numOrNull(r['last_seen_at']),
    agentVersion: strOrNull(r['agent_version']),
    remoteAddress: strOrNull(r['remote_address']),
    edgeId: strOrNull(r['edge_id']),
  };
}

function toEdge(r: Row): EdgeRecord {
  return {
    id: String(r['id']),
    name: String(r['name']),
    signingKey: String(r['signing_key']),
    encryptionKey: String(r['encryption_key']),
    enabled: r['enabled'] === 1,
    hostname: strOrNull(r['hostname']),
    createdAt: num(r['created_at']),
    lastSeenAt: numOrNull(r['last_seen_at']),
    agentVersion: strOrNull(r['agent_version']),
    remoteAddress: strOrNull(r['remote_address']),
  };
}

function toEnrollment(r: Row): EnrollmentRecord {
  return {
    id: String(r['id']),
    device: String(r['device']),
    secretHash: String(r['secret_hash']),
    createdAt: num(r['created_at']),
    expiresAt: num(r['expires_at']),
    usedAt: numOrNull(r['used_at']),
    replacedAt: numOrNull(r['replaced_at']),
  };
}

function toPrincipal(r: Row): PrincipalRecord {
  return {
    name: String(r['name']),
    role: String(r['role']) as Role,
    createdAt: num(r['created_at']),
    tokenId: String(r['token_id']),
    tokenHash: String(r['token_hash']),
    tokenCreatedAt: num(r['token_created_at']),
  };
}

function toAccess(r: Row): AccessRequestRecord {
  return {
    id: String(r['id']),
    principal: String(r['principal']),
    device: String(r['device']),
    durationMs: num(r['duration_ms']),
    reason: String(r['reason']),
    status: String(r['status']) as AccessStatus,
    createdAt: num(r['created_at']),
    requestExpiresAt: num(r['request_expires_at']),
    reviewedBy: strOrNull(r['reviewed_by']),
    reviewedAt: numOrNull(r['reviewed_at']),
    reviewNote: strOrNull(r['review_note']),
    autoApproved: r['auto_approved'] === 1,
    grantStartsAt: numOrNull(r['grant_starts_at']),
    grantEndsAt: numOrNull(r['grant_ends_at']),
    endedAt: numOrNull(r['ended_at']),
  };
}

function toSession(r: Row): SessionRecord {
  return {
    id: String(r['id']),
    principal: String(r['principal']),
    device: String(r['device']),
    target: strOrNull(r['target']),
    clientAddress: String(r['client_address']),
    grantId: strOrNull(r['grant_id']),
    startedAt: num(r['started_at']),
    endedAt: numOrNull(r['ended_at']),
    bytesToDevice: num(r['bytes_to_device']),
    bytesFromDevice: num(r['bytes_from_device']),
    closeReason: strOrNull(r['close_reason']),
  };
}

export function toAudit(r: Row): AuditRecord {
  return {
    seq: num(r['seq']),
    ts: num(r['ts']),
    actor: String(r['actor']),
    action: String(r['action']),
    device: strOrNull(r['device']),
    details: JSON.parse(String(r['details'])) as Record<string, unknown>,
    prevHash: String(r['prev_hash']),
    hash: String(r['hash']),
  };
}

const ACCESS_COLUMNS: Record<keyof AccessRequestRecord, string> = {
  id: 'id',
  principal: 'principal',
  device: 'device',
  durationMs: 'duration_ms',
  reason: 'reason',
  status: 'status',
  createdAt: 'created_at',
  requestExpiresAt: 'request_expires_at',
  reviewedBy: 'reviewed_by',
  reviewedAt: 'reviewed_at',
  reviewNote: 'review_note',
  autoApproved: 'auto_approved',
  grantStartsAt: 'grant_starts_at',
  grantEndsAt: 'grant_ends_at',
  endedAt: 'ended_at',
};

export interface SqliteStoreOptions {
  /** Path of the database file, or ':memory:' */
  path: string;
  /** Injected clock for audit timestamps */
  now?: () => number;
}

/** The longest SQLite may block the event loop waiting for a lock, per call. */
const BUSY_WAIT_IN_CALL_MS = 20;
/** How long the store keeps retrying a locked database before it refuses the action. */
const BUSY_GIVE_UP_MS = 5000;
/** A deferred write (a stream's close record) waits at most this long for a commit to ride with. */
const DEFERRED_COMMIT_MS = 10;
/** How often the checkpoint worker copies the write-ahead log into the database file. */
const CHECKPOINT_INTERVAL_MS = 1000;
/** Requests one removal transaction revokes (with their audit records): about 10 ms of work. */
const REVOKE_CHUNK = 100;
/** Methods that are not retried on a locked database (they do not write, or run elsewhere). */
const NOT_RETRIED = new Set<string>(['constructor', 'close', 'verifyAudit', 'withAudit']);

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || code === 'SQLITE_BUSY_SNAPSHOT';
}

function busyError(): Error {
  return Object.assign(new Error('the database is locked by another process'), { code: 'SQLITE_BUSY' });
}

/** Runs `fn`; while the database is locked, retries with backoff (yielding) up to BUSY_GIVE_UP_MS. Per-area repositories use it too. */
export async function retryWhileBusy<T>(fn: () => T | Promise<T>): Promise<T> {
  const started = Date.now();
  let delay = 5;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (!isBusy(error) || Date.now() - started >= BUSY_GIVE_UP_MS) throw error;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 200);
    }
  }
}

export class SqliteStore implements Store {
  readonly engine = 'sqlite';
  private readonly db: Database.Database;
  private readonly now: () => number;
  private readonly path: string;
  private readonly statements = new Map<string, Database.Statement>();
  /** Writes gathered for one group commit (see `grouped`). */
  private group: { run: () => void; resolve: () => void; reject: (error: unknown) => void; since?: number }[] = [];
  private groupScheduled = false;
  private deferredTimer: NodeJS.Timeout | undefined;
  private readonly membershipListeners: ((change: MembershipChange) => void)[] = [];
  private checkpointer: Worker | undefined;

  constructor(options: SqliteStoreOptions) {
    const isNew = options.path !== ':memory:' && !existsSync(options.path);
    this.db = new Database(options.path);
    this.path = options.path;
    if (isNew) chmodSync(options.path, 0o600);
    this.now = options.now ?? Date.now;
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a committed transaction survives a process crash; only an OS
    // crash may lose the last transactions, never corrupt the file.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    // Another process holding the database (a backup, an operator's sqlite3 shell) must not
    // freeze the hub: SQLite waits at most this long inside a call, and the store retries
    // asynchronously (see retryWhileBusy) so the event loop keeps serving meanwhile.
    this.db.pragma(`busy_timeout = ${BUSY_WAIT_IN_CALL_MS}`);
    for (const name of Object.getOwnPropertyNames(SqliteStore.prototype) as (keyof SqliteStore)[]) {
      const descriptor = Object.getOwnPropertyDescriptor(SqliteStore.prototype, name);
      // Only the public async methods: the synchronous helpers run inside transactions.
      if (NOT_RETRIED.has(name) || typeof descriptor?.value !== 'function' || descriptor.value.constructor.name !== 'AsyncFunction') continue;
      const method = (descriptor.value as (...args: unknown[]) => unknown).bind(this);
      Object.defineProperty(this, name, { value: (...args: unknown[]) => retryWhileBusy(() => method(...args)) });
    }
    this.migrate();
    this.startCheckpoints();
    // Without table statistics SQLite may scan the whole audit log for a time-range query;
    // gather them at open (well under a second at a million records) and on maintain().
    this.db.pragma('optimize = 0x10002');
  }

  /**
   * WAL checkpoints run in a worker thread (see checkpoint-worker.ts), not inside the hub's
   * commits. Should the worker fail, the connection goes back to SQLite's own automatic
   * checkpoints: stalls are better than a write-ahead log that grows without end.
   */
  private startCheckpoints(): void {
    if (this.path === ':memory:') return;
    this.db.pragma('wal_autocheckpoint = 0');
    const worker = new Worker(new URL('./checkpoint-worker.js', import.meta.url), { workerData: { path: this.path, intervalMs: CHECKPOINT_INTERVAL_MS } });
    worker.unref();
    const fallBack = (): void => {
      if (this.db.open) this.db.pragma('wal_autocheckpoint = 1000');
    };
    worker.on('message', (message: { error?: string }) => message.error && fallBack());
    worker.on('error', fallBack);
    this.checkpointer = worker;
  }

  /** Periodic upkeep: refresh planner statistics where they went stale. */
  async maintain(): Promise<void> {
    this.db.pragma('optimize');
  }

  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new Error(
        `the database schema (version ${current}) is newer than this drawbridge (version ${MIGRATIONS.length}); upgrade drawbridge`,
      );
    }
    for (let version = current; version < MIGRATIONS.length; version++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[version] as string);
        this.db.pragma(`user_version = ${version + 1}`);
      })();
    }
  }

  async close(): Promise<void> {
    this.commitGroup();
    const worker = this.checkpointer;
    this.checkpointer = undefined;
    if (worker) {
      // Held while it finishes its last checkpoint (it is unref'd while the hub runs).
      worker.ref();
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      worker.postMessage('stop');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 2000)))]);
      clearTimeout(timer);
      await worker.terminate();
    }
    if (this.db.open) this.db.close();
  }

  /**
   * Group commit for the hot path (stream open and close records, last-seen facts): writes
   * requested in one round of I/O share one transaction, so a burst of streams costs one WAL
   * commit instead of one each. Each caller's promise settles only once its write is
   * committed, so "no audit record, no stream" still holds. If the group fails, its writes
   * are retried one by one, so one bad write fails only itself.
   *
   * A `deferred` write (a stream's close record, last-seen times: nothing waits on them)
   * rides along with the next prompt commit, or commits on its own within
   * DEFERRED_COMMIT_MS: under a stream load a close costs no transaction of its own, and a
   * stream's open is never delayed by one. Reads that could show them (sessions, audit)
   * commit what is pending first, so they never miss a write that was already made.
   */
  private grouped(run: () => void, deferred = false): Promise<void> {
    return new Promise((resolve, reject) => {
      this.group.push({ run, resolve, reject });
      if (this.groupScheduled) return;
      if (!deferred) {
        this.groupScheduled = true;
        setImmediate(() => this.commitGroup());
      } else if (!this.deferredTimer) {
        this.deferredTimer = setTimeout(() => this.commitGroup(), DEFERRED_COMMIT_MS);
      }
    });
  }

  /** Commits pending deferred writes now (before a read that could show them). */
  private commitPending(): void {
    if (this.group.length > 0 && !this.groupScheduled) this.commitGroup();
  }

  private commitGroup(): void {
    this.groupScheduled = false;
    if (this.deferredTimer) {
      clearTimeout(this.deferredTimer);
      this.deferredTimer = undefined;
    }
    const group = this.group;
    if (group.length === 0) return;
    this.group = [];
    try {
      this.db.transaction(() => {
        for (const write of group) write.run();
      }).immediate();
      for (const write of group) write.resolve();
    } catch (error) {
      if (isBusy(error) && this.db.open) {
        // Locked by someone else: try the whole group again shortly, up to the usual bound.
        const first = group[0] as (typeof group)[number];
        first.since ??= Date.now();
        if (Date.now() - first.since < BUSY_GIVE_UP_MS) {
          this.group = [...group, ...this.group];
          if (!this.groupScheduled) {
            this.groupScheduled = true;
            setTimeout(() => this.commitGroup(), 20);
          }
          return;
        }
        for (const write of group) write.reject(busyError());
        return;
      }
      for (const write of group) {
        try {
          this.db.transaction(write.run).immediate();
          write.resolve();
        } catch (error) {
          write.reject(error);
        }
      }
    }
  }

  /**
   * Runs `fn` and appends `audit` in one immediate transaction: the action and its record
   * land together or not at all. Public for this engine's per-area repositories (vault,
   * monitoring), which keep their SQL in files of their own.
   */
  withAudit<T>(audit: AuditEntry | undefined, fn: () => T): T {
    return this.db.transaction(() => {
      const result = fn();
      if (audit) this.appendAuditSync(audit);
      return result;
    }).immediate();
  }

  /**
   * Prepared once, reused: compiling the SQL costs more than running it, and these run
   * for every stream (open and close) and every authenticated request.
   */
  private cached(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  private appendAuditSync(entry: AuditEntry): AuditRecord {
    const last = this.cached('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1').get() as Row | undefined;
    const record = sealAuditRecord({
      seq: last ? num(last['seq']) + 1 : 1,
      ts: this.now(),
      actor: entry.actor,
      action: entry.action,
      device: entry.device ?? null,
      details: entry.details ?? {},
      prevHash: last ? String(last['hash']) : GENESIS_HASH,
    });
    this.cached(
      'INSERT INTO audit (seq, ts, actor, action, device, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    )
      .run(record.seq, record.ts, record.actor, record.action, record.device, JSON.stringify(record.details), record.prevHash, record.hash);
    return record;
  }

  onMembershipChange(listener: (change: MembershipChange) => void): void {
    this.membershipListeners.push(listener);
  }

  /** Tells the listeners about a committed change; a listener's failure is its own. */
  private announce(cause: MembershipChange['cause'], edgeIds: (string | null | undefined)[]): void {
    const ids = [...new Set(edgeIds.filter((id): id is string => typeof id === 'string'))];
    if (ids.length === 0) return;
    for (const listener of this.membershipListeners) {
      try {
        listener({ cause, edgeIds: ids });
      } catch {
        // A listener that throws must not undo or fail a change that is already committed.
      }
    }
  }

  private edgeOfDevice(name: string): string | null {
    const row = this.cached('SELECT edge_id FROM devices WHERE name = ?').get(name) as Row | undefined;
    return row ? ((row['edge_id'] as string | null) ?? null) : null;
  }

  // ---- devices ----

  async createDevice(device: DeviceRecord, enrollment: EnrollmentRecord, audit: AuditEntry): Promise<void> {
    this.withAudit(audit, () => {
      this.db
        .prepare(
          'INSERT INTO devices (name, tags, enabled, public_key, created_at, enrolled_at, last_seen_at, agent_version, remote_address, edge_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(device.name, JSON.stringify(device.tags), device.enabled ? 1 : 0, device.publicKey, device.createdAt, device.enrolledAt, device.lastSeenAt, device.agentVersion, device.remoteAddress, device.edgeId);
      this.insertEnrollment(enrollment);
    });
  }

  private insertEnrollment(e: EnrollmentRecord): void {
    this.db
      .prepare('INSERT INTO enrollments (id, device, secret_hash, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(e.id, e.device, e.secretHash, e.createdAt, e.expiresAt, e.usedAt);
  }

  async getDevice(name: string): Promise<DeviceRecord | undefined> {
    const row = this.cached('SELECT * FROM devices WHERE name = ?').get(name) as Row | undefined;
    return row ? toDevice(row) : undefined;
  }

  async listDevices(page: { after?: string; limit?: number } = {}): Promise<DeviceRecord[]> {
    return (this.cached('SELECT * FROM devices WHERE name > ? ORDER BY name LIMIT ?').all(page.after ?? '', page.limit ?? -1) as Row[]).map(toDevice);
  }

  async setDeviceEnabled(name: string, enabled: boolean, audit: AuditEntry): Promise<boolean> {
    try {
      const edgeId = this.withAudit(audit, () => {
        const row = this.db.prepare('UPDATE devices SET enabled = ? WHERE name = ? RETURNING edge_id').get(enabled ? 1 : 0, name) as Row | undefined;
        if (!row) throw new NoRowError();
        return (row['edge_id'] as string | null) ?? null;
      });
      this.announce(enabled ? 'device.enable' : 'device.disable', [edgeId]);
      return true;
    } catch (error) {
      if (error instanceof NoRowError) return false;
      throw error;
    }
  }

  async removeDevice(name: string, audit: AuditEntry): Promise<AccessRequestRecord[] | undefined> {
    // Read and removal run back to back in this one synchronous call: nothing moves the device between them.
    const edgeId = this.edgeOfDevice(name);
    const ended = await this.removeWithAccess('DELETE FROM devices WHERE name = ?', 'device', name, audit, `device "${name}" was removed`);
    if (ended) this.announce('device.remove', [edgeId]);
    return ended;
  }

  /**
   * Deletes one row and ends every pending request and open grant that names it, each with
   * its own `access.revoke` record in the same transaction as its change. The removal and the
   * first REVOKE_CHUNK requests are one transaction; the rest follow in transactions of the
   * same size with the event loop free between them, so removing a device with thousands of
   * open requests never stalls the hub (5,000 in one transaction took 165 ms). Nothing is
   * exposed in between: a grant is honoured only if it is younger than its device and its
   * user, and the device or user is already gone.
   */
  private async removeWithAccess(sql: string, column: 'device' | 'principal', name: string, audit: AuditEntry, reason: string): Promise<AccessRequestRecord[] | undefined> {
    const revokeChunk = (): AccessRequestRecord[] => {
      const now = this.now();
      const ended = (
        this.cached(
          `UPDATE access_requests SET status = 'revoked', ended_at = ?
           WHERE id IN (SELECT id FROM access_requests
                        WHERE ${column} = ? AND ended_at IS NULL AND status IN ('pending', 'approved') AND (status = 'pending' OR grant_ends_at > ?)
                        LIMIT ?)
           RETURNING *`,
        ).all(now, name, now, REVOKE_CHUNK) as Row[]
      ).map(toAccess);
      for (const r of ended) {
        this.appendAuditSync({ actor: audit.actor, action: 'access.revoke', device: r.device, details: { request: r.id, principal: r.principal, reason } });
      }
      return ended;
    };
    const first = this.db.transaction(() => {
      if (this.db.prepare(sql).run(name).changes === 0) return undefined;
      this.appendAuditSync(audit);
      return revokeChunk();
    }).immediate();
    if (first === undefined) return undefined;
    const ended = [...first];
    for (let chunk = first; chunk.length === REVOKE_CHUNK; ) {
      await new Promise((resolve) => setImmediate(resolve));
      chunk = await this.retryWhileBusy(() => this.db.transaction(revokeChunk).immediate());
      ended.push(...chunk);
    }
    return ended;
  }

  /** Runs a write again while another process holds the database (the removal already happened). */
  private async retryWhileBusy<T>(write: () => T): Promise<T> {
    const giveUpAt = Date.now() + BUSY_GIVE_UP_MS;
    for (;;) {
      try {
        return write();
      } catch (error) {
        if (!isBusy(error) || Date.now() > giveUpAt) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }

  async touchDevice(name: string, facts: { lastSeenAt: number; agentVersion?: string; remoteAddress?: string }): Promise<void> {
    return this.grouped(() => {
      this.cached(
        'UPDATE devices SET last_seen_at = ?, agent_version = COALESCE(?, agent_version), remote_address = COALESCE(?, remote_address) WHERE name = ?',
      ).run(facts.lastSeenAt, facts.agentVersion ?? null, facts.remoteAddress ?? null, name);
    }, true);
  }

  async createEnrollment(enrollment: EnrollmentRecord, audit: AuditEntry): Promise<void> {
    this.withAudit(audit, () => {
      // Only the newest token can enroll: an older one that leaked or was mailed twice is dead.
      this.db
        .prepare('UPDATE enrollments SET replaced_at = ? WHERE device = ? AND used_at IS NULL AND replaced_at IS NULL')
        .run(enrollment.createdAt, enrollment.device);
      this.insertEnrollment(enrollment);
    });
  }

  async getEnrollment(id: string): Promise<EnrollmentRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM enrollments WHERE id = ?').get(id) as Row | undefined;
    return row ? toEnrollment(row) : undefined;
  }

  async completeEnrollment(id: string, publicKey: string, now: number, audit: AuditEntry, edge?: EdgeRecord): Promise<boolean> {
    try {
      let moved: (string | null)[] = [];
      this.withAudit(audit, () => {
        const used = this.db
          .prepare('UPDATE enrollments SET used_at = ? WHERE id = ? AND used_at IS NULL AND replaced_at IS NULL AND expires_at > ?')
          .run(now, id, now);
        if (used.changes !== 1) throw new NoRowError();
        const row = this.db.prepare('SELECT device FROM enrollments WHERE id = ?').get(id) as Row;
        moved = [this.edgeOfDevice(String(row['device'])), edge?.id ?? null];
        if (edge && !this.db.prepare('SELECT 1 FROM edges WHERE id = ?').get(edge.id)) {
          this.db
            .prepare(
              'INSERT INTO edges (id, name, signing_key, encryption_key, enabled, hostname, created_at, last_seen_at, agent_version, remote_address) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            )
            .run(edge.id, edge.name, edge.signingKey, edge.encryptionKey, edge.enabled ? 1 : 0, edge.hostname, edge.createdAt, edge.lastSeenAt, edge.agentVersion, edge.remoteAddress);
        }
        this.db
          .prepare('UPDATE devices SET public_key = ?, enrolled_at = ?, edge_id = ? WHERE name = ?')
          .run(publicKey, now, edge?.id ?? null, String(row['device']));
      });
      this.announce('device.enroll', moved);
      return true;
    } catch (error) {
      if (error instanceof NoRowError) return false;
      throw error;
    }
  }

  async devicesOfEdge(edgeId: string): Promise<DeviceRecord[]> {
    return (this.cached('SELECT * FROM devices WHERE edge_id = ? ORDER BY name').all(edgeId) as Row[]).map(toDevice);
  }

  // ---- edges ----

  async getEdge(id: string): Promise<EdgeRecord | undefined> {
    const row = this.cached('SELECT * FROM edges WHERE id = ?').get(id) as Row | undefined;
    return row ? toEdge(row) : undefined;
  }

  async getEdgeByName(name: string): Promise<EdgeRecord | undefined> {
    const row = this.cached('SELECT * FROM edges WHERE name = ?').get(name) as Row | undefined;
    return row ? toEdge(row) : undefined;
  }

  async listEdges(): Promise<EdgeRecord[]> {
    return (this.db.prepare('SELECT * FROM edges ORDER BY name').all() as Row[]).map(toEdge);
  }

  async setEdgeEnabled(id: string, enabled: boolean, audit: AuditEntry): Promise<boolean> {
    try {
      this.withAudit(audit, () => {
        if (this.db.prepare('UPDATE edges SET enabled = ? WHERE id = ?').run(enabled ? 1 : 0, id).changes === 0) throw new NoRowError();
      });
      this.announce(enabled ? 'edge.enable' : 'edge.disable', [id]);
      return true;
    } catch (error) {
      if (error instanceof NoRowError) return false;
      throw error;
    }
  }

  async removeEdge(id: string, audit: AuditEntry): Promise<boolean> {
    try {
      this.withAudit(audit, () => {
        this.db.prepare('UPDATE devices SET public_key = NULL, enrolled_at = NULL, edge_id = NULL WHERE edge_id = ?').run(id);
        if (this.db.prepare('DELETE FROM edges WHERE id = ?').run(id).changes === 0) throw new NoRowError();
      });
      this.announce('edge.remove', [id]);
      return true;
    } catch (error) {
      if (error instanceof NoRowError) return false;
      throw error;
    }
  }

  async touchEdge(id: string, facts: { lastSeenAt: number; agentVersion?: string; remoteAddress?: string; hostname?: string }): Promise<void> {
    return this.grouped(() => {
      this.cached(
        'UPDATE edges SET last_seen_at = ?, agent_version = COALESCE(?, agent_version), remote_address = COALESCE(?, remote_address), hostname = COALESCE(?, hostname) WHERE id = ?',
      ).run(facts.lastSeenAt, facts.agentVersion ?? null, facts.remoteAddress ?? null, facts.hostname ?? null, id);
    });
  }

  // ---- principals ----

  async createPrincipal(p: PrincipalRecord, audit: AuditEntry): Promise<void> {
    this.withAudit(audit, () => {
      this.db
        .prepare('INSERT INTO principals (name, role, created_at, token_id, token_hash, token_created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(p.name, p.role, p.createdAt, p.tokenId, p.tokenHash, p.tokenCreatedAt);
    });
  }

  async getPrincipal(name: string): Promise<PrincipalRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM principals WHERE name = ?').get(name) as Row | undefined;
    return row ? toPrincipal(row) : undefined;
  }

  async getPrincipalByTokenId(tokenId: string): Promise<PrincipalRecord | undefined> {
    const row = this.cached('SELECT * FROM principals WHERE token_id = ?').get(tokenId) as Row | undefined;
    return row ? toPrincipal(row) : undefined;
  }

  async listPrincipals(): Promise<PrincipalRecord[]> {
    return (this.db.prepare('SELECT * FROM principals ORDER BY name').all() as Row[]).map(toPrincipal);
  }

  async removePrincipal(name: string, audit: AuditEntry): Promise<AccessRequestRecord[] | undefined> {
    return this.removeWithAccess('DELETE FROM principals WHERE name = ?', 'principal', name, audit, `user "${name}" was removed`);
  }

  async setPrincipalToken(name: string, tokenId: string, tokenHash: string, now: number, audit: AuditEntry): Promise<boolean> {
    try {
      return this.withAudit(audit, () => {
        const result = this.db
          .prepare('UPDATE principals SET token_id = ?, token_hash = ?, token_created_at = ? WHERE name = ?')
          .run(tokenId, tokenHash, now, name);
        if (result.changes === 0) throw new NoRowError();
        return true;
      });
    } catch (error) {
      if (error instanceof NoRowError) return false;
      throw error;
    }
  }

  // ---- access ----

  async createAccessRequest(r: AccessRequestRecord, audit: AuditEntry, maxPending?: number): Promise<boolean> {
    try {
      return this.withAudit(audit, () => {
        if (maxPending !== undefined) {
          const open = this.cached(
            "SELECT COUNT(*) AS n FROM access_requests WHERE principal = ? AND ended_at IS NULL AND status = 'pending' AND request_expires_at > ?",
          ).get(r.principal, r.createdAt) as Row;
          if (num(open['n']) >= maxPending) throw new NoRowError();
        }
        const columns = Object.values(ACCESS_COLUMNS);
        this.cached(`INSERT INTO access_requests (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`)
          .run(...(Object.keys(ACCESS_COLUMNS) as (keyof AccessRequestRecord)[]).map((k) => toSqlValue(r[k])));
        return true;
      });
    } catch (error) {
      if (error instanceof NoRowError) return false;
      throw error;
    }
  }

  async getAccessRequest(id: string): Promise<AccessRequestRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM access_requests WHERE id = ?').get(id) as Row | undefined;
    return row ? toAccess(row) : undefined;
  }

  async listAccessRequests(q: AccessQuery): Promise<AccessRequestRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.status) {
      where.push('status = ?');
      params.push(q.status);
    }
    if (q.principal) {
      where.push('principal = ?');
      params.push(q.principal);
    }
    if (q.device) {
      where.push('device = ?');
      params.push(q.device);
    }
    if (q.notEnded) where.push('ended_at IS NULL');
    if (q.activeAt !== undefined) {
      where.push("status = 'approved' AND grant_starts_at <= ? AND grant_ends_at > ?");
      params.push(q.activeAt, q.activeAt);
    }
    const sql = `SELECT * FROM access_requests ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC LIMIT ?`;
    params.push(q.limit ?? 1000);
    return (this.db.prepare(sql).all(...params) as Row[]).map(toAccess);
  }

  async transitionAccessRequest(
    id: string,
    expected: AccessStatus,
    changes: Partial<AccessRequestRecord>,
    audit: AuditEntry,
  ): Promise<AccessRequestRecord | undefined> {
    const keys = (Object.keys(changes) as (keyof AccessRequestRecord)[]).filter((k) => k !== 'id');
    try {
      return this.withAudit(audit, () => {
        const sets = keys.map((k) => `${ACCESS_COLUMNS[k]} = ?`).join(', ');
        const result = this.db
          .prepare(`UPDATE access_requests SET ${sets} WHERE id = ? AND status = ?`)
          .run(...keys.map((k) => toSqlValue(changes[k])), id, expected);
        if (result.changes !== 1) throw new NoRowError();
        return toAccess(this.db.prepare('SELECT * FROM access_requests WHERE id = ?').get(id) as Row);
      });
    } catch (error) {
      if (error instanceof NoRowError) return undefined;
      throw error;
    }
  }

  async expireAccessRequests(now: number, batch: number): Promise<AccessRequestRecord[]> {
    return this.endAccessInBatch(
      `UPDATE access_requests SET status = 'expired', ended_at = @now
       WHERE id IN (SELECT id FROM access_requests WHERE status = 'pending' AND request_expires_at <= @now ORDER BY request_expires_at LIMIT @batch)
       RETURNING *`,
      now,
      batch,
      'access.expire',
    );
  }

  async endElapsedGrants(now: number, batch: number): Promise<AccessRequestRecord[]> {
    return this.endAccessInBatch(
      `UPDATE access_requests SET ended_at = grant_ends_at
       WHERE id IN (SELECT id FROM access_requests WHERE status = 'approved' AND ended_at IS NULL AND grant_ends_at <= @now ORDER BY grant_ends_at LIMIT @batch)
       RETURNING *`,
      now,
      batch,
      'access.grant_end',
    );
  }

  /** One set-based UPDATE (by a partial index) and one hub audit record per row it changed, in one transaction. */
  private endAccessInBatch(sql: string, now: number, batch: number, action: string): AccessRequestRecord[] {
    return this.db.transaction(() => {
      const rows = (this.cached(sql).all({ now, batch }) as Row[]).map(toAccess);
      for (const r of rows) this.appendAuditSync({ actor: 'hub', action, device: r.device, details: { request: r.id, principal: r.principal } });
      return rows;
    }).immediate();
  }

  // ---- sessions ----

  async openSession(s: SessionRecord, audit: AuditEntry): Promise<void> {
    return this.grouped(() => {
      this.cached(
        'INSERT INTO sessions (id, principal, device, target, client_address, grant_id, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
        .run(s.id, s.principal, s.device, s.target, s.clientAddress, s.grantId, s.startedAt);
      this.appendAuditSync(audit);
    });
  }

  async closeSession(
    id: string,
    facts: { endedAt: number; bytesToDevice: number; bytesFromDevice: number; closeReason: string },
    audit: AuditEntry,
  ): Promise<void> {
    return this.grouped(() => {
      this.cached(
        'UPDATE sessions SET ended_at = ?, bytes_to_device = ?, bytes_from_device = ?, close_reason = ? WHERE id = ? AND ended_at IS NULL',
      )
        .run(facts.endedAt, facts.bytesToDevice, facts.bytesFromDevice, facts.closeReason, id);
      this.appendAuditSync(audit);
    }, true);
  }

  async listSessions(q: { open?: boolean; limit: number }): Promise<SessionRecord[]> {
    this.commitPending();
    const where = q.open === undefined ? '' : q.open ? 'WHERE ended_at IS NULL' : 'WHERE ended_at IS NOT NULL';
    return (this.db.prepare(`SELECT * FROM sessions ${where} ORDER BY started_at DESC LIMIT ?`).all(q.limit) as Row[]).map(toSession);
  }

  async closeOrphanedSessions(now: number, reason: string): Promise<number> {
    this.commitPending();
    return this.db.transaction(() => {
      const open = (this.db.prepare('SELECT * FROM sessions WHERE ended_at IS NULL').all() as Row[]).map(toSession);
      for (const s of open) {
        this.db.prepare('UPDATE sessions SET ended_at = ?, close_reason = ? WHERE id = ?').run(now, reason, s.id);
        this.appendAuditSync({
          actor: 'hub',
          action: 'stream.close',
          device: s.device,
          details: { session: s.id, principal: s.principal, reason, durationMs: now - s.startedAt, bytesUnknown: true },
        });
      }
      return open.length;
    }).immediate();
  }

  // ---- audit ----

  async appendAudit(entry: AuditEntry): Promise<AuditRecord> {
    return this.db.transaction(() => this.appendAuditSync(entry)).immediate();
  }

  async queryAudit(q: AuditQuery): Promise<AuditRecord[]> {
    this.commitPending();
    const where: string[] = [];
    const params: unknown[] = [];
    const filters: [unknown, string][] = [
      [q.device, 'device = ?'],
      [q.actor, 'actor = ?'],
      [q.action, 'action = ?'],
      [q.since, 'ts >= ?'],
      [q.until, 'ts < ?'],
      [q.afterSeq, 'seq > ?'],
      [q.beforeSeq, 'seq < ?'],
    ];
    for (const [value, clause] of filters) {
      if (value !== undefined) {
        where.push(clause);
        params.push(value);
      }
    }
    const order = q.order === 'desc' ? 'DESC' : 'ASC';
    const sql = `SELECT * FROM audit ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq ${order} LIMIT ?`;
    params.push(q.limit);
    return (this.db.prepare(sql).all(...params) as Row[]).map(toAudit);
  }

  async scanAudit(afterSeq: number, batchSize: number): Promise<AuditRecord[]> {
    this.commitPending();
    return (this.db.prepare('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?').all(afterSeq, batchSize) as Row[]).map(toAudit);
  }

  async countAudit(): Promise<number> {
    this.commitPending();
    return num((this.db.prepare('SELECT COUNT(*) AS n FROM audit').get() as Row)['n']);
  }

  async verifyAudit(): Promise<ChainReport> {
    this.commitPending();
    if (this.path === ':memory:') {
      // No file for a worker to open: verify here, yielding between batches.
      const verifier = new AuditChainVerifier();
      let after = 0;
      for (;;) {
        const batch = await this.scanAudit(after, 1000);
        if (batch.length === 0) return { ok: true, checked: verifier.count, headHash: verifier.headHash };
        for (const record of batch) {
          const problem = verifier.feed(record);
          if (problem) return { ok: false, checked: verifier.count, firstBadSeq: problem.seq, problem: problem.problem, message: problem.message };
        }
        after = (batch[batch.length - 1] as AuditRecord).seq;
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    const worker = new Worker(new URL('./verify-worker.js', import.meta.url), { workerData: { path: this.path } });
    try {
      return await new Promise<ChainReport>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`the audit verifier stopped (exit ${code})`)));
      });
    } finally {
      void worker.terminate();
    }
  }

  /** For tests and tools: raw access to the database file. */
  get database(): Database.Database {
    return this.db;
  }
}

class NoRowError extends Error {}

function toSqlValue(v: unknown): unknown {
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v === undefined ? null : v;
}
