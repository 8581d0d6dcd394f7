/**
 * The operator's connection to the hub: JSON requests over a keep-alive HTTPS agent and
 * stream WebSockets, both verified against the pinned CA. Hub errors come back as
 * DrawbridgeError with the hub's own code and message.
 */
import { Agent, request } from 'node:https';
import WebSocket from 'ws';
import { DrawbridgeError, isErrorCode, parseCloseReason } from '../errors.js';
import { DATA_MAX_PAYLOAD_BYTES } from '../protocol/messages.js';
import type { Credentials } from './credentials.js';
import { configDir } from './credentials.js';
import { resolveTrust, tlsOptions, type HubTrust } from './trust.js';

export interface StreamTicket {
  streamId: string;
  rendezvousUrl: string;
  token: string;
  expiresAt: string;
  grant: { id: string; endsAt: string } | null;
}

/**
 * Stream sockets are never sent from a browser, and always inside TLS, so the RFC 6455
 * client mask (a defence against cache poisoning by hostile scripts) buys nothing here;
 * an all-zero mask lets both ends skip the XOR pass over every byte.
 */
export const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

function connectionError(hubUrl: string, error: Error): DrawbridgeError {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS/.test(code) || /certificate/i.test(error.message)) {
    return new DrawbridgeError('TLS_PIN_MISMATCH', `the hub certificate at ${hubUrl} is not trusted (${code || error.message}); pass --ca-pin sha256:HEX from the hub's start-up output`, { cause: error });
  }
  return new DrawbridgeError('HUB_UNREACHABLE', `cannot reach the hub at ${hubUrl}: ${code || error.message}`, { cause: error });
}

export class HubClient {
  readonly hubUrl: string;
  private readonly token: string;
  private readonly trust: HubTrust;
  private readonly agent: Agent;
  /** TLS session cache for stream sockets: resumption makes stream setup cheaper. */
  private readonly streamAgent: Agent;

  private constructor(credentials: Credentials, trust: HubTrust) {
    this.hubUrl = credentials.hubUrl;
    this.token = credentials.token;
    this.trust = trust;
    // Idle sockets are dropped after 30 s, well before the hub's 65 s keep-alive timeout.
    this.agent = new Agent({ keepAlive: true, maxSockets: 16, timeout: 30_000, ...tlsOptions(trust) });
    this.streamAgent = new Agent({ keepAlive: false, maxCachedSessions: 256, ...tlsOptions(trust) });
  }

  /** `credentials.token` may be empty for the unauthenticated calls (enrollment). */
  static async connect(credentials: Credentials, options: { cacheDir?: string } = {}): Promise<HubClient> {
    const trust = await resolveTrust(credentials.hubUrl, credentials.caPin, options.cacheDir ?? configDir());
    return new HubClient(credentials, trust);
  }

  close(): void {
    this.agent.destroy();
    this.streamAgent.destroy();
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

  private rawOnce(method: string, path: string, body?: unknown, onChunk?: (chunk: Buffer) => void): Promise<{ status: number; text: string }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const url = new URL(path, this.hubUrl);
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          agent: this.agent,
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

  /**
   * Asks the hub for a stream to `device` and dials the rendezvous. Resolves with the open
   * WebSocket; the hub holds its reads until the device side has joined.
   */
  async openStream(device: string): Promise<{ ws: WebSocket; ticket: StreamTicket }> {
    const ticket = await this.request<StreamTicket>('POST', '/v1/streams', { device });
    const ws = new WebSocket(ticket.rendezvousUrl, {
      headers: { authorization: `Bearer ${ticket.token}` },
      perMessageDeflate: false,
      maxPayload: DATA_MAX_PAYLOAD_BYTES,
      skipUTF8Validation: true,
      generateMask: zeroMask,
      handshakeTimeout: 15_000,
      agent: this.streamAgent,
      ...tlsOptions(this.trust),
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(connectionError(this.hubUrl, error));
      ws.once('open', () => {
        ws.off('error', onError);
        resolve();
      });
      ws.once('error', onError);
      ws.once('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            parsed = undefined;
          }
          ws.off('error', onError);
          ws.on('error', () => undefined);
          // With this listener ws leaves the refused handshake to us: end it, free the socket.
          ws.terminate();
          reject(errorFromBody(res.statusCode ?? 0, parsed));
        });
      });
    });
    return { ws, ticket };
  }
}

export function errorFromBody(status: number, body: unknown): DrawbridgeError {
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  if (error && isErrorCode(error.code) && typeof error.message === 'string') {
    return new DrawbridgeError(error.code, error.message, { details: error.details });
  }
  return new DrawbridgeError('INTERNAL', `the hub answered HTTP ${status}`);
}

/** Turns a WebSocket close into the error it reports (undefined for a normal close). */
export function errorFromClose(code: number, reason: string): DrawbridgeError | undefined {
  if (code === 1000 || code === 1005) return undefined;
  const parsed = parseCloseReason(reason);
  if (parsed.code) return new DrawbridgeError(parsed.code, parsed.message);
  return new DrawbridgeError('HUB_UNREACHABLE', `the stream was cut (WebSocket close ${code}${reason ? `: ${reason}` : ''})`);
}
