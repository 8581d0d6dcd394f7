/**
 * The hub's identity when it runs on an operator's certificate (--tls-cert): the host name
 * of the URL is checked as well as the pin, so a certificate for another host from the
 * pinned CA (a corporate root, a public intermediate) is refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HubClient } from '../../src/client/hub-client.js';
import { DrawbridgeError } from '../../src/errors.js';
import { startHub, type HubHandle } from '../../src/hub/hub.js';
import { pinOf } from '../../src/protocol/pins.js';
import { silentLogger } from '../../src/util/logger.js';
import { enrollDevice } from '../../src/agent/enroll.js';
import { startAgent } from '../../src/agent/agent.js';
import { openTunnel } from '../../src/client/tunnel.js';
import { exchange } from '../helpers.js';
import { issueLeaf, makeCa, makeIntermediate, type TestCa, type TestLeaf } from '../tls-pki.js';
import { echoServer } from './stream-harness.js';

describe("the hub's identity on an operator-supplied certificate", { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'db-identity-'));
  let ca: TestCa;
  const hubs: HubHandle[] = [];
  const clients: HubClient[] = [];

  const hubOn = async (leaf: TestLeaf): Promise<HubHandle> => {
    const hub = await startHub({ dataDir: mkdtempSync(join(dir, 'hub-')), host: '127.0.0.1', port: 0, logger: silentLogger(), tlsCertFile: leaf.chainFile, tlsKeyFile: leaf.keyFile });
    hubs.push(hub);
    return hub;
  };
  const whoami = async (hub: HubHandle, host: string): Promise<string> => {
    const client = await HubClient.connect({ hubUrl: `https://${host}:${hub.port}`, token: hub.bootstrapAdminToken as string, caPin: pinOf(ca.pem) }, { cacheDir: mkdtempSync(join(dir, 'client-')) });
    clients.push(client);
    return (await client.request<{ name: string }>('GET', '/v1/whoami')).name;
  };

  before(() => {
    ca = makeCa(dir, 'corp-root');
  });
  after(async () => {
    for (const c of clients) await c.close();
    for (const h of hubs) await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a certificate from the pinned CA that was issued for another host', async () => {
    const hub = await hubOn(issueLeaf(ca, 'elsewhere', ['DNS:other.example']));
    assert.equal(hub.caPin, pinOf(ca.pem), 'the hub advertises the CA pin');
    for (const host of ['127.0.0.1', 'localhost']) {
      // Before the fix this answered "admin": the chain contained the pinned CA, the name was never looked at.
      await assert.rejects(whoami(hub, host), (error: unknown) => {
        assert.ok(error instanceof DrawbridgeError, String(error));
        assert.equal(error.code, 'TLS_PIN_MISMATCH');
        assert.match(error.message, /altnames|does not match/i);
        return true;
      });
    }
  });

  it('on a private PKI with an intermediate, advertises the root (last in the chain file), and agents and clients pinning it work end to end; another pin is refused', async () => {
    const intermediate = makeIntermediate(ca, 'corp-intermediate');
    const hub = await hubOn(issueLeaf(intermediate, 'private', ['DNS:localhost', 'IP:127.0.0.1']));
    assert.equal(hub.caPin, pinOf(ca.pem), 'the pin of the chain root');
    const admin = await HubClient.connect({ hubUrl: hub.url, token: hub.bootstrapAdminToken as string, caPin: hub.caPin }, { cacheDir: mkdtempSync(join(dir, 'client-')) });
    clients.push(admin);
    const echo = await echoServer();
    try {
      // The enrollment token carries the root pin; the agent needs nothing else.
      const { enrollmentToken } = await admin.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name: 'custom-tls' });
      const configPath = join(mkdtempSync(join(dir, 'agent-')), 'agent.yaml');
      await enrollDevice({ token: enrollmentToken, target: `127.0.0.1:${echo.port}`, configPath, edgeName: 'private-pki' });
      const agent = await startAgent({ configPath, logger: silentLogger() });
      try {
        await agent.waitOnline(15_000);
        const tunnel = await openTunnel({ client: admin, device: 'custom-tls' });
        assert.equal((await exchange(tunnel.port, 'over a private PKI')).toString(), 'over a private PKI');
        await tunnel.close();
      } finally {
        await agent.close();
      }
    } finally {
      await echo.close();
    }
    await assert.rejects(
      (async () => {
        const client = await HubClient.connect({ hubUrl: hub.url, token: hub.bootstrapAdminToken as string, caPin: `sha256:${'ab'.repeat(32)}` }, { cacheDir: mkdtempSync(join(dir, 'client-')) });
        clients.push(client);
        return client.request('GET', '/v1/whoami');
      })(),
      (error: unknown) => error instanceof DrawbridgeError && error.code === 'TLS_PIN_MISMATCH',
    );
  });

  it('accepts the pinned CA for the host names its certificate names', async () => {
    const hub = await hubOn(issueLeaf(ca, 'right', ['DNS:localhost', 'IP:127.0.0.1']));
    assert.equal(await whoami(hub, '127.0.0.1'), 'admin');
    assert.equal(await whoami(hub, 'localhost'), 'admin');
  });
});
