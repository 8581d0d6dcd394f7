/**
 * The two ways to pin a hub, as strings carried by enrollment tokens, credentials and the
 * agent config: `sha256:HEX` (SHA-256 of a CA certificate's DER) and `spki:sha256:BASE64`
 * (SHA-256 of the hub's own SubjectPublicKeyInfo DER). Pure functions; the checks that use
 * them live in src/client/trust.ts.
 */
import { createHash, X509Certificate } from 'node:crypto';

export const KEY_PIN_PREFIX = 'spki:sha256:';

/** The CA pin of a certificate (PEM or DER): SHA-256 of its DER, hex. */
export function pinOf(certificate: string | Buffer): string {
  return 'sha256:' + createHash('sha256').update(new X509Certificate(certificate).raw).digest('hex');
}

/** The key pin of a certificate (PEM or DER): SHA-256 of its SubjectPublicKeyInfo, base64. */
export function keyPinOf(certificate: string | Buffer): string {
  const spki = new X509Certificate(certificate).publicKey.export({ type: 'spki', format: 'der' });
  return KEY_PIN_PREFIX + createHash('sha256').update(spki).digest('base64');
}

/** True for a key pin (spki:sha256:...), false for a CA pin (sha256:HEX). */
export function isKeyPin(pin: string): boolean {
  return pin.trim().toLowerCase().startsWith('spki:');
}

/** A pin in its canonical form (what normalizePin returns): sha256:HEX or spki:sha256:BASE64. */
export function isCanonicalPin(pin: string): boolean {
  return /^sha256:[0-9a-f]{64}$/.test(pin) || /^spki:sha256:[A-Za-z0-9+/]{43}=$/.test(pin);
}
