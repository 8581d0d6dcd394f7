/**
 * The hub's own PKI: on first start an ECDSA P-256 CA and a server certificate signed by
 * it, kept in the data directory (private keys at mode 0600). Agents and clients pin the
 * CA by the SHA-256 of its DER encoding, which enrollment tokens carry.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { keyPinOf, pinOf } from '../protocol/pins.js';
import { writeFileAtomic } from '../util/files.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const TEN_YEARS_MS = 10 * 365 * 86_400_000;
/** The hub's own server certificate; renewed automatically well before it ends. */
export const SERVER_CERTIFICATE_LIFETIME_MS = 2 * 365 * 86_400_000;
const RENEW_WHEN_LEFT_MS = 60 * 86_400_000;

export interface HubTls {
  cert: string;
  key: string;
  /** PEM served at /v1/ca.pem so a client that knows only the pin can fetch and check it */
  caPem: string;
  caPin: string;
  /** The key pin of the server certificate (spki:sha256:BASE64), for deployments on a public CA. */
  keyPin: string;
}

export function pinOfPem(pem: string): string {
  return pinOf(pem);
}

async function exportKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').trimEnd()}\n-----END PRIVATE KEY-----\n`;
}

function serial(): string {
  // positive 16-byte serial
  return '01' + Buffer.from(webcrypto.getRandomValues(new Uint8Array(15))).toString('hex');
}

function altNames(extraHosts: readonly string[]): x509.JsonGeneralNames {
  const names = new Set(['localhost', hostname(), ...extraHosts]);
  const ips = new Set(['127.0.0.1', '::1']);
  const result: x509.JsonGeneralNames = [];
  for (const name of names) {
    if (/^[\d.]+$/.test(name) || name.includes(':')) ips.add(name.replace(/^\[|\]$/g, ''));
    else if (name) result.push({ type: 'dns', value: name });
  }
  for (const ip of ips) result.push({ type: 'ip', value: ip });
  return result;
}

const paths = (dataDir: string): { caCert: string; caKey: string; cert: string; key: string } => ({
  caCert: join(dataDir, 'ca.pem'),
  caKey: join(dataDir, 'ca.key'),
  cert: join(dataDir, 'server.pem'),
  key: join(dataDir, 'server.key'),
});

/** Loads the hub PKI from `dataDir`, creating it on first start. */
export async function ensureHubPki(dataDir: string, extraHosts: readonly string[], now = Date.now()): Promise<HubTls & { created: boolean }> {
  const files = paths(dataDir);
  if (Object.values(files).every((p) => existsSync(p))) {
    const caPem = readFileSync(files.caCert, 'utf8');
    const cert = readFileSync(files.cert, 'utf8');
    return { cert, key: readFileSync(files.key, 'utf8'), caPem, caPin: pinOfPem(caPem), keyPin: keyPinOf(cert), created: false };
  }
  const caKeys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Drawbridge hub CA ${hostname()}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + TEN_YEARS_MS),
    keys: caKeys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const caPem = ca.toString('pem') + '\n';
  writeFileAtomic(files.caKey, await exportKeyPem(caKeys.privateKey), 0o600);
  writeFileAtomic(files.caCert, caPem, 0o644);
  const server = await writeServerCertificate(dataDir, extraHosts, { notBefore: now - 60_000, notAfter: now + SERVER_CERTIFICATE_LIFETIME_MS });
  return { ...server, caPem, caPin: pinOfPem(caPem), keyPin: keyPinOf(server.cert), created: true };
}

/**
 * Issues a server certificate (new key) from the hub's CA in `dataDir` and writes it there,
 * key first: a crash between the two writes leaves a pair that does not match, which the
 * next start notices and issues again (serverCertificateDue).
 */
export async function writeServerCertificate(
  dataDir: string,
  hosts: readonly string[],
  validity: { notBefore: number; notAfter: number },
): Promise<{ cert: string; key: string }> {
  const files = paths(dataDir);
  const caPem = readFileSync(files.caCert, 'utf8');
  const ca = new x509.X509Certificate(caPem);
  const caDer = Buffer.from(readFileSync(files.caKey, 'utf8').replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const caKey = await webcrypto.subtle.importKey('pkcs8', caDer, ALGORITHM, false, ['sign']);
  const serverKeys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const server = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: 'CN=drawbridge-hub',
    issuer: ca.subject,
    notBefore: new Date(validity.notBefore),
    notAfter: new Date(validity.notAfter),
    signingKey: caKey,
    publicKey: serverKeys.publicKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(altNames(hosts), false),
      await x509.AuthorityKeyIdentifierExtension.create(ca, false),
    ],
  });
  // Serve the chain (server + CA) so clients that pin the CA can validate the leaf.
  const cert = server.toString('pem') + '\n' + caPem;
  const key = await exportKeyPem(serverKeys.privateKey);
  writeFileAtomic(files.key, key, 0o600);
  writeFileAtomic(files.cert, cert, 0o644);
  return { cert, key };
}

/**
 * Why the hub's own server certificate must be issued again now, or undefined: less than a
 * third of its lifetime or 60 days left (renewed well before it expires, so agents never
 * all fail on one day), a host the hub is reached by that it does not name, or a key that
 * does not match it.
 */
export function serverCertificateDue(certPem: string, keyPem: string, hosts: readonly string[], now: number): string | undefined {
  const cert = new X509Certificate(certPem);
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  const left = notAfter - now;
  if (left < (notAfter - notBefore) / 3 || left < RENEW_WHEN_LEFT_MS) return `it expires on ${new Date(notAfter).toISOString()}`;
  for (const host of hosts) {
    const bare = host.replace(/^\[|\]$/g, '');
    const named = isIP(bare) ? cert.checkIP(bare) : cert.checkHost(bare);
    if (!named) return `it does not name ${bare}`;
  }
  if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return 'its key does not match it';
  return undefined;
}

/** Operator-supplied certificate: the pin is that of the last certificate in the chain file. */
export function loadUserTls(certPath: string, keyPath: string): HubTls {
  const cert = readFileSync(certPath, 'utf8');
  const key = readFileSync(keyPath, 'utf8');
  const blocks = cert.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (!blocks || blocks.length === 0) throw new Error(`${certPath} holds no PEM certificate`);
  const top = (blocks[blocks.length - 1] as string) + '\n';
  return { cert, key, caPem: top, caPin: pinOfPem(top), keyPin: keyPinOf(blocks[0] as string) };
}

/**
 * TLS 1.3, or TLS 1.2 with ECDHE key exchange and AEAD ciphers only (forward secrecy, no
 * CBC, no static RSA). Node's default list still offers CBC suites to TLS 1.2 clients.
 */
export const SERVER_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** The secure context options of the hub's server, at start and whenever its certificate is renewed. */
export function serverContextOptions(tls: { cert: string; key: string }): { cert: string; key: string; minVersion: 'TLSv1.2'; ciphers: string; honorCipherOrder: true } {
  return { cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2', ciphers: SERVER_CIPHERS, honorCipherOrder: true };
}
