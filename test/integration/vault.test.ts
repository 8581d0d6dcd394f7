/**
 * The vault over the REST API on a real hub: versions, check-and-set, soft delete, undelete,
 * destroy, the version limit, roles, rekey, audit, and no value in clear in the data dir.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { HubClient } from '../../src/client/hub-client.js';
import type { DrawbridgeError } from '../../src/errors.js';
import type { AuditView, SecretDetailView, SecretView } from '../../src/protocol/api-types.js';
import { filesContaining } from '../plaintext-scan.js';
import { startHarness, type Harness } from './stream-harness.js';

const code = (c: string) => (e: DrawbridgeError) => e.code === c;
const b64 = (text: string): string => Buffer.from(text).toString('base64');
const path = (name: string, suffix = ''): string => `/v1/secrets/${encodeURIComponent(name)}${suffix}`;
const VALUE = 'correct-horse-battery-staple-7f3a';

describe('vault', { timeout: 60_000 }, () => {
  let h: Harness;
  let auditor: HubClient;
  let operator: HubClient;
  let approver: HubClient;

  before(async () => {
    h = await startHarness({ config: { vault: { maxVersions: 3, maxValueBytes: '1KiB' } } });
    auditor = (await h.user('aud', 'auditor')).client;
    operator = (await h.user('op', 'operator')).client;
    approver = (await h.user('appr', 'approver')).client;
  });
  after(async () => h?.close());

  const put = (name: string, value: string, cas?: number) =>
    h.admin.request<{ name: string; version: number }>('POST', path(name), { valueBase64: b64(value), ...(cas !== undefined ? { cas } : {}) });
  const get = (name: string, version?: number) =>
    h.admin.request<{ name: string; version: number; valueBase64: string }>('GET', path(name, `/value${version ? `?version=${version}` : ''}`)).then((r) => ({ ...r, value: Buffer.from(r.valueBase64, 'base64').toString() }));

  it('writes versions and reads each back; check-and-set refuses a stale version with 409', async () => {
    assert.deepEqual(await put('plant-3/db-password', VALUE, 0), { name: 'plant-3/db-password', version: 1 });
    assert.deepEqual(await put('plant-3/db-password', `${VALUE}-2`, 1), { name: 'plant-3/db-password', version: 2 });
    await assert.rejects(put('plant-3/db-password', 'stale', 1), (e: DrawbridgeError) => e.code === 'CAS_MISMATCH' && e.status === 409 && e.message.includes('version 2'));
    await assert.rejects(put('plant-3/db-password', 'exists', 0), code('CAS_MISMATCH'));
    assert.equal((await get('plant-3/db-password')).value, `${VALUE}-2`);
    assert.equal((await get('plant-3/db-password', 1)).value, VALUE);
  });

  it('refuses bad input with precise codes and writes nothing', async () => {
    await assert.rejects(put('Bad/Name', 'x'), code('INVALID_NAME'));
    await assert.rejects(put('too-big', 'x'.repeat(1025)), (e: DrawbridgeError) => e.code === 'PAYLOAD_TOO_LARGE' && e.message.includes('1024'));
    await assert.rejects(h.admin.request('POST', path('x'), { valueBase64: 'not base64!' }), code('VALIDATION_FAILED'));
    await assert.rejects(h.admin.request('POST', path('x'), { valueBase64: b64('v'), extra: 1 }), code('VALIDATION_FAILED'));
    await assert.rejects(get('no-such'), code('UNKNOWN_SECRET'));
    await assert.rejects(get('plant-3/db-password', 99), code('UNKNOWN_SECRET'));
    await assert.rejects(h.admin.request('POST', path('plant-3/db-password', '/allow'), { edge: 'nope' }), code('UNKNOWN_EDGE'));
    await assert.rejects(h.admin.request('POST', path('plant-3/db-password', '/allow'), { device: 'nope' }), code('UNKNOWN_DEVICE'));
    await assert.rejects(h.admin.request('POST', path('plant-3/db-password', '/allow'), { tag: 'no-equals' }), code('VALIDATION_FAILED'));
    await assert.rejects(h.admin.request('POST', path('plant-3/db-password', '/allow'), { tag: 'a=b', device: 'x' }), code('VALIDATION_FAILED'));
    const { secrets } = await h.admin.request<{ secrets: SecretView[] }>('GET', '/v1/secrets');
    assert.deepEqual(secrets.map((s) => s.name), ['plant-3/db-password']);
  });

  it('soft-deletes, undeletes and destroys versions', async () => {
    await h.admin.request('POST', path('plant-3/db-password', '/delete'), {});
    await assert.rejects(get('plant-3/db-password'), (e: DrawbridgeError) => e.code === 'SECRET_DELETED' && e.status === 410);
    let list = (await h.admin.request<{ secrets: SecretView[] }>('GET', '/v1/secrets')).secrets;
    assert.equal(list[0]?.live, false);
    await assert.rejects(h.admin.request('POST', path('plant-3/db-password', '/delete'), {}), code('INVALID_STATE'));
    await h.admin.request('POST', path('plant-3/db-password', '/undelete'), {});
    assert.equal((await get('plant-3/db-password')).version, 2);
    await h.admin.request('POST', path('plant-3/db-password', '/destroy'), { version: 1 });
    await assert.rejects(get('plant-3/db-password', 1), code('SECRET_DESTROYED'));
    await assert.rejects(h.admin.request('POST', path('plant-3/db-password', '/undelete'), { version: 1 }), code('SECRET_DESTROYED'));
    await assert.rejects(h.admin.request('POST', path('plant-3/db-password', '/destroy'), {}), code('VALIDATION_FAILED'));
    list = (await h.admin.request<{ secrets: SecretView[] }>('GET', '/v1/secrets')).secrets;
    assert.equal(list[0]?.live, true);
  });

  it('keeps at most vault.maxVersions versions, dropping the oldest', async () => {
    for (let i = 0; i < 4; i++) await put('rotating', `value-${i}`);
    const detail = await h.admin.request<SecretDetailView>('GET', path('rotating'));
    assert.deepEqual(detail.versions.map((v) => v.version), [4, 3, 2]);
    await assert.rejects(get('rotating', 1), code('UNKNOWN_SECRET'));
  });

  it('auditors see metadata and audit only; operators and approvers see nothing of the vault', async () => {
    assert.ok((await auditor.request<{ secrets: SecretView[] }>('GET', '/v1/secrets')).secrets.length > 0);
    await auditor.request('GET', path('rotating'));
    await auditor.request('GET', path('rotating', '/status'));
    await assert.rejects(auditor.request('GET', path('rotating', '/value')), code('FORBIDDEN'));
    await assert.rejects(auditor.request('POST', path('rotating'), { valueBase64: b64('x') }), code('FORBIDDEN'));
    for (const client of [operator, approver]) {
      await assert.rejects(client.request('GET', '/v1/secrets'), code('FORBIDDEN'));
      await assert.rejects(client.request('GET', path('rotating')), code('FORBIDDEN'));
      await assert.rejects(client.request('GET', path('rotating', '/status')), code('FORBIDDEN'));
      await assert.rejects(client.request('GET', path('rotating', '/value')), code('FORBIDDEN'));
    }
  });

  it('rekey re-wraps every data key with a new key-encryption key; values still read', async () => {
    const result = await h.admin.request<{ kekId: string; rewrapped: number; retired: string[] }>('POST', '/v1/vault/rekey');
    assert.ok(result.rewrapped >= 4, `rewrapped ${result.rewrapped}`);
    assert.equal(result.retired.length, 1);
    assert.equal((await get('rotating')).value, 'value-3');
    assert.equal((await get('plant-3/db-password')).value, `${VALUE}-2`);
  });

  it('audits every action with the version, never a value; no value is in clear in the data directory', async () => {
    const { records } = await h.admin.request<{ records: AuditView[] }>('GET', '/v1/audit?limit=1000');
    const actions = new Set(records.map((r) => r.action));
    for (const action of ['secret.put', 'secret.read', 'secret.delete', 'secret.undelete', 'secret.destroy', 'vault.rekey']) assert.ok(actions.has(action), action);
    const read = records.find((r) => r.action === 'secret.read' && r.details['version'] === 1);
    assert.equal(read?.details['secret'], 'plant-3/db-password');
    assert.ok(!JSON.stringify(records).includes(VALUE));
    assert.deepEqual(filesContaining([h.hub.dataDir], VALUE), []);
    assert.deepEqual(filesContaining([h.hub.dataDir], 'value-3'), []);
  });
});
