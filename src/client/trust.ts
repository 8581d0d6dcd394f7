/**
 * How a client or agent trusts the hub. With a CA pin we fetch the pinned certificate
 * once, check that the SHA-256 of its DER equals the pin, cache it, and from then on
 * accept a connection only if its verified chain contains that certificate. The pin
 * anchors trust, so the host name in the URL need not appear in the certificate. The
 * system roots are trust anchors too, only so that a pinned *intermediate* (a hub run with
 * --tls-cert from a public CA) can chain to its root; the pin check still decides.
 * Without a pin, the system trust store and normal host name checks apply.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { createSecureContext, rootCertificates, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { DrawbridgeError } from '../errors.js';
import { proxyAgentFor } from '../transport/proxy.js';
import { writeFileAtomic } from '../util/files.js';

export interface HubTrust {
  /** PEM of the pinned CA; undefined means the system trust store */
  caPem?: string;
  /** its pin, sha256:HEX */
  caPin?: string;
}

export function pinOf(pem: string): string {
  return 'sha256:' + createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

export function normalizePin(pin: string): string {
  const hex = pin.trim().toLowerCase().replace(/^sha256:/, '').replace(/:/g, '');
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new DrawbridgeError('VALIDATION_FAILED', `invalid CA pin "${pin}": expected sha256: followed by 64 hex digits`);
  }
  return `sha256:${hex}`;
}

/**
 * One set of TLS options (and so one TLS context) per pinned CA. Without it every
 * connection builds its own context (parsing the trust store: about 0.6 ms of CPU,
 * measured by bench/), and an agent or client opens a new TLS connection for every stream.
 */
const pinnedOptions = new Map<string, ConnectionOptions>();

export function tlsOptions(trust: HubTrust): ConnectionOptions {
  if (!trust.caPem) return { rejectUnauthorized: true };
  let options = pinnedOptions.get(trust.caPem);
  if (!options) {
    const pin = trust.caPin ?? pinOf(trust.caPem);
    options = {
      secureContext: createSecureContext({ ca: [trust.caPem, ...rootCertificates] }),
      rejectUnauthorized: true,
      checkServerIdentity: (_host, certificate) =>
        chainContainsPin(certificate, pin)
          ? undefined
          : Object.assign(new Error(`the hub's certificate chain does not contain the pinned CA ${pin}`), { code: 'ERR_TLS_PIN_MISMATCH' }),
    };
    pinnedOptions.set(trust.caPem, options);
  }
  return options;
}

/** Walks the verified chain (leaf to root) looking for the pinned certificate. */
export function chainContainsPin(certificate: PeerCertificate, pin: string): boolean {
  const wanted = pin.slice('sha256:'.length);
  let current: (PeerCertificate & { issuerCertificate?: PeerCertificate }) | undefined = certificate;
  for (let depth = 0; current && depth < 10; depth++) {
    if (current.fingerprint256?.replace(/:/g, '').toLowerCase() === wanted) return true;
    const issuer: PeerCertificate | undefined = (current as { issuerCertificate?: PeerCertificate }).issuerCertificate;
    if (!issuer || issuer === current) break;
    current = issuer;
  }
  return false;
}

/** Fetches /v1/ca.pem without trusting the connection, then trusts it only if it matches the pin. */
export async function fetchPinnedCa(hubUrl: string, pin: string): Promise<string> {
  const expected = normalizePin(pin);
  const url = new URL('/v1/ca.pem', hubUrl);
  const proxy = await proxyAgentFor(url);
  const pem = await new Promise<string>((resolve, reject) => {
    const req = request(url, { method: 'GET', rejectUnauthorized: false, timeout: 10_000, ...(proxy ? { agent: proxy } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 64 * 1024) req.destroy(new Error('CA certificate response too large'));
        else chunks.push(c);
      });
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode} from ${url.href}`));
        else resolve(Buffer.concat(chunks).toString('utf8'));
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  }).catch((cause: Error) => {
    throw new DrawbridgeError('HUB_UNREACHABLE', `cannot reach the hub at ${hubUrl}: ${cause.message}`, { cause });
  });
  let actual: string;
  try {
    actual = pinOf(pem);
  } catch (cause) {
    throw new DrawbridgeError('TLS_PIN_MISMATCH', `the hub at ${hubUrl} did not serve a valid CA certificate`, { cause });
  }
  if (actual !== expected) {
    throw new DrawbridgeError('TLS_PIN_MISMATCH', `the hub at ${hubUrl} presented CA ${actual}, but the pin is ${expected}: refusing to connect`);
  }
  return pem;
}

/** Resolves trust for a pin, using (and filling) a cache directory of pinned CA files. */
export async function resolveTrust(hubUrl: string, pin: string | undefined, cacheDir: string | undefined): Promise<HubTrust> {
  if (!pin) return {};
  const normalized = normalizePin(pin);
  const file = cacheDir ? join(cacheDir, `ca-${normalized.slice(7, 23)}.pem`) : undefined;
  if (file && existsSync(file)) {
    const pem = readFileSync(file, 'utf8');
    if (pinOf(pem) === normalized) return { caPem: pem, caPin: normalized };
  }
  const pem = await fetchPinnedCa(hubUrl, normalized);
  if (file) writeFileAtomic(file, pem, 0o644);
  return { caPem: pem, caPin: normalized };
}
