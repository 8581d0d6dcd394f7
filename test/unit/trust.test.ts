import assert from 'node:assert/strict';
import type { PeerCertificate } from 'node:tls';
import { describe, it } from 'node:test';
import { chainContainsPin, normalizePin } from '../../src/client/trust.js';

/** The shape Node hands checkServerIdentity: leaf with issuerCertificate links up to a self-issued root. */
function chain(...fingerprints: string[]): PeerCertificate {
  const certs = fingerprints.map((fingerprint256) => ({ fingerprint256 }) as PeerCertificate & { issuerCertificate?: PeerCertificate });
  certs.forEach((cert, i) => {
    cert.issuerCertificate = certs[i + 1] ?? cert;
  });
  return certs[0] as PeerCertificate;
}

const hex = (byte: string): string => byte.repeat(32);
const colons = (h: string): string => (h.toUpperCase().match(/../g) ?? []).join(':');

describe('chainContainsPin', () => {
  it('finds the pin at any depth of the verified chain', () => {
    const c = chain(colons(hex('11')), colons(hex('22')), colons(hex('33')));
    for (const b of ['11', '22', '33']) assert.equal(chainContainsPin(c, `sha256:${hex(b)}`), true);
  });

  it('refuses a chain without the pinned certificate (a publicly valid chain for someone else)', () => {
    assert.equal(chainContainsPin(chain(colons(hex('11')), colons(hex('22'))), `sha256:${hex('44')}`), false);
  });
});

describe('normalizePin', () => {
  it('accepts upper case and colons, refuses anything else', () => {
    assert.equal(normalizePin(`SHA256:${colons(hex('ab'))}`), `sha256:${hex('ab')}`);
    assert.throws(() => normalizePin('sha256:1234'), /invalid CA pin/);
  });
});
