/**
 * Authorization happens when the action runs, not when the headers arrived: a request
 * whose body is sent after its user was removed, or its token rotated, is refused. And a
 * request may take only seconds to arrive.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { openTls, readResponse, requestHead } from './raw-http.js';
import { startHarness, type Harness } from './stream-harness.js';

describe('authorization at the moment of the action', { timeout: 60_000 }, () => {
  let h: Harness;

  before(async () => {
    h = await startHarness({ config: { server: { headersTimeout: '1s', requestTimeout: '2s' } } });
  });
  after(() => h.close());

  /** Sends the headers of a JSON request now; the returned function sends the body. */
  async function headersNow(token: string, method: string, path: string, body: unknown): Promise<() => Promise<{ status: number; body: string } | null>> {
    const payload = JSON.stringify(body);
    const socket = await openTls(h.hub.port, h.hub.caPem);
    const response = readResponse(socket);
    socket.write(requestHead(method, path, { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }));
    // Give the hub time to see the headers (and, before the fix, to authenticate on them).
    await sleep(200);
    return async () => {
      socket.write(payload);
      return response;
    };
  }

  const userNames = async (): Promise<string[]> => (await h.admin.request<{ users: { name: string }[] }>('GET', '/v1/users')).users.map((u) => u.name);

  it('refuses a request whose body arrives after its user was removed', async () => {
    const mallory = await h.user('mallory', 'admin');
    const sendBody = await headersNow(mallory.token, 'POST', '/v1/users', { name: 'backdoor', role: 'admin' });
    await h.admin.request('DELETE', '/v1/users/mallory');
    const response = await sendBody();
    assert.equal(response?.status, 401, response?.body);
    assert.match(response?.body ?? '', /UNAUTHENTICATED/);
    assert.ok(!(await userNames()).includes('backdoor'), 'the removed admin created a user');
  });

  it('refuses a request whose body arrives after its token was rotated', async () => {
    const trent = await h.user('trent', 'admin');
    const sendBody = await headersNow(trent.token, 'POST', '/v1/users', { name: 'backdoor-2', role: 'admin' });
    await h.admin.request('POST', '/v1/tokens/rotate', { name: 'trent' });
    const response = await sendBody();
    assert.equal(response?.status, 401, response?.body);
    assert.ok(!(await userNames()).includes('backdoor-2'), 'the rotated token created a user');
  });

  it('still runs a slow request whose principal stayed valid', async () => {
    const sendBody = await headersNow(h.hub.bootstrapAdminToken as string, 'POST', '/v1/users', { name: 'carol', role: 'operator' });
    const response = await sendBody();
    assert.equal(response?.status, 201, response?.body);
  });

  it('answers 408 and closes a request whose body does not arrive within server.requestTimeout', async () => {
    const socket = await openTls(h.hub.port, h.hub.caPem);
    const response = readResponse(socket);
    socket.write(requestHead('POST', '/v1/users', { authorization: `Bearer ${h.hub.bootstrapAdminToken as string}`, 'content-type': 'application/json', 'content-length': 100 }));
    socket.write('{"name":');
    const answered = await response;
    // Without the bound the socket stays open and this test runs into its own timeout.
    assert.ok(answered === null || answered.status === 408, `expected 408 or a closed socket, got ${answered?.status}`);
  });

  it('closes a connection whose headers do not arrive within server.headersTimeout', async () => {
    const socket = await openTls(h.hub.port, h.hub.caPem);
    const response = readResponse(socket);
    socket.write('GET /v1/whoami HTTP/1.1\r\nhost: 127.0.0.1\r\n');
    const answered = await response;
    assert.ok(answered === null || answered.status === 408, `expected 408 or a closed socket, got ${answered?.status}`);
  });

  it('does not buffer the body of a caller without a valid token', async () => {
    const socket = await openTls(h.hub.port, h.hub.caPem);
    const response = readResponse(socket);
    // Headers only, body never sent: the refusal comes at once, not after the body.
    socket.write(requestHead('POST', '/v1/users', { authorization: 'Bearer dbp_nope', 'content-type': 'application/json', 'content-length': 60_000 }));
    const answered = await response;
    assert.equal(answered?.status, 401);
  });
});
