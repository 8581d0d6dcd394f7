/**
 * The audit log through the API, in process: failed authentication limited per source and
 * audited in aggregate, queries and keyset paging, an export whose every record verifies on
 * its own, no secret in the log or in any log line, and tampering with the database file
 * (a hub started again on a tampered copy names the first bad record). The CLI's rendering
 * (`audit verify` text and exit code, `export --output`, `tail --follow`) lives in
 * test/e2e/cli.test.ts.
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { enrollDevice } from '../../src/agent/enroll.js';
import type { HubClient } from '../../src/client/hub-client.js';
import { startHub } from '../../src/hub/hub.js';
import type { AuditView } from '../../src/protocol/api-types.js';
import { hashAuditRecord, sealAuditRecord } from '../../src/store/audit-chain.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { AuditRecord } from '../../src/store/store.js';
import { ManualClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';
import { secretOf } from '../helpers.js';
import { holdEchoSocket, refused, until } from './api-helpers.js';
import { rawRequest } from './raw-http.js';
import { capturingLogger, echoServer, startHarness, type Harness } from './stream-harness.js';

interface VerifyResult {
  ok: boolean;
  checked: number;
  headHash?: string;
  firstBadSeq?: number;
  problem?: string;
  message?: string;
}

const FAKE_TOKEN = 'dbp_0123456789abcdef_' + 'A'.repeat(43);
const WEBHOOK_SECRET = 'audit-test-webhook-secret-0123456789';

function rows(db: Database.Database): AuditRecord[] {
  return (db.prepare('SELECT * FROM audit ORDER BY seq').all() as Record<string, unknown>[]).map((r) => ({
    seq: Number(r['seq']),
    ts: Number(r['ts']),
    actor: String(r['actor']),
    action: String(r['action']),
    device: r['device'] === null ? null : String(r['device']),
    details: JSON.parse(String(r['details'])) as Record<string, unknown>,
    prevHash: String(r['prev_hash']),
    hash: String(r['hash']),
  }));
}

function insert(db: Database.Database, r: AuditRecord): void {
  db.prepare('INSERT INTO audit (seq, ts, actor, action, device, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
    r.seq, r.ts, r.actor, r.action, r.device, JSON.stringify(r.details), r.prevHash, r.hash,
  );
}

describe('audit log', { timeout: 90_000 }, () => {
  const clock = new ManualClock(Date.now());
  const logs = capturingLogger();
  let h: Harness;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let agentConfig: string;
  let op: { token: string; client: HubClient };
  let appr: { token: string; client: HubClient };
  let aud: { token: string; client: HubClient };
  let enrollmentToken: string;
  let requestId: string;
  let midpoint: string;

  const query = async (q: string, client: HubClient = h.admin): Promise<AuditView[]> => (await client.request<{ records: AuditView[] }>('GET', `/v1/audit?${q}`)).records;

  before(async () => {
    h = await startHarness({
      clock,
      logger: logs.logger,
      config: {
        limits: { authFailuresPerMinute: 5, authFailureAuditWindow: '5s', pingInterval: '10m' },
        // Nobody listens there: failed deliveries are logged, and the secret must not be.
        webhook: { url: 'http://127.0.0.1:9/hook', secret: WEBHOOK_SECRET },
      },
    });
    echo = await echoServer();
    agentConfig = await h.enroll('audit-dev', `127.0.0.1:${echo.port}`);
    await h.startAgent(agentConfig);
    [op, appr, aud] = await Promise.all([h.user('op', 'operator'), h.user('appr', 'approver'), h.user('aud', 'auditor')]);
    enrollmentToken = (await h.admin.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name: 'spare-dev', tags: { env: 'spare' } })).enrollmentToken;
    await enrollDevice({ token: enrollmentToken, target: '127.0.0.1:9', configPath: join(h.dir, 'spare', 'agent.yaml'), edgeName: 'spare-edge' });
    requestId = (await op.client.request<{ id: string }>('POST', '/v1/access', { device: 'audit-dev', durationMs: 1_800_000, reason: 'read the PLC counters' })).id;
    await appr.client.request('POST', `/v1/access/${requestId}/approve`, { note: 'ok' });
    const tunnel = await h.tunnel(op.client, 'audit-dev');
    (await holdEchoSocket(tunnel.port, 'counter-bytes\n')).socket.end();
    await until(async () => (await h.admin.request<{ sessions: unknown[] }>('GET', '/v1/sessions')).sessions.length === 0, 'the stream to close');
    await until(async () => (await query('action=stream.close')).length === 1, 'the stream.close record');
    // Records before and after the midpoint differ by a second on the hub's clock.
    await clock.advance(1000);
    midpoint = new Date(clock.now()).toISOString();
    await clock.advance(1000);
    await h.admin.request('POST', '/v1/devices/spare-dev/disable');
  });

  after(async () => {
    await h?.close();
    await echo?.close();
  });

  it('limits failed authentication per source with 429 and Retry-After, and audits it in aggregate', async () => {
    const get = (token: string, source: string): Promise<{ status?: number; headers?: Record<string, string> }> =>
      rawRequest(h.hub.port, h.hub.caPem, 'GET', '/v1/devices', { authorization: `Bearer ${token}` }, '', source).then((r) => ({ ...(r ? { status: r.status, headers: r.headers } : {}) }));
    const answers = [];
    for (let i = 0; i < 8; i++) answers.push(await get(FAKE_TOKEN, '127.0.0.2'));
    assert.deepEqual(answers.map((a) => a.status), [401, 401, 401, 401, 401, 429, 429, 429]);
    const retryAfter = Number(answers[7]?.headers?.['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${retryAfter}`);
    // A valid token still passes from the limited source (it is not the one failing); other sources are unaffected.
    const admin = h.hub.bootstrapAdminToken as string;
    assert.equal((await get(admin, '127.0.0.2')).status, 200);
    assert.equal((await get(admin, '127.0.0.1')).status, 200);

    // Failures are audited in aggregate: one record per source and kind per window, with a count.
    await clock.advance(5000);
    const fromSource = async (action: string): Promise<AuditView[]> => (await query(`action=${action}`)).filter((r) => r.details['source'] === '127.0.0.2');
    await until(async () => (await fromSource('auth.failure')).length > 0, 'the aggregated failure record');
    const [failure, ...more] = await fromSource('auth.failure');
    assert.equal(more.length, 0, 'one record for the whole window');
    assert.equal(failure?.actor, 'anonymous@127.0.0.2');
    assert.equal(failure?.details['count'], 8);
    assert.deepEqual(failure?.details['counts'], { 'invalid token': 8 });
    assert.equal((await fromSource('auth.rate_limited')).length, 1);
  });

  it('verify passes on an untouched log, for auditors too', async () => {
    const result = await aud.client.request<VerifyResult>('GET', '/v1/audit/verify');
    assert.equal(result.ok, true);
    assert.ok(result.checked >= 15, `only ${result.checked} records`);
    assert.match(result.headHash ?? '', /^[0-9a-f]{64}$/);
  });

  it('queries filter by device, actor, action, since and until, and page by sequence number', async () => {
    const byDevice = await query('device=audit-dev&limit=1000', aud.client);
    assert.ok(byDevice.length >= 5);
    assert.ok(byDevice.every((r) => r.device === 'audit-dev'));
    for (const action of ['device.add', 'device.enroll', 'access.request', 'access.approve', 'stream.open', 'stream.close']) {
      assert.ok(byDevice.some((r) => r.action === action), `no ${action} for audit-dev`);
    }
    const streamClose = byDevice.find((r) => r.action === 'stream.close');
    assert.equal(streamClose?.actor, 'op');
    assert.ok(Number(streamClose?.details['bytesToDevice']) >= 'counter-bytes\n'.length, 'stream close records the byte counts');
    assert.equal(byDevice.find((r) => r.action === 'stream.open')?.details['grant'], requestId);

    const byActor = await query('actor=appr');
    assert.deepEqual(byActor.map((r) => r.action), ['access.approve']);
    assert.equal(byActor[0]?.details['request'], requestId);
    assert.deepEqual((await query('action=user.add')).map((r) => r.details['user']).sort(), ['admin', 'appr', 'aud', 'op']);

    const since = await query(`since=${encodeURIComponent(midpoint)}&limit=1000`);
    assert.ok(since.length >= 1);
    assert.ok(since.every((r) => r.ts >= midpoint));
    assert.ok(since.some((r) => r.action === 'device.disable' && r.device === 'spare-dev'));
    assert.ok(!since.some((r) => r.action === 'user.add'));
    const until_ = await query(`until=${encodeURIComponent(midpoint)}&limit=1000`);
    assert.ok(until_.every((r) => r.ts < midpoint));
    assert.ok(until_.some((r) => r.action === 'user.add'));
    assert.ok(!until_.some((r) => r.action === 'device.disable'));

    assert.equal((await query('device=spare-dev&action=device.disable&actor=admin')).length, 1);
    const relative = await query('since=1h&limit=1000');
    assert.equal(relative.length, since.length + until_.length);
    await refused(h.admin.request('GET', '/v1/audit?since=yesterday-ish'), 'VALIDATION_FAILED', /not a time/);
    // A page is at most 1,000 records: more is one synchronous burst of work for the hub.
    await refused(h.admin.request('GET', '/v1/audit?limit=1001'), 'VALIDATION_FAILED', /query\.limit/);
    await refused(h.admin.request('GET', '/v1/access?limit=1001'), 'VALIDATION_FAILED', /query\.limit/);

    // Keyset paging: two pages of 5 are the first 10 records.
    const first = await h.admin.request<{ records: AuditView[]; next: number }>('GET', '/v1/audit?limit=5');
    const second = await query(`limit=5&after=${first.next}`);
    assert.deepEqual([...first.records, ...second].map((r) => r.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('export is JSON Lines holding every record, each independently verifiable', async () => {
    const exported = await aud.client.raw('GET', '/v1/audit/export');
    assert.equal(exported.status, 200);
    const records = exported.text.trimEnd().split('\n').map((l) => JSON.parse(l) as AuditView);
    assert.deepEqual(records.map((r) => r.seq), records.map((_, i) => i + 1), 'every record, in order, none missing');
    const verified = await h.admin.request<VerifyResult>('GET', '/v1/audit/verify');
    assert.ok(records.length >= verified.checked);
    let prev = '0'.repeat(64);
    for (const r of records) {
      assert.equal(r.prevHash, prev, `record ${r.seq} links to its predecessor`);
      assert.equal(hashAuditRecord({ ...r, ts: Date.parse(r.ts) }), r.hash, `record ${r.seq} hashes to its stored hash`);
      prev = r.hash;
    }
  });

  it('no token or secret appears in the audit log or in any log line', async () => {
    const exported = (await h.admin.raw('GET', '/v1/audit/export')).text;
    const enrollment = JSON.parse(Buffer.from(enrollmentToken.slice('dbe1_'.length), 'base64url').toString('utf8')) as { s: string };
    const keyPem = readFileSync(join(dirname(agentConfig), 'keys', 'audit-dev.key'), 'utf8');
    const keyBody = keyPem.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
    const admin = h.hub.bootstrapAdminToken as string;
    const secrets: Record<string, string> = {
      'admin token': admin,
      'admin token secret': secretOf(admin),
      'operator token': secretOf(op.token),
      'approver token': secretOf(appr.token),
      'auditor token': secretOf(aud.token),
      'enrollment token': enrollmentToken,
      'enrollment secret': enrollment.s,
      'forged token': secretOf(FAKE_TOKEN),
      'device private key': keyBody,
      'webhook secret': WEBHOOK_SECRET,
    };
    await until(() => logs.text().includes('webhook'), 'a failed webhook delivery to be logged');
    const places: Record<string, string> = { 'audit export': exported, 'hub and agent logs': logs.text() };
    assert.ok(logs.text().includes('authentication failed') || logs.text().includes('auth'), 'the logs are being captured');
    for (const [where, text] of Object.entries(places)) {
      for (const [what, secret] of Object.entries(secrets)) assert.ok(!text.includes(secret), `the ${what} appears in the ${where}`);
    }
  });

  describe('tampering with the database file', () => {
    let original: string;
    let seqOfRequest: number;
    let maxSeq: number;
    const copies = mkdtempSync(join(tmpdir(), 'db-tampered-'));
    after(() => rmSync(copies, { recursive: true, force: true }));

    before(async () => {
      // The hub stops (its database is complete on disk); the harness removes it at the end.
      await h.hub.close();
      original = h.hub.dataDir;
      const db = new Database(join(original, 'drawbridge.db'), { readonly: true });
      const all = rows(db);
      db.close();
      seqOfRequest = (all.find((r) => r.action === 'access.request') as AuditRecord).seq;
      maxSeq = all.length;
      assert.ok(seqOfRequest > 1 && seqOfRequest < maxSeq - 1, 'the tampered record sits in the middle');
    });

    /**
     * Copies the data dir and lets `tamper` change the database (triggers dropped); then
     * verifies the copy with the store's own verifier, or through a hub started on it.
     */
    async function verifyAfter(tamper: (db: Database.Database) => void, through: 'store' | 'hub' = 'store'): Promise<VerifyResult> {
      const copy = mkdtempSync(join(copies, 'copy-'));
      cpSync(original, copy, { recursive: true });
      const db = new Database(join(copy, 'drawbridge.db'));
      db.exec('DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;');
      tamper(db);
      db.close();
      if (through === 'store') {
        const store = new SqliteStore({ path: join(copy, 'drawbridge.db'), now: () => Date.now() });
        try {
          return await store.verifyAudit();
        } finally {
          await store.close();
        }
      }
      const tampered = await startHub({ dataDir: copy, host: '127.0.0.1', port: 0, logger: silentLogger() });
      try {
        const answer = await rawRequest(tampered.port, tampered.caPem, 'GET', '/v1/audit/verify', { authorization: `Bearer ${h.hub.bootstrapAdminToken as string}` });
        assert.equal(answer?.status, 200);
        return JSON.parse(answer?.body ?? '{}') as VerifyResult;
      } finally {
        await tampered.close();
      }
    }

    it('the append-only triggers refuse UPDATE and DELETE while they exist', () => {
      const copy = mkdtempSync(join(copies, 'triggers-'));
      cpSync(original, copy, { recursive: true });
      const db = new Database(join(copy, 'drawbridge.db'));
      try {
        assert.throws(() => db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 1").run(), /append-only/);
        assert.throws(() => db.prepare('DELETE FROM audit WHERE seq = 1').run(), /append-only/);
      } finally {
        db.close();
      }
    });

    it('an edited record is named (by a hub started on the file)', async () => {
      const result = await verifyAfter((db) => {
        db.prepare("UPDATE audit SET details = json_set(details, '$.reason', 'nothing to see') WHERE seq = ?").run(seqOfRequest);
      }, 'hub');
      assert.deepEqual({ ok: result.ok, firstBadSeq: result.firstBadSeq, problem: result.problem }, { ok: false, firstBadSeq: seqOfRequest, problem: 'changed' });
      assert.match(result.message ?? '', new RegExp(`record ${seqOfRequest} was changed`));
      assert.equal(result.checked, seqOfRequest - 1);
    });

    it('an edited and re-sealed record breaks the link to the next one', async () => {
      const result = await verifyAfter((db) => {
        const record = rows(db).find((r) => r.seq === seqOfRequest) as AuditRecord;
        const forged = sealAuditRecord({ ...record, details: { ...record.details, reason: 'nothing to see' } });
        db.prepare('UPDATE audit SET details = ?, hash = ? WHERE seq = ?').run(JSON.stringify(forged.details), forged.hash, seqOfRequest);
      });
      assert.deepEqual({ ok: result.ok, firstBadSeq: result.firstBadSeq, problem: result.problem }, { ok: false, firstBadSeq: seqOfRequest + 1, problem: 'inserted-or-reordered' });
    });

    it('a deleted middle record is named at the next one', async () => {
      const result = await verifyAfter((db) => {
        db.prepare('DELETE FROM audit WHERE seq = ?').run(seqOfRequest);
      });
      assert.match(result.message ?? '', new RegExp(`records ${seqOfRequest}\\.\\.${seqOfRequest} were removed`));
      assert.deepEqual({ ok: result.ok, firstBadSeq: result.firstBadSeq, problem: result.problem }, { ok: false, firstBadSeq: seqOfRequest + 1, problem: 'removed-before' });
    });

    it('a forged record appended with a wrong link is named', async () => {
      const result = await verifyAfter((db) => {
        const all = rows(db);
        const last = all[all.length - 1] as AuditRecord;
        // Sealed, so its own hash is right, but it claims to follow an older record.
        insert(db, sealAuditRecord({ seq: last.seq + 1, ts: last.ts + 1, actor: 'appr', action: 'access.approve', device: 'audit-dev', details: { request: 'ar_forged' }, prevHash: all[all.length - 2]?.hash as string }));
      });
      assert.deepEqual({ ok: result.ok, firstBadSeq: result.firstBadSeq, problem: result.problem }, { ok: false, firstBadSeq: maxSeq + 1, problem: 'inserted-or-reordered' });
    });

    it('a record inserted in the middle (later records renumbered) is caught where the chain breaks', async () => {
      const result = await verifyAfter((db) => {
        const before = rows(db).find((r) => r.seq === seqOfRequest - 1) as AuditRecord;
        // Make room: shift every later record up by one (via negative numbers to dodge the key).
        db.prepare('UPDATE audit SET seq = -(seq + 1) WHERE seq >= ?').run(seqOfRequest);
        db.prepare('UPDATE audit SET seq = -seq WHERE seq < 0').run();
        // A well-formed forged record that links correctly to its predecessor...
        insert(db, sealAuditRecord({ seq: seqOfRequest, ts: before.ts, actor: 'admin', action: 'user.add', device: null, details: { user: 'mallory', role: 'admin' }, prevHash: before.hash }));
      });
      // ...is indistinguishable on its own; the renumbered original right after it no longer matches its hash.
      assert.deepEqual({ ok: result.ok, firstBadSeq: result.firstBadSeq, problem: result.problem }, { ok: false, firstBadSeq: seqOfRequest + 1, problem: 'changed' });
    });
  });
});
