/**
 * Who is calling, by address: the peer of the socket, or, when that peer is a reverse proxy
 * the operator trusts (`server.trustedProxies`), the right-most X-Forwarded-For hop that is
 * not itself a trusted proxy. Hops to the left of it are written by the client and prove
 * nothing, so they are never used. Failure limits, connection caps and audit records all
 * key on this one address.
 */
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/** "10.0.0.0/8", "2001:db8::/32" or a single address; throws a readable message otherwise. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const [address = '', prefixText, extra] = text.trim().split('/');
  const version = isIP(address);
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (version === 0 || extra !== undefined || !(prefix <= max)) {
    throw new Error(`"${text}" is not an IP address or CIDR range (e.g. 10.0.0.0/8, 192.0.2.7, 2001:db8::/32)`);
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** Strips the IPv4-mapped IPv6 prefix, so one IPv4 client has one address. */
export function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

export class TrustedProxies {
  private readonly list = new BlockList();
  readonly empty: boolean;

  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const { address, prefix, family } = parseCidr(cidr);
      this.list.addSubnet(address, prefix, family);
    }
    this.empty = cidrs.length === 0;
  }

  has(address: string): boolean {
    if (this.empty) return false;
    const normalized = normalizeAddress(address);
    const version = isIP(normalized);
    return version !== 0 && this.list.check(normalized, version === 4 ? 'ipv4' : 'ipv6');
  }

  /** The client's address for a connection from `peer` that carries `forwardedFor`. */
  resolve(peer: string, forwardedFor: string | string[] | undefined): string {
    let address = normalizeAddress(peer);
    if (!this.has(address) || forwardedFor === undefined) return address;
    const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',').map((hop) => hop.trim());
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = normalizeAddress(stripPort(hops[i] as string));
      // A hop that is not an address ends the walk: the last trusted proxy is all we know.
      if (isIP(hop) === 0) return address;
      address = hop;
      if (!this.has(hop)) return hop;
    }
    return address;
  }
}

function stripPort(hop: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  if (bracketed) return bracketed[1] as string;
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(hop);
  return v4WithPort ? (v4WithPort[1] as string) : hop;
}

const NO_PROXIES = new TrustedProxies([]);
const proxiesBySocket = new WeakMap<object, TrustedProxies>();

/** Called by the server for each accepted connection, before any request on it is read. */
export function trustProxiesOn(socket: object, proxies: TrustedProxies): void {
  if (!proxies.empty) proxiesBySocket.set(socket, proxies);
}

/** The one place a request's source address comes from. */
export function clientAddress(req: IncomingMessage): string {
  const proxies = proxiesBySocket.get(req.socket) ?? NO_PROXIES;
  return proxies.resolve(req.socket.remoteAddress ?? 'unknown', req.headers['x-forwarded-for']);
}
