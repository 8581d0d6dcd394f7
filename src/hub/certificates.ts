/**
 * The hub's own PKI: on first start an ECDSA P-256 CA and a server certificate signed by
 * it, kept in the data directory (private keys at mode 0600). Agents and clients pin the
 * CA by the SHA-256 of its DER encoding, which enrollment tokens carry.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { keyPinOf, pinOf } from '../protocol/pins.js';
import { writeFileAtomic } from '../util/files.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const TEN_YEARS_MS = 10 * 365 * 86_400_000;
const TWO_YEARS_MS = 2 * 365 * 86_400_000;

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

/** Loads the hub PKI from `dataDir`, creating it on first start. */
export async function ensureHubPki(dataDir: string, extraHosts: readonly string[]): Promise<HubTls & { created: boolean }> {
  const caCertPath = join(dataDir, 'ca.pem');
  const caKeyPath = join(dataDir, 'ca.key');
  const certPath = join(dataDir, 'server.pem');
  const keyPath = join(dataDir, 'server.key');
  if ([caCertPath, caKeyPath, certPath, keyPath].every((p) => existsSync(p))) {
    const caPem = readFileSync(caCertPath, 'utf8');
    const cert = readFileSync(certPath, 'utf8');
    return { cert, key: readFileSync(keyPath, 'utf8'), caPem, caPin: pinOfPem(caPem), keyPin: keyPinOf(cert), created: false };
  }
  const now = Date.now();
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
  const serverKeys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const server = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: 'CN=drawbridge-hub',
    issuer: ca.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + TWO_YEARS_MS),
    signingKey: caKeys.privateKey,
    publicKey: serverKeys.publicKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(altNames(extraHosts), false),
      await x509.AuthorityKeyIdentifierExtension.create(ca, false),
    ],
  });
  const caPem = ca.toString('pem') + '\n';
  // Serve the chain (server + CA) so clients that pin the CA can validate the leaf.
  const certChain = server.toString('pem') + '\n' + caPem;
  writeFileAtomic(caKeyPath, await exportKeyPem(caKeys.privateKey), 0o600);
  writeFileAtomic(keyPath, await exportKeyPem(serverKeys.privateKey), 0o600);
  writeFileAtomic(caCertPath, caPem, 0o644);
  writeFileAtomic(certPath, certChain, 0o644);
  return { cert: certChain, key: readFileSync(keyPath, 'utf8'), caPem, caPin: pinOfPem(caPem), keyPin: keyPinOf(certChain), created: true };
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
