/**
 * Pinning the hub's own public key (spki:sha256:...) for a hub on a certificate from a
 * public CA: the real CLI and agent check the chain against the system roots (here a test
 * root added with NODE_EXTRA_CA_CERTS, as a public CA is), the host name, and the key.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseHubConfig } from '../../src/hub/config.js';
import { startHub, type HubHandle } from '../../src/hub/hub.js';
import { keyPinOf } from '../../src/protocol/pins.js';
import { silentLogger } from '../../src/util/logger.js';
import { cleanup, runCli, spawnCli, tempDir, waitFor } from '../helpers.js';
import { issueLeaf, makeCa, type TestCa, type TestLeaf } from '../tls-pki.js';

describe('a key pin with a certificate from a public CA', { timeout: 120_000 }, () => {
  let publicCa: TestCa;
  let leaf: TestLeaf;
  let hub: HubHandle;
  const hubs: HubHandle[] = [];

  const startOn = async (cert: TestLeaf): Promise<HubHandle> => {
    const started = await startHub({
      dataDir: tempDir('db-keypin-hub-'),
      host: '127.0.0.1',
      port: 0,
      logger: silentLogger(),
      tlsCertFile: cert.chainFile,
      tlsKeyFile: cert.keyFile,
      config: parseHubConfig({ server: { advertisedPin: 'spki' } }, 'test'),
    });
    hubs.push(started);
    return started;
  };
  const cli = (args: string[], target: HubHandle, pin: string, trustPublicCa = true): ReturnType<typeof runCli> =>
    runCli(args, {
      env: {
        DRAWBRIDGE_HUB: target.url,
        DRAWBRIDGE_TOKEN: target.bootstrapAdminToken as string,
        DRAWBRIDGE_CA_PIN: pin,
        DRAWBRIDGE_CONFIG_DIR: tempDir(),
        ...(trustPublicCa ? { NODE_EXTRA_CA_CERTS: publicCa.certFile } : { NODE_EXTRA_CA_CERTS: '' }),
      },
    });

  before(async () => {
    publicCa = makeCa(tempDir('db-public-ca-'), 'public-root');
    leaf = issueLeaf(publicCa, 'hub', ['DNS:localhost', 'IP:127.0.0.1']);
    hub = await startOn(leaf);
  });
  after(async () => {
    for (const h of hubs) await h.close();
    await cleanup();
  });

  it('advertises the key pin of its certificate (server.advertisedPin: spki)', () => {
    assert.equal(hub.caPin, keyPinOf(leaf.pem));
    assert.match(hub.caPin, /^spki:sha256:[A-Za-z0-9+/]{43}=$/);
  });

  it('lets the CLI in with the key pin, written in base64 or in hex', async () => {
    const listed = await cli(['devices', 'list', '--json'], hub, hub.caPin);
    assert.equal(listed.code, 0, listed.stderr);
    const spki = new X509Certificate(leaf.pem).publicKey.export({ type: 'spki', format: 'der' });
    const hex = 'spki:sha256:' + createHash('sha256').update(spki).digest('hex');
    const withHex = await cli(['devices', 'list', '--json'], hub, hex);
    assert.equal(withHex.code, 0, withHex.stderr);
  });

  it('refuses another key, even with a valid chain for the right name', async () => {
    const other = issueLeaf(publicCa, 'impostor', ['DNS:localhost', 'IP:127.0.0.1']);
    const refused = await cli(['devices', 'list'], hub, keyPinOf(other.pem));
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /\[TLS_PIN_MISMATCH\]\n$/);
  });

  it('refuses a chain the system does not trust, even with the right key', async () => {
    const refused = await cli(['devices', 'list'], hub, hub.caPin, false);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /\[TLS_PIN_MISMATCH\]\n$/);
  });

  it('refuses the right key on a certificate for another host name', async () => {
    const elsewhere = issueLeaf(publicCa, 'hub-elsewhere', ['DNS:other.example'], { keyFile: leaf.keyFile });
    const other = await startOn(elsewhere);
    assert.equal(other.caPin, hub.caPin, 'same key, same pin');
    const refused = await cli(['devices', 'list'], other, other.caPin);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /altnames|does not match/i);
  });

  it('enrolls an agent from a token that carries the key pin, and the agent comes online', async () => {
    const added = await cli(['devices', 'add', 'key-pinned', '--json'], hub, hub.caPin);
    assert.equal(added.code, 0, added.stderr);
    const token = (JSON.parse(added.stdout) as { enrollmentToken: string }).enrollmentToken;
    const configPath = join(tempDir('db-keypin-agent-'), 'agent.yaml');
    const env = { DRAWBRIDGE_CONFIG_DIR: tempDir(), NODE_EXTRA_CA_CERTS: publicCa.certFile };
    const enrolled = await runCli(['agent', 'enroll', token, '--target', '127.0.0.1:9', '--config', configPath], { env });
    assert.equal(enrolled.code, 0, enrolled.stderr);
    await spawnCli(['agent', 'run', '--config', configPath], { env });
    await waitFor(() => hub.services.registry.get('key-pinned') !== undefined, 20_000, 'the agent online');
  });
});
