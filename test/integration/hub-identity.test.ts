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
import { issueLeaf, makeCa, type TestCa, type TestLeaf } from '../tls-pki.js';

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

  it('accepts the pinned CA for the host names its certificate names', async () => {
    const hub = await hubOn(issueLeaf(ca, 'right', ['DNS:localhost', 'IP:127.0.0.1']));
    assert.equal(await whoami(hub, '127.0.0.1'), 'admin');
    assert.equal(await whoami(hub, 'localhost'), 'admin');
  });
});
