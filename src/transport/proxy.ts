/**
 * Outbound HTTP proxies. Factory and site networks often reach the internet only through an
 * HTTP proxy, so agents and clients honour HTTPS_PROXY / https_proxy (and ALL_PROXY) and
 * NO_PROXY the way curl does, tunnelling TLS through the proxy with HTTP CONNECT. The TLS
 * session is end to end: the proxy sees only the hub's host and port.
 */
import type { Agent } from 'node:http';
import { getProxyForUrl } from 'proxy-from-env';

/** The proxy to use for `url` according to the environment, or undefined for a direct connection. */
export function proxyFor(url: string | URL): URL | undefined {
  const proxy = getProxyForUrl(typeof url === 'string' ? url : url.href);
  if (!proxy) return undefined;
  try {
    return new URL(proxy.includes('://') ? proxy : `http://${proxy}`);
  } catch {
    return undefined;
  }
}

/** A redacted form of a proxy URL for logs (no credentials). */
export function describeProxy(proxy: URL): string {
  return `${proxy.protocol}//${proxy.host}`;
}

/**
 * An https.Agent that tunnels through the environment's proxy for `url`, or undefined when
 * the connection should be direct. TLS options for the hub (pinning, host name checks) are
 * given per request and apply to the tunnelled connection, not to the proxy.
 */
export async function proxyAgentFor(url: string | URL, options: { keepAlive?: boolean } = {}): Promise<Agent | undefined> {
  const proxy = proxyFor(url);
  if (!proxy) return undefined;
  // Loaded only when a proxy is in use: most edges never pay for it.
  const { HttpsProxyAgent } = await import('https-proxy-agent');
  return new HttpsProxyAgent(proxy, { keepAlive: options.keepAlive ?? false }) as unknown as Agent;
}
