/**
 * The audit log end to end: rate-limited failed authentication is audited, queries filter,
 * export is complete JSON Lines, tail follows, no secret is ever written, and tampering
 * with the database file (triggers dropped, as an attacker would) is caught by
 * `drawbridge audit verify`, which names the first bad record.
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { hashAuditRecord, sealAuditRecord } from '../src/store/audit-chain.js';
import type { AuditRecord } from '../src/store/store.js';
import {
  addDeviceWithAgent,
  cleanup,
  runCli,
  secretOf,
  spawnCli,
  startEchoServer,
  startHubProcess,
  stopProcess,
  tempDir,
  waitFor,
  type HubProcess,
} from './helpers.js';
import { addUser, as, json, ok, refused, startEchoProxy } from './jit-helpers.js';
import type { AuditView } from '../src/protocol/api-types.js';

const run = promisify(execFile);


interface VerifyResult {
  ok: boolean;
  checked: number;
  headHash?: string;
  firstBadSeq?: number;
  problem?: string;
  message?: string;
}

const FAKE_TOKEN = 'dbp_0123456789abcdef_' + 'A'.repeat(43);

/** curl from another loopback source address, so the rate limit trips there and not for 127.0.0.1. */
async function curlFrom(source: string, hub: HubProcess, token: string): Promise<{ status: number; headers: string }> {
  const { stdout } = await run('curl', [
    '-s', '-D', '-', '-o', '/dev/null',
    '--interface', source,
    '--cacert', join(hub.dataDir, 'ca.pem'),
    '-H', `Authorization: Bearer ${token}`,
    `${hub.url}/v1/devices`,
  ]);
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(stdout)?.[1]);
  return { status, headers: stdout };
}

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

