/**
 * How a client or agent trusts the hub. Two kinds of pin, and in every case the host name
 * of the hub URL must be one the certificate was issued for (a certificate for another host
 * is refused, even from the pinned CA):
 *
 * - `sha256:HEX`, a CA pin: we fetch the pinned certificate once, check that the SHA-256 of
 *   its DER equals the pin, cache it, and accept a connection only if its verified chain
 *   contains that certificate. The system roots are trust anchors too, only so that a
 *   pinned *intermediate* (a hub run with --tls-cert from a public CA) can chain to its
 *   root; the pin check still decides.
 * - `spki:sha256:BASE64` (or HEX), the hub's own public key: the chain must verify against
 *   the system trust store (a public CA), and the leaf's SubjectPublicKeyInfo must hash to
 *   the pin, so no other certificate for the same name, from any CA, passes.
 *
 * Without a pin, the system trust store and normal host name checks apply.
 */
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { checkServerIdentity, createSecureContext, rootCertificates, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { DrawbridgeError } from '../errors.js';
import { isKeyPin, KEY_PIN_PREFIX, keyPinOf, pinOf } from '../protocol/pins.js';
import { proxyAgentFor } from '../transport/proxy.js';
import { writeFileAtomic } from '../util/files.js';

export interface HubTrust {
  /** PEM of the pinned CA; undefined means the system trust store */
  caPem?: string;
  /** its pin, sha256:HEX */
  caPin?: string;
  /** A pin of the hub's own public key, spki:sha256:BASE64; the chain is checked against the system roots. */
  keyPin?: string;
}

export { isKeyPin, keyPinOf, pinOf };

/**
 * The canonical form of a pin: `sha256:` and 64 lower-case hex digits for a CA certificate,
 * `spki:sha256:` and base64 for a public key (given in base64 or in hex, with or without colons).
 */
export function normalizePin(pin: string): string {
  if (isKeyPin(pin)) {
    const value = pin.trim().slice(KEY_PIN_PREFIX.length).trim();
    const hex = value.toLowerCase().replace(/:/g, '');
    if (pin.trim().toLowerCase().startsWith(KEY_PIN_PREFIX)) {
      if (/^[0-9a-f]{64}$/.test(hex)) return KEY_PIN_PREFIX + Buffer.from(hex, 'hex').toString('base64');
      const bytes = Buffer.from(value, 'base64');
      if (/^[A-Za-z0-9+/]{43}=$/.test(value) && bytes.length === 32) return KEY_PIN_PREFIX + bytes.toString('base64');
    }
    throw new DrawbridgeError('VALIDATION_FAILED', `invalid key pin "${pin}": expected spki:sha256: followed by the base64 (44 characters) or hex (64 digits) SHA-256 of the public key`);
  }
  const hex = pin.trim().toLowerCase().replace(/^sha256:/, '').replace(/:/g, '');
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new DrawbridgeError('VALIDATION_FAILED', `invalid CA pin "${pin}": expected sha256: followed by 64 hex digits, or spki:sha256: and a key hash`);
  }
  return `sha256:${hex}`;
}

/**
 * One set of TLS options (and so one TLS context) per pin. Without it every connection
 * builds its own context (parsing the trust store: about 0.6 ms of CPU, measured by bench/).
 */
const pinnedOptions = new Map<string, ConnectionOptions>();

const pinMismatch = (message: string): Error => Object.assign(new Error(message), { code: 'ERR_TLS_PIN_MISMATCH' });

export function tlsOptions(trust: HubTrust): ConnectionOptions {
  const cacheKey = trust.keyPin ?? trust.caPem;
  if (!cacheKey) return { rejectUnauthorized: true };
  let options = pinnedOptions.get(cacheKey);
  if (!options) {
    options = trust.keyPin ? keyPinnedOptions(trust.keyPin) : caPinnedOptions(trust.caPem as string, trust.caPin ?? pinOf(trust.caPem as string));
    pinnedOptions.set(cacheKey, options);
  }
  return options;
}

function caPinnedOptions(caPem: string, pin: string): ConnectionOptions {
  return {
    secureContext: createSecureContext({ ca: [caPem, ...rootCertificates] }),
    rejectUnauthorized: true,
    // The name first: a pinned CA (a corporate root, a public intermediate) also issues
    // certificates for other hosts, and the pin alone would let any of them through.
    checkServerIdentity: (host, certificate) =>
      checkServerIdentity(host, certificate) ??
      (chainContainsPin(certificate, pin) ? undefined : pinMismatch(`the hub's certificate chain does not contain the pinned CA ${pin}`)),
  };
}

function keyPinnedOptions(pin: string): ConnectionOptions {
  return {
    rejectUnauthorized: true,
    checkServerIdentity: (host, certificate) => {
      const nameError = checkServerIdentity(host, certificate);
      if (nameError) return nameError;
      const actual = keyPinOf(certificate.raw);
      return actual === pin ? undefined : pinMismatch(`the hub presented public key ${actual}, but the pin is ${pin}`);
    },
  };
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
  // A key pin needs nothing fetched: the public CA's chain and the key itself are checked on each connection.
  if (isKeyPin(normalized)) return { keyPin: normalized };
  const file = cacheDir ? join(cacheDir, `ca-${normalized.slice(7, 23)}.pem`) : undefined;
  if (file && existsSync(file)) {
    const pem = readFileSync(file, 'utf8');
    if (pinOf(pem) === normalized) return { caPem: pem, caPin: normalized };
  }
  const pem = await fetchPinnedCa(hubUrl, normalized);
  if (file) writeFileAtomic(file, pem, 0o644);
  return { caPem: pem, caPin: normalized };
}
