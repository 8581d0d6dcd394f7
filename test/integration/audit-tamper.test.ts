/**
 * Tamper evidence that survives an attacker with the database file: signed checkpoints that
 * left the machine, and the hub's own record of the last head it wrote. Real hub, real
 * database file, tampering through a second SQLite connection (triggers dropped first).
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyAgainstCheckpoints } from '../../src/audit/verify-checkpoints.js';
import { HubClient } from '../../src/client/hub-client.js';
import { startHub, type HubHandle } from '../../src/hub/hub.js';
import { hashAuditRecord } from '../../src/store/audit-chain.js';
import { silentLogger } from '../../src/util/logger.js';

describe('tamper evidence beyond the database file', { timeout: 60_000 }, () => {
  let dir: string;
  let hub: HubHandle;
  let client: HubClient;
  let token: string;

  const start = async (): Promise<void> => {
    hub = await startHub({ dataDir: join(dir, 'hub'), host: '127.0.0.1', port: 0, logger: silentLogger() });
    token ??= hub.bootstrapAdminToken as string;
    client = await HubClient.connect({ hubUrl: hub.url, token, caPin: hub.caPin }, { cacheDir: join(dir, 'ca') });
  };
  const stop = async (): Promise<void> => {
    client.close();
    await hub.close();
  };
  const addUsers = async (prefix: string, n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await client.request('POST', '/v1/users', { name: `${prefix}-${i}`, role: 'auditor' });
  };
  /** Tampers with the file as an attacker would: triggers off, then `sql`. */
  const tamper = (fn: (db: Database.Database) => void): void => {
    const db = new Database(join(dir, 'hub', 'drawbridge.db'));
    db.exec('DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;');
    fn(db);
    db.close();
  };
  const saveCheckpoint = async (name: string): Promise<string> => {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify(await client.request('GET', '/v1/audit/checkpoint')) + '\n');
    return file;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'db-tamper-'));
    await start();
  });

  after(async () => {
    await stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('an untouched log passes verify --checkpoint', async () => {
    await addUsers('a', 5);
    const file = await saveCheckpoint('cp1.json');
    await addUsers('b', 3);
    const report = await verifyAgainstCheckpoints(client, [file]);
    assert.equal(report.ok, true, report.lines.join('\n'));
  });

  it('deleting the newest records passes the plain chain check but fails the checkpoint and the head check', async () => {
    const file = await saveCheckpoint('cp2.json');
    await stop();
    tamper((db) => db.exec('DELETE FROM audit WHERE seq > (SELECT MAX(seq) - 3 FROM audit)'));
    await start();
    const plain = await client.request<{ chainOk: boolean; ok: boolean; head: { ok: boolean; message: string } }>('GET', '/v1/audit/verify');
    assert.equal(plain.chainOk, true, 'the chain alone still verifies: this is what checkpoints are for');
    assert.equal(plain.head.ok, false, 'the hub noticed its own head is missing');
    assert.match(plain.head.message, /records were removed/);
    assert.equal((await client.request<{ auditHeadOk: boolean }>('GET', '/healthz')).auditHeadOk, false);
    const report = await verifyAgainstCheckpoints(client, [file]);
    assert.equal(report.ok, false);
    assert.match(report.lines.join('\n'), /records were removed/);
  });

  it('rewriting the whole chain with recomputed hashes fails every checkpoint taken before', async () => {
    const file = join(dir, 'cp1.json');
    tamper((db) => {
      const rows = db.prepare('SELECT * FROM audit ORDER BY seq').all() as Record<string, unknown>[];
      let prev = '0'.repeat(64);
      const update = db.prepare('UPDATE audit SET details = ?, prev_hash = ?, hash = ? WHERE seq = ?');
      for (const r of rows) {
        const details = JSON.parse(String(r['details'])) as Record<string, unknown>;
        if (r['seq'] === 2) details['user'] = 'someone-else';
        const record = { seq: Number(r['seq']), ts: Number(r['ts']), actor: String(r['actor']), action: String(r['action']), device: (r['device'] as string | null) ?? null, details, prevHash: prev };
        const hash = hashAuditRecord(record);
        update.run(JSON.stringify(details), prev, hash, r['seq']);
        prev = hash;
      }
    });
    const plain = await client.request<{ chainOk: boolean }>('GET', '/v1/audit/verify');
    assert.equal(plain.chainOk, true, 'a consistently re-sealed chain passes the plain check');
    const report = await verifyAgainstCheckpoints(client, [file]);
    assert.equal(report.ok, false);
    assert.match(report.lines.join('\n'), /the chain was rewritten/);
  });

  it('a forged checkpoint is refused', async () => {
    const file = await saveCheckpoint('cp3.json');
    const forged = join(dir, 'forged.json');
    const checkpoint = JSON.parse((await import('node:fs')).readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeFileSync(forged, JSON.stringify({ ...checkpoint, seq: Number(checkpoint['seq']) - 1 }) + '\n');
    const report = await verifyAgainstCheckpoints(client, [forged]);
    assert.equal(report.ok, false);
    assert.match(report.lines.join('\n'), /signature does not verify/);
  });
});
