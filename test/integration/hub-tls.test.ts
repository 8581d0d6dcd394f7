/**
 * The hub's own TLS: TLS 1.2 only with ECDHE and AEAD suites, and a server certificate
 * that renews itself well before it expires (at start and daily, same CA, no restart).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { after, describe, it } from 'node:test';
import { HubClient } from '../../src/client/hub-client.js';
import { CertificateRenewal } from '../../src/hub/certificate-renewal.js';
import { ensureHubPki, serverContextOptions, writeServerCertificate } from '../../src/hub/certificates.js';
import { startHub, type HubHandle } from '../../src/hub/hub.js';
import { ManualClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';

const DAY = 86_400_000;
const dir = mkdtempSync(join(tmpdir(), 'db-hub-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function handshake(hub: HubHandle, options: { maxVersion?: 'TLSv1.2'; ciphers?: string } = {}): Promise<{ cipher: string; version: string; certificate: PeerCertificate }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: hub.port, ca: hub.caPem, ...options }, () => {
      resolve({ cipher: socket.getCipher().name, version: socket.getProtocol() ?? '', certificate: socket.getPeerCertificate() });
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

const serialOf = (pem: string): string => new X509Certificate(pem).serialNumber;

describe("the hub's TLS", { timeout: 60_000 }, () => {
  it('offers TLS 1.2 only with ECDHE key exchange and AEAD ciphers', async () => {
    const hub = await startHub({ dataDir: join(dir, 'ciphers'), host: '127.0.0.1', port: 0, logger: silentLogger() });
    try {
      assert.equal((await handshake(hub)).version, 'TLSv1.3');
      const gcm = await handshake(hub, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
      assert.deepEqual([gcm.version, gcm.cipher], ['TLSv1.2', 'ECDHE-ECDSA-AES128-GCM-SHA256']);
      const chacha = await handshake(hub, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' });
      assert.equal(chacha.cipher, 'ECDHE-ECDSA-CHACHA20-POLY1305');
      // Node's default list offers these CBC suites to a TLS 1.2 client; the hub must not.
      for (const cbc of ['ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES256-SHA384', 'ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA']) {
        await assert.rejects(handshake(hub, { maxVersion: 'TLSv1.2', ciphers: cbc }), /handshake failure|no shared cipher|alert/i, cbc);
      }
    } finally {
      await hub.close();
    }
  });

  it('renews an almost expired server certificate at start, from the same CA, and clients pinning the CA still connect', async () => {
    const dataDir = join(dir, 'renew-at-start');
    const now = Date.now();
    const pki = await ensureHubPki(dataDir, ['127.0.0.1']);
    const old = await writeServerCertificate(dataDir, ['127.0.0.1'], { notBefore: now - 729 * DAY, notAfter: now + DAY });
    const hub = await startHub({ dataDir, host: '127.0.0.1', port: 0, logger: silentLogger() });
    try {
      assert.equal(hub.caPin, pki.caPin, 'the CA, and so every pin, is unchanged');
      const served = (await handshake(hub)).certificate;
      // Before the fix the hub served the old certificate, one day from expiry.
      assert.notEqual(served.serialNumber, serialOf(old.cert));
      assert.ok(Date.parse(served.valid_to) > now + 700 * DAY, `valid to ${served.valid_to}`);
      assert.equal(serialOf(readFileSync(join(dataDir, 'server.pem'), 'utf8')), served.serialNumber, 'the renewed certificate is kept for the next start');
      const client = await HubClient.connect({ hubUrl: hub.url, token: hub.bootstrapAdminToken ?? readFileSync(join(dataDir, 'admin.token'), 'utf8').trim(), caPin: hub.caPin }, { cacheDir: join(dir, 'client-ca') });
      assert.equal((await client.request<{ name: string }>('GET', '/v1/whoami')).name, 'admin');
      await client.close();
    } finally {
      await hub.close();
    }
  });

  it('issues the certificate again when it does not name the public URL host', async () => {
    const dataDir = join(dir, 'new-public-url');
    await ensureHubPki(dataDir, ['127.0.0.1']);
    const hub = await startHub({ dataDir, host: '127.0.0.1', port: 0, publicUrl: 'https://drawbridge.example.net:8443', logger: silentLogger() });
    try {
      const served = new X509Certificate((await handshake(hub)).certificate.raw);
      assert.equal(served.checkHost('drawbridge.example.net'), 'drawbridge.example.net');
    } finally {
      await hub.close();
    }
  });

  it('checks daily and swaps a renewed certificate in when a third of its lifetime is left', async () => {
    const dataDir = join(dir, 'renew-daily');
    const clock = new ManualClock(Date.now());
    await ensureHubPki(dataDir, ['127.0.0.1']);
    // Two years long with a third of that and half a day left: not due today, due tomorrow.
    const lifetime = 730 * DAY;
    const current = await writeServerCertificate(dataDir, ['127.0.0.1'], { notBefore: clock.now() - (lifetime - lifetime / 3 - DAY / 2), notAfter: clock.now() + lifetime / 3 + DAY / 2 });
    const renewal = new CertificateRenewal({ dataDir, hosts: ['127.0.0.1'], clock, logger: silentLogger() }, current);
    const applied: string[] = [];
    assert.equal(await renewal.check(), false, 'not due at start');
    renewal.start((tls) => applied.push(tls.cert));
    await clock.advance(DAY);
    await renewal.check(); // the daily check's own run, if still issuing (keys are made off the event loop)
    assert.equal(applied.length, 1, 'renewed at the first daily check');
    assert.ok(Date.parse(new X509Certificate(applied[0] as string).validTo) > clock.now() + 700 * DAY);
    await clock.advance(DAY);
    assert.equal(applied.length, 1, 'and only once');
    renewal.stop();
  });

  it("swaps the renewed certificate into a running server with the hub's context options, no restart", async () => {
    const dataDir = join(dir, 'renew-live');
    // The clock starts a day and a half back, so that what it issues a day later is valid now.
    const clock = new ManualClock(Date.now() - 1.5 * DAY);
    await ensureHubPki(dataDir, ['127.0.0.1']);
    const lifetime = 730 * DAY;
    const current = await writeServerCertificate(dataDir, ['127.0.0.1'], { notBefore: clock.now() - (lifetime - lifetime / 3 - DAY / 2), notAfter: clock.now() + lifetime / 3 + DAY / 2 });
    const server = createServer(serverContextOptions(current), (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const target = { port: (server.address() as AddressInfo).port, caPem: readFileSync(join(dataDir, 'ca.pem'), 'utf8') } as HubHandle;
    const renewal = new CertificateRenewal({ dataDir, hosts: ['127.0.0.1'], clock, logger: silentLogger() }, current);
    renewal.start((tls) => server.setSecureContext(serverContextOptions(tls)));
    try {
      assert.equal((await handshake(target)).certificate.serialNumber, serialOf(current.cert));
      await clock.advance(DAY);
      await renewal.check();
      const served = await handshake(target, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
      assert.equal(served.certificate.serialNumber, serialOf(renewal.tls.cert), 'the running server presents the renewed certificate');
      await assert.rejects(handshake(target, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256' }), 'the swapped context keeps the cipher policy');
    } finally {
      renewal.stop();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
