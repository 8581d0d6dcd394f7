/** The client's address behind trusted reverse proxies: right-most untrusted X-Forwarded-For hop, nothing else believed. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizeAddress, parseCidr, TrustedProxies } from '../../src/hub/client-address.js';

describe('TrustedProxies', () => {
  it('ignores X-Forwarded-For when no proxy is trusted, or when the peer is not one', () => {
    assert.equal(new TrustedProxies([]).resolve('198.51.100.7', '203.0.113.9'), '198.51.100.7');
    assert.equal(new TrustedProxies(['10.0.0.0/8']).resolve('198.51.100.7', '203.0.113.9'), '198.51.100.7');
  });

  it('takes the right-most hop that is not a trusted proxy; forged hops on the left are ignored', () => {
    const proxies = new TrustedProxies(['10.0.0.0/8', '192.0.2.1']);
    assert.equal(proxies.resolve('10.1.2.3', '203.0.113.9'), '203.0.113.9');
    // The client wrote "1.1.1.1" itself; the proxy appended the address it saw.
    assert.equal(proxies.resolve('10.1.2.3', '1.1.1.1, 203.0.113.9'), '203.0.113.9');
    // Two proxies in a row: both are skipped.
    assert.equal(proxies.resolve('10.1.2.3', '1.1.1.1, 203.0.113.9, 192.0.2.1'), '203.0.113.9');
    // Repeated headers are one list.
    assert.equal(proxies.resolve('10.1.2.3', ['1.1.1.1', '203.0.113.9']), '203.0.113.9');
  });

  it('falls back to the last trusted hop when the list has only proxies, or a hop that is not an address', () => {
    const proxies = new TrustedProxies(['10.0.0.0/8']);
    assert.equal(proxies.resolve('10.1.2.3', undefined), '10.1.2.3');
    assert.equal(proxies.resolve('10.1.2.3', '10.9.9.9'), '10.9.9.9');
    assert.equal(proxies.resolve('10.1.2.3', 'unknown, 10.9.9.9'), '10.9.9.9');
    assert.equal(proxies.resolve('10.1.2.3', '<script>'), '10.1.2.3');
  });

  it('understands IPv6, IPv4-mapped peers and hops with ports', () => {
    const proxies = new TrustedProxies(['127.0.0.1', '2001:db8::/32']);
    assert.equal(proxies.resolve('::ffff:127.0.0.1', '203.0.113.9:4711'), '203.0.113.9');
    assert.equal(proxies.resolve('2001:db8::5', '[2001:db9::1]:443'), '2001:db9::1');
    assert.equal(normalizeAddress('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(normalizeAddress('::1'), '::1');
  });

  it('parses addresses and CIDR ranges and refuses anything else', () => {
    assert.deepEqual(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    assert.deepEqual(parseCidr('2001:db8::1'), { address: '2001:db8::1', prefix: 128, family: 'ipv6' });
    for (const bad of ['10.0.0.0/33', 'proxy.example.net', '10.0.0.0/8/1', '10.0.0.0/', '::1/129', '']) {
      assert.throws(() => parseCidr(bad), /not an IP address or CIDR range/, bad);
    }
  });
});