describe('audit log', () => {
  let hub: HubProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let agent: Awaited<ReturnType<typeof addDeviceWithAgent>>['agent'];
  let agentConfig: string;
  let op: string;
  let appr: string;
  let aud: string;
  let enrollmentToken: string;
  let requestId: string;
  let midpoint: string;

  before(async () => {
    const config = join(tempDir('db-audit-cfg-'), 'hub.yaml');
    writeFileSync(config, 'limits:\n  authFailuresPerMinute: 5\n  authFailureAuditWindow: 5s\n');
    [hub, echo] = await Promise.all([startHubProcess({ config }), startEchoServer()]);
    ({ agent, configPath: agentConfig } = await addDeviceWithAgent(hub, 'audit-dev', `127.0.0.1:${echo.port}`));
    [op, appr, aud] = await Promise.all([addUser(hub, 'op', 'operator'), addUser(hub, 'appr', 'approver'), addUser(hub, 'aud', 'auditor')]);
    enrollmentToken = (await json<{ enrollmentToken: string }>(['devices', 'add', 'spare-dev', '--tag', 'env=spare'], hub.env)).enrollmentToken;
    await ok(['agent', 'enroll', enrollmentToken, '--target', '127.0.0.1:9', '--config', join(tempDir('db-agent-'), 'agent.yaml')], { DRAWBRIDGE_CONFIG_DIR: tempDir() });
    requestId = (await json<{ id: string }>(['access', 'request', 'audit-dev', '--for', '30m', '--reason', 'read the PLC counters'], as(hub, op))).id;
    await ok(['access', 'approve', requestId, '--note', 'ok'], as(hub, appr));
    const proxy = await startEchoProxy(as(hub, op), 'audit-dev', 'counter-bytes\n');
    proxy.child.stdin?.end();
    await waitFor(() => proxy.child.exitCode !== null, 10_000, 'the proxy to finish');
    await waitFor(async () => (await json<unknown[]>(['sessions', 'list'], hub.env)).length === 0, 5000, 'the stream to close');
    await new Promise((resolve) => setTimeout(resolve, 20));
    midpoint = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await ok(['devices', 'disable', 'spare-dev'], hub.env);
  });

  after(async () => {
    await cleanup();
    await echo?.close();
  });

  it('rate-limits failed authentication per source with 429 and Retry-After, and audits it', async () => {
    const statuses: number[] = [];
    let limited = { status: 0, headers: '' };
    for (let i = 0; i < 8; i++) {
      const answer = await curlFrom('127.0.0.2', hub, FAKE_TOKEN);
      statuses.push(answer.status);
      if (answer.status === 429) limited = answer;
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    const retryAfter = Number(/^retry-after: (\d+)\r?$/im.exec(limited.headers)?.[1]);
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${retryAfter}`);
    assert.match(limited.headers, /RATE_LIMITED|429/);
    // A valid token still passes from the limited source (it is not the one failing); other sources are unaffected.
    assert.equal((await curlFrom('127.0.0.2', hub, hub.adminToken)).status, 200);
    assert.equal((await curlFrom('127.0.0.1', hub, hub.adminToken)).status, 200);

    // Failures are audited in aggregate: one record per source and kind per window, with a count.
    const fromSource = async (action: string): Promise<AuditView[]> =>
      (await json<{ records: AuditView[] }>(['audit', 'list', '--action', action], hub.env)).records.filter((r) => r.details['source'] === '127.0.0.2');
    await waitFor(async () => (await fromSource('auth.failure')).length > 0, 20_000, 'the aggregated failure record');
    const [failure, ...more] = await fromSource('auth.failure');
    assert.equal(more.length, 0, 'one record for the whole window');
    assert.equal(failure?.actor, 'anonymous@127.0.0.2');
    assert.equal(failure?.details['count'], 8);
    assert.deepEqual(failure?.details['counts'], { 'invalid token': 8 });
    const tripped = await fromSource('auth.rate_limited');
    assert.equal(tripped.length, 1);
  });

  it('audit verify passes on an untouched log', async () => {
    const text = await ok(['audit', 'verify'], as(hub, aud));
    assert.match(text.stdout, /^audit chain intact: \d+ records, head [0-9a-f]{64}$/m);
    const result = await json<VerifyResult>(['audit', 'verify'], hub.env);
    assert.equal(result.ok, true);
    assert.ok(result.checked >= 15, `only ${result.checked} records`);
  });

  it('audit list filters by device, actor, action, since and until', async () => {
    const byDevice = await json<{ records: AuditView[] }>(['audit', 'list', '--device', 'audit-dev', '--limit', '1000'], as(hub, aud));
    assert.ok(byDevice.records.length >= 5);
    assert.ok(byDevice.records.every((r) => r.device === 'audit-dev'));
    for (const action of ['device.add', 'device.enroll', 'access.request', 'access.approve', 'stream.open', 'stream.close']) {
      assert.ok(byDevice.records.some((r) => r.action === action), `no ${action} for audit-dev`);
    }
    const streamClose = byDevice.records.find((r) => r.action === 'stream.close');
    assert.equal(streamClose?.actor, 'op');
    assert.ok(Number(streamClose?.details['bytesToDevice']) >= 'counter-bytes\n'.length, 'stream close records the byte counts');
    assert.equal(byDevice.records.find((r) => r.action === 'stream.open')?.details['grant'], requestId);

    const byActor = await json<{ records: AuditView[] }>(['audit', 'list', '--actor', 'appr'], hub.env);
    assert.deepEqual(byActor.records.map((r) => r.action), ['access.approve']);
    assert.equal(byActor.records[0]?.details['request'], requestId);

    const byAction = await json<{ records: AuditView[] }>(['audit', 'list', '--action', 'user.add'], hub.env);
    assert.deepEqual(byAction.records.map((r) => r.details['user']).sort(), ['admin', 'appr', 'aud', 'op']);

    const since = await json<{ records: AuditView[] }>(['audit', 'list', '--since', midpoint, '--limit', '1000'], hub.env);
    assert.ok(since.records.length >= 1);
    assert.ok(since.records.every((r) => r.ts >= midpoint));
    assert.ok(since.records.some((r) => r.action === 'device.disable' && r.device === 'spare-dev'));
    assert.ok(!since.records.some((r) => r.action === 'user.add'));
    const until = await json<{ records: AuditView[] }>(['audit', 'list', '--until', midpoint, '--limit', '1000'], hub.env);
    assert.ok(until.records.every((r) => r.ts < midpoint));
    assert.ok(until.records.some((r) => r.action === 'user.add'));
    assert.ok(!until.records.some((r) => r.action === 'device.disable'));

    const combined = await json<{ records: AuditView[] }>(['audit', 'list', '--device', 'spare-dev', '--action', 'device.disable', '--actor', 'admin'], hub.env);
    assert.equal(combined.records.length, 1);
    const relative = await json<{ records: AuditView[] }>(['audit', 'list', '--since', '1h', '--limit', '1000'], hub.env);
    assert.equal(relative.records.length, since.records.length + until.records.length);
    await refused(['audit', 'list', '--since', 'yesterday-ish'], hub.env, 'VALIDATION_FAILED', /not a time/);

    // Keyset paging: two pages of 5 are the first 10 records.
    const first = await json<{ records: AuditView[]; next: number }>(['audit', 'list', '--limit', '5'], hub.env);
    const second = await json<{ records: AuditView[] }>(['audit', 'list', '--limit', '5', '--after', String(first.next)], hub.env);
    assert.deepEqual([...first.records, ...second.records].map((r) => r.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('audit export is JSON Lines holding every record, each independently verifiable', async () => {
    const exported = await ok(['audit', 'export'], as(hub, aud));
    const lines = exported.stdout.trimEnd().split('\n');
    const records = lines.map((l) => JSON.parse(l) as AuditView);
    assert.deepEqual(records.map((r) => r.seq), records.map((_, i) => i + 1), 'every record, in order, none missing');
    const verified = await json<VerifyResult>(['audit', 'verify'], hub.env);
    assert.ok(records.length >= verified.checked);
    let prev = '0'.repeat(64);
    for (const r of records) {
      assert.equal(r.prevHash, prev, `record ${r.seq} links to its predecessor`);
      assert.equal(hashAuditRecord({ ...r, ts: Date.parse(r.ts) }), r.hash, `record ${r.seq} hashes to its stored hash`);
      prev = r.hash;
    }
    const file = join(tempDir('db-export-'), 'audit.jsonl');
    await ok(['audit', 'export', '--output', file], hub.env);
    assert.equal(readFileSync(file, 'utf8').split('\n').filter(Boolean).length >= records.length, true);
    assert.deepEqual(readFileSync(file, 'utf8').split('\n').slice(0, records.length), lines);
  });

  it('audit tail --follow prints new records as they happen', async () => {
    const tail = await spawnCli(['audit', 'tail', '-n', '2', '--follow', '--json'], { env: as(hub, aud) });
    await waitFor(() => tail.stdout().split('\n').filter(Boolean).length === 2, 10_000, 'the last 2 records');
    await ok(['devices', 'add', 'tail-dev'], hub.env);
    await waitFor(() => tail.stdout().includes('"tail-dev"'), 5000, 'the new record to be followed');
    const followed = tail.stdout().split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditView);
    assert.ok(followed.some((r) => r.action === 'device.add' && r.device === 'tail-dev'));
    const seqs = followed.map((r) => r.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'in order');
    await stopProcess(tail.child);
  });

  it('no token or secret appears in the audit log or in any log line', async () => {
    const exported = (await ok(['audit', 'export'], hub.env)).stdout;
    const enrollment = JSON.parse(Buffer.from(enrollmentToken.slice('dbe1_'.length), 'base64url').toString('utf8')) as { s: string };
    const keyPem = readFileSync(join(dirname(agentConfig), 'keys', 'audit-dev.key'), 'utf8');
    const keyBody = keyPem.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
    const secrets: Record<string, string> = {
      'admin token': hub.adminToken,
      'admin token secret': secretOf(hub.adminToken),
      'operator token': secretOf(op),
      'approver token': secretOf(appr),
      'auditor token': secretOf(aud),
      'enrollment token': enrollmentToken,
      'enrollment secret': enrollment.s,
      'forged token': secretOf(FAKE_TOKEN),
      'device private key': keyBody,
    };
    const places: Record<string, string> = { 'audit export': exported, 'hub log': hub.stderr(), 'agent log': agent?.stderr() ?? '' };
    assert.ok(hub.stderr().includes('authentication failed'), 'the hub log is being captured');
    for (const [where, text] of Object.entries(places)) {
      for (const [what, secret] of Object.entries(secrets)) assert.ok(!text.includes(secret), `the ${what} appears in the ${where}`);
    }
  });

  it('fails closed: while the audit log cannot be written, a stream is refused, not opened unaudited', async () => {
    // Another writer holds the database's write lock past the hub's busy timeout.
    const db = new Database(join(hub.dataDir, 'drawbridge.db'));
    db.exec('BEGIN IMMEDIATE');
    try {
      await refused(['proxy', 'audit-dev'], hub.env, 'AUDIT_UNAVAILABLE', /audit log could not be written/);
    } finally {
      db.exec('ROLLBACK');
      db.close();
    }
    assert.deepEqual(await json<unknown[]>(['sessions', 'list'], hub.env), []);
    const proxy = await startEchoProxy(hub.env, 'audit-dev', 'audited-again\n');
    proxy.child.stdin?.end();
    await waitFor(() => proxy.child.exitCode !== null, 10_000, 'the proxy to finish');
  });

  describe('tampering with the database file', () => {
    let original: string;
    let seqOfRequest: number;
    let maxSeq: number;

    before(async () => {
      await stopProcess(hub.child);
      if (agent) await stopProcess(agent.child);
      original = hub.dataDir;
      const db = new Database(join(original, 'drawbridge.db'), { readonly: true });
      const all = rows(db);
      db.close();
      seqOfRequest = (all.find((r) => r.action === 'access.request') as AuditRecord).seq;
      maxSeq = all.length;
      assert.ok(seqOfRequest > 1 && seqOfRequest < maxSeq - 1, 'the tampered record sits in the middle');
    });

    /** Copies the data dir, lets `tamper` change the database (triggers dropped), restarts a hub on it, runs audit verify. */
    async function verifyAfter(tamper: (db: Database.Database) => void): Promise<{ code: number; text: string; result: VerifyResult }> {
      const copy = tempDir('db-tampered-');
      cpSync(original, copy, { recursive: true });
      const db = new Database(join(copy, 'drawbridge.db'));
      db.exec('DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;');
      tamper(db);
      db.close();
      const tampered = await startHubProcess({ dataDir: copy });
      try {
        const text = await runCli(['audit', 'verify'], { env: tampered.env });
        const asJson = await runCli(['audit', 'verify', '--json'], { env: tampered.env });
        assert.notEqual(asJson.code, 0);
        return { code: text.code, text: text.stdout, result: JSON.parse(asJson.stdout) as VerifyResult };
      } finally {
        await stopProcess(tampered.child);
      }
    }

    it('the append-only triggers refuse UPDATE and DELETE while they exist', () => {
      const copy = tempDir('db-triggers-');
      cpSync(original, copy, { recursive: true });
      const db = new Database(join(copy, 'drawbridge.db'));
      try {
        assert.throws(() => db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 1").run(), /append-only/);
        assert.throws(() => db.prepare('DELETE FROM audit WHERE seq = 1').run(), /append-only/);
      } finally {
        db.close();
      }
    });

    it('an edited record is named', async () => {
      const { code, text, result } = await verifyAfter((db) => {
        db.prepare("UPDATE audit SET details = json_set(details, '$.reason', 'nothing to see') WHERE seq = ?").run(seqOfRequest);
      });
      assert.equal(code, 1);
      assert.match(text, new RegExp(`audit chain BROKEN at record ${seqOfRequest}: record ${seqOfRequest} was changed`));
      assert.deepEqual({ ok: result.ok, firstBadSeq: result.firstBadSeq, problem: result.problem }, { ok: false, firstBadSeq: seqOfRequest, problem: 'changed' });
      assert.equal(result.checked, seqOfRequest - 1);
    });

    it('an edited and re-sealed record breaks the link to the next one', async () => {
      const { result } = await verifyAfter((db) => {
        const record = rows(db).find((r) => r.seq === seqOfRequest) as AuditRecord;
        const forged = sealAuditRecord({ ...record, details: { ...record.details, reason: 'nothing to see' } });
        db.prepare('UPDATE audit SET details = ?, hash = ? WHERE seq = ?').run(JSON.stringify(forged.details), forged.hash, seqOfRequest);
      });
      assert.deepEqual({ ok: result.ok, firstBadSeq: result.firstBadSeq, problem: result.problem }, { ok: false, firstBadSeq: seqOfRequest + 1, problem: 'inserted-or-reordered' });
    });

    it('a deleted middle record is named at the next one', async () => {
      const { code, text, result } = await verifyAfter((db) => {
        db.prepare('DELETE FROM audit WHERE seq = ?').run(seqOfRequest);
      });
      assert.equal(code, 1);
      assert.match(text, new RegExp(`BROKEN at record ${seqOfRequest + 1}: .*records ${seqOfRequest}\\.\\.${seqOfRequest} were removed`));
      assert.deepEqual({ firstBadSeq: result.firstBadSeq, problem: result.problem }, { firstBadSeq: seqOfRequest + 1, problem: 'removed-before' });
    });

    it('a forged record appended with a wrong link is named', async () => {
      const { result } = await verifyAfter((db) => {
        const all = rows(db);
        const last = all[all.length - 1] as AuditRecord;
        // Sealed, so its own hash is right, but it claims to follow an older record.
        insert(db, sealAuditRecord({ seq: last.seq + 1, ts: last.ts + 1, actor: 'appr', action: 'access.approve', device: 'audit-dev', details: { request: 'ar_forged' }, prevHash: all[all.length - 2]?.hash as string }));
      });
      assert.deepEqual({ ok: result.ok, firstBadSeq: result.firstBadSeq, problem: result.problem }, { ok: false, firstBadSeq: maxSeq + 1, problem: 'inserted-or-reordered' });
    });

    it('a record inserted in the middle (later records renumbered) is caught where the chain breaks', async () => {
      const { result } = await verifyAfter((db) => {
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
