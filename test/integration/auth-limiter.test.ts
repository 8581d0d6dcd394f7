/**
 * The failed-authentication limiter applies to failing callers only: a valid token or
 * enrollment secret is never refused because others failed from the same address. Behind a
 * trusted reverse proxy the client is the forwarded address; nobody else's X-Forwarded-For
 * is believed. Failures are audited in aggregate, so a flood from rotating addresses writes
 * a bounded number of records.
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { rawRequest } from './raw-http.js';
import { startHarness, type Harness } from './stream-harness.js';

const BAD_TOKEN = 'dbp_0123456789abcdef_' + 'x'.repeat(43);

describe('failed-authentication limiter', { timeout: 60_000 }, () => {
  let h: Harness;
  const get = (headers: Record<string, string>): Promise<number | undefined> =>
    rawRequest(h.hub.port, h.hub.caPem, 'GET', '/v1/whoami', headers).then((r) => r?.status);

  before(async () => {
    h = await startHarness({ config: { limits: { authFailuresPerMinute: 3 } } });
  });
  after(() => h.close());

  it('limits the failing caller, and still lets a valid token through from the same address', async () => {
    const statuses: (number | undefined)[] = [];
    for (let i = 0; i < 5; i++) statuses.push(await get({ authorization: `Bearer ${BAD_TOKEN}` }));
    assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
    // Before the fix the limit was checked before the token: this was a 429.
    assert.equal(await get({ authorization: `Bearer ${h.hub.bootstrapAdminToken as string}` }), 200);
    const { name } = await h.admin.request<{ name: string }>('GET', '/v1/whoami');
    assert.equal(name, 'admin');
  });

  it('lets a valid enrollment through from a limited address', async () => {
    // 127.0.0.1 is over its budget from the test above (the window is a minute).
    assert.equal(await get({}), 429);
    // Before the fix the enrollment was refused with RATE_LIMITED before its secret was looked at.
    await h.enroll('limited-dev', '127.0.0.1:9');
    const device = await h.admin.request<{ enrolled: boolean }>('GET', '/v1/devices/limited-dev');
    assert.equal(device.enrolled, true);
  });
});

describe('a trusted reverse proxy', { timeout: 60_000 }, () => {
  let h: Harness;
  const get = (forwardedFor: string | undefined, token = BAD_TOKEN): Promise<number | undefined> =>
    rawRequest(h.hub.port, h.hub.caPem, 'GET', '/v1/whoami', { authorization: `Bearer ${token}`, ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}) }).then((r) => r?.status);

  before(async () => {
    h = await startHarness({ config: { server: { trustedProxies: ['127.0.0.1'] }, limits: { authFailuresPerMinute: 2, authFailureAuditSources: 100 } } });
  });
  after(() => h.close());

  it('limits the forwarded client, not the proxy, and ignores hops the client wrote', async () => {
    assert.deepEqual([await get('203.0.113.5'), await get('203.0.113.5'), await get('203.0.113.5')], [401, 401, 429]);
    // Another client behind the same proxy is not limited.
    assert.equal(await get('203.0.113.6'), 401);
    // A forged left-most hop does not change who the client is (the proxy appended the real one).
    assert.equal(await get('198.51.100.1, 203.0.113.5'), 429);
  });

  it('audits a flood from rotating addresses with a bounded number of records', async () => {
    const flood = 1000;
    for (let i = 0; i < flood; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => get(`10.77.${(i + j) >> 8}.${(i + j) & 255}`)));
    }
    await h.hub.close(); // flushes the open windows
    const db = new Database(join(h.hub.dataDir, 'drawbridge.db'), { readonly: true });
    try {
      const rows = db.prepare("SELECT details FROM audit WHERE action = 'auth.failure'").all() as { details: string }[];
      const counted = rows.reduce((sum, r) => sum + Number((JSON.parse(r.details) as { count: number }).count), 0);
      const fromFlood = rows.filter((r) => r.details.includes('10.77.') || r.details.includes('"otherKeys":true')).length;
      // Every failure is counted; records are bounded by the distinct sources audited per window.
      assert.ok(counted >= flood, `counted ${counted} of ${flood + 6} failures`);
      assert.ok(fromFlood <= 101, `${fromFlood} records for ${flood} failures`);
      process.stdout.write(`# flood: ${flood} failures from ${flood} addresses -> ${fromFlood} audit records (${(fromFlood / flood).toFixed(3)} per failure; before: 1)\n`);
    } finally {
      db.close();
    }
  });
});
