/** The hub.yaml settings of the hardening work: safe defaults that are on, and refusals that name their path. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DrawbridgeError } from '../../src/errors.js';
import { defaultHubConfig, parseHubConfig } from '../../src/hub/config.js';
import { startHub } from '../../src/hub/hub.js';
import { silentLogger } from '../../src/util/logger.js';

function refused(value: unknown, ...messages: RegExp[]): void {
  assert.throws(() => parseHubConfig(value, 'hub.yaml'), (error: unknown) => {
    assert.ok(error instanceof DrawbridgeError);
    assert.equal(error.code, 'CONFIG_INVALID');
    for (const m of messages) assert.match(error.message, m);
    return true;
  });
}

describe('hub config: hardening settings', () => {
  it('has safe defaults, every limit on', () => {
    const { server, access, limits } = defaultHubConfig();
    assert.deepEqual(server, {
      headersTimeout: 10_000,
      requestTimeout: 20_000,
      trustedProxies: [],
      firstRequestTimeout: 10_000,
      maxConnections: 16_384,
      maxConnectionsPerAddress: 256,
      advertisedPin: 'ca',
    });
    assert.equal(access.maxPendingRequestsPerPrincipal, 20);
    assert.equal(limits.authFailureAuditWindow, 60_000);
    assert.equal(limits.authFailureAuditSources, 256);
  });

  it('refuses timeouts out of range or in the wrong order, naming the path', () => {
    refused({ server: { headersTimeout: '30s', requestTimeout: '10s' } }, /server\.headersTimeout: must not be longer than server\.requestTimeout/);
    refused({ server: { requestTimeout: '1h' } }, /server\.requestTimeout: at most 5m/);
    refused({ server: { firstRequestTimeout: '0s' } }, /server\.firstRequestTimeout: at least 1s/);
  });

  it('reads trusted proxies as addresses and CIDR ranges, and refuses anything else with its index', () => {
    assert.deepEqual(parseHubConfig({ server: { trustedProxies: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'] } }, 'x').server.trustedProxies, ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7']);
    refused({ server: { trustedProxies: ['10.0.0.0/8', 'proxy.example.net'] } }, /server\.trustedProxies\.1: "proxy\.example\.net" is not an IP address or CIDR range/);
  });

  it('refuses an auto-approve rule without tags unless it says matchAll, and one longer than access.maxDuration', () => {
    refused({ access: { autoApprove: [{ maxDuration: '1h' }] } }, /access\.autoApprove\.0\.tags: a rule without tags would approve requests for every device/);
    refused({ access: { autoApprove: [{ tags: {}, maxDuration: '1h' }] } }, /access\.autoApprove\.0\.tags/);
    refused({ access: { autoApprove: [{ tags: { env: 'lab' }, matchAll: true, maxDuration: '1h' }] } }, /access\.autoApprove\.0\.matchAll/);
    refused({ access: { maxDuration: '2h', autoApprove: [{ tags: { env: 'lab' }, maxDuration: '1h' }, { tags: { env: 'dev' }, maxDuration: '3h' }] } }, /access\.autoApprove\.1\.maxDuration: must not be longer than access\.maxDuration/);
    const all = parseHubConfig({ access: { autoApprove: [{ matchAll: true, maxDuration: '30m' }] } }, 'x');
    assert.deepEqual(all.access.autoApprove, [{ tags: {}, matchAll: true, maxDuration: 1_800_000 }]);
  });

  it('refuses a key pin for the hub\'s own certificate (it is pinned by its CA)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'db-unit-pin-'));
    try {
      await assert.rejects(
        startHub({ dataDir: dir, host: '127.0.0.1', port: 0, logger: silentLogger(), config: parseHubConfig({ server: { advertisedPin: 'spki' } }, 'x') }),
        /server\.advertisedPin: spki needs --tls-cert/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
