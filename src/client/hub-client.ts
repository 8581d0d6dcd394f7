/**
 * The operator's connection to the hub: JSON requests over a keep-alive HTTPS agent, and
 * one link for streams, both verified against the pinned CA and both through HTTPS_PROXY
 * when the environment says so. Hub errors come back as DrawbridgeError with the hub's own
 * code and message.
 */
import type { Agent as HttpAgent } from 'node:http';
import { Agent, request } from 'node:https';
import { DrawbridgeError, isErrorCode } from '../errors.js';
import { proxyAgentFor } from '../transport/proxy.js';
import { connectionError } from '../transport/upgrade.js';
import { ClientLink } from './client-link.js';
import type { Credentials } from './credentials.js';
import { configDir } from './credentials.js';
import { resolveTrust, tlsOptions, type HubTrust } from './trust.js';

export class HubClient {
  readonly hubUrl: string;
  private readonly token: string;
  private readonly trust: HubTrust;
  private agent: Promise<HttpAgent> | undefined;
  private agentReady: HttpAgent | undefined;
  private streamLink: ClientLink | undefined;

  private constructor(credentials: Credentials, trust: HubTrust) {
    this.hubUrl = credentials.hubUrl;
    this.token = credentials.token;
    this.trust = trust;
  }

  /** The keep-alive HTTPS agent for REST calls (through the environment's proxy, if any). */
  private httpAgent(): Promise<HttpAgent> {
    this.agent ??= proxyAgentFor(this.hubUrl, { keepAlive: true }).then((proxied) => {
      // Idle sockets are dropped after 30 s, well before the hub's 65 s keep-alive timeout.
      this.agentReady = proxied ?? new Agent({ keepAlive: true, maxSockets: 16, timeout: 30_000, ...tlsOptions(this.trust) });
      return this.agentReady;
    });
    return this.agent;
  }

  /** The link that carries this client's streams (dialled on first use). */
  link(): ClientLink {
    this.streamLink ??= new ClientLink({ hubUrl: this.hubUrl, token: this.token, trust: this.trust });
    return this.streamLink;
  }

  /** `credentials.token` may be empty for the unauthenticated calls (enrollment). */
  static async connect(credentials: Credentials, options: { cacheDir?: string } = {}): Promise<HubClient> {
    const trust = await resolveTrust(credentials.hubUrl, credentials.caPin, options.cacheDir ?? configDir());
    return new HubClient(credentials, trust);
  }

  close(): void {
    this.agentReady?.destroy();
    void this.streamLink?.close();
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { status, text } = await this.raw(method, path, body);
    let parsed: unknown;
    try {
      parsed = text.length ? JSON.parse(text) : {};
    } catch {
      throw new DrawbridgeError('INTERNAL', `the hub answered ${status} with a body that is not JSON`);
    }
    if (status >= 400) throw errorFromBody(status, parsed);
    return parsed as T;
  }

  /** Streams a text response (JSON Lines export) line by line. */
  async raw(method: string, path: string, body?: unknown, onChunk?: (chunk: Buffer) => void): Promise<{ status: number; text: string }> {
    try {
      return await this.rawOnce(method, path, body, onChunk);
    } catch (error) {
      // A kept-alive socket the hub closed while idle fails the next request before the hub
      // saw it; that request is safe to send again, once, on a fresh socket.
      if ((error as { staleSocket?: boolean }).staleSocket) return this.rawOnce(method, path, body, onChunk);
      throw error;
    }
  }

  private async rawOnce(method: string, path: string, body?: unknown, onChunk?: (chunk: Buffer) => void): Promise<{ status: number; text: string }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const url = new URL(path, this.hubUrl);
    const agent = await this.httpAgent();
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          agent,
          ...tlsOptions(this.trust),
          headers: {
            ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
          },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => {
            if (onChunk && (res.statusCode ?? 500) < 400) onChunk(c);
            else chunks.push(c);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('request timed out')));
      req.on('error', (error: NodeJS.ErrnoException) => {
        const stale = req.reusedSocket && (error.code === 'ECONNRESET' || error.code === 'EPIPE');
        reject(stale ? Object.assign(error, { staleSocket: true }) : connectionError(this.hubUrl, error));
      });
      req.end(payload);
    });
  }

}

export function errorFromBody(status: number, body: unknown): DrawbridgeError {
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  if (error && isErrorCode(error.code) && typeof error.message === 'string') {
    return new DrawbridgeError(error.code, error.message, { details: error.details });
  }
  return new DrawbridgeError('INTERNAL', `the hub answered HTTP ${status}`);
}


