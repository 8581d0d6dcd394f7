/**
 * Terminal injection, at the input: free-text fields that people later read in listings and
 * the audit log refuse control characters with VALIDATION_FAILED naming the field, and
 * nothing is written; API answers carry the exact value with every control character
 * escaped in the JSON text.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { HubClient } from '../../src/client/hub-client.js';
import type { AccessView } from '../../src/protocol/api-types.js';
import { RAW_CONTROL } from '../helpers.js';
import { refusal } from './api-helpers.js';
import { rawRequest } from './raw-http.js';
import { startHarness, type Harness } from './stream-harness.js';

const ANSI = 'INC-1\u001b[2K\u001b[1A\u001b[2K';

describe('control characters in API input', { timeout: 60_000 }, () => {
  let h: Harness;
  let operator: HubClient;
  let approver: HubClient;

  before(async () => {
    h = await startHarness();
    await h.admin.request('POST', '/v1/devices', { name: 'plc-1' });
    operator = (await h.user('olga', 'operator')).client;
    approver = (await h.user('abe', 'approver')).client;
  });

  after(async () => {
    await h?.close();
  });

  it('an access request reason with ANSI escapes is refused, naming the field, and no request is made', async () => {
    const error = await refusal(operator.request('POST', '/v1/access', { device: 'plc-1', durationMs: 60_000, reason: ANSI }));
    assert.equal(error.code, 'VALIDATION_FAILED');
    assert.match(error.message, /body\.reason: must not contain control characters \(found \\x1b at position 5\)/);
    const { requests } = await h.admin.request<{ requests: AccessView[] }>('GET', '/v1/access');
    assert.deepEqual(requests, []);
  });

  it('so are a review note, a deny reason and a tag value; the request stays pending', async () => {
    const request = await operator.request<AccessView>('POST', '/v1/access', { device: 'plc-1', durationMs: 60_000, reason: 'INC-2: plain text' });
    const note = await refusal(approver.request('POST', `/v1/access/${request.id}/approve`, { note: 'ok\u009b2J' }));
    assert.equal(note.code, 'VALIDATION_FAILED');
    assert.match(note.message, /body\.note: must not contain control characters \(found \\x9b/);
    const deny = await refusal(approver.request('POST', `/v1/access/${request.id}/deny`, { reason: 'no\u202eon' }));
    assert.match(deny.message, /body\.reason: must not contain control characters \(found \\u202e/);
    assert.equal((await approver.request<AccessView>('GET', `/v1/access/${request.id}`)).status, 'pending');
    const tag = await refusal(h.admin.request('POST', '/v1/devices', { name: 'plc-2', tags: { site: 'a\nb' } }));
    assert.match(tag.message, /body\.tags\.site: must not contain control characters \(found \\n/);
    assert.equal((await h.admin.request<{ devices: unknown[] }>('GET', '/v1/devices')).devices.length, 1);
  });

  it('an unauthenticated enrollment naming a device or host with control characters is refused before anything is audited', async () => {
    const { records: before } = await h.admin.request<{ records: unknown[] }>('GET', '/v1/audit?order=desc&limit=1');
    const enroll = {
      id: '0123456789abcdef',
      secret: 'x'.repeat(43),
      device: 'plc-1\u001b[2J',
      publicKey: 'A'.repeat(44),
      edge: { name: 'edge-1', hostname: 'host\u001b]0;owned\u0007', signingKey: 'A'.repeat(44), encryptionKey: 'A'.repeat(44), signature: 'A'.repeat(88) },
    };
    const body = JSON.stringify(enroll);
    const answer = await rawRequest(h.hub.port, h.hub.caPem, 'POST', '/v1/enroll', { 'content-type': 'application/json' }, body);
    assert.equal(answer?.status, 400);
    const error = (JSON.parse(answer?.body ?? '{}') as { error: { code: string; message: string } }).error;
    assert.equal(error.code, 'VALIDATION_FAILED');
    assert.match(error.message, /body\.device: /);
    assert.match(error.message, /body\.edge\.hostname: must not contain control characters/);
    const { records: after } = await h.admin.request<{ records: unknown[] }>('GET', '/v1/audit?order=desc&limit=1');
    assert.deepEqual(after, before, 'no audit record for a malformed request');
  });

  it('answers carry a stored control character exactly, escaped in the JSON text', async () => {
    // A reason stored before input was checked (the service takes what the API let through).
    const principal = { name: 'olga', role: 'operator' as const, tokenId: 'x' };
    const stored = await h.hub.services.access.request(principal, 'plc-1', 60_000, `old \u009b2J \u202eevil ${ANSI}`);
    const answer = await rawRequest(h.hub.port, h.hub.caPem, 'GET', `/v1/access/${stored.id}`, { authorization: `Bearer ${h.hub.bootstrapAdminToken}` });
    assert.equal(answer?.status, 200);
    assert.doesNotMatch(answer?.body ?? '', RAW_CONTROL);
    assert.match(answer?.body ?? '', /\\u009b2J \\u202eevil INC-1\\u001b\[2K/);
    assert.equal((JSON.parse(answer?.body ?? '{}') as AccessView).reason, stored.reason);
  });
});
