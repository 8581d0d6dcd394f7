/**
 * The WebSocket opening handshake (RFC 6455 section 4) for links, on both ends. After it, the
 * socket carries frames that src/protocol/frames.ts encodes and decodes; we do not use a
 * WebSocket library on the link because the data path parses frames as a byte stream.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { Duplex } from 'node:stream';
import { DrawbridgeError, isErrorCode } from '../errors.js';
import { WS_SUBPROTOCOL } from '../protocol/control.js';
import { proxyAgentFor, proxyFor, describeProxy } from './proxy.js';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export function acceptKey(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

/**
 * Checks an upgrade request for a link. Returns undefined when it is acceptable, or the error
 * to answer with.
 */
export function checkUpgradeRequest(req: IncomingMessage): DrawbridgeError | undefined {
  const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
  const key = req.headers['sec-websocket-key'];
  if (req.method !== 'GET' || upgrade !== 'websocket') return new DrawbridgeError('BAD_REQUEST', 'a link is a WebSocket: send GET with Upgrade: websocket');
  if (req.headers['sec-websocket-version'] !== '13') return new DrawbridgeError('BAD_REQUEST', 'unsupported WebSocket version (13 is required)');
  if (typeof key !== 'string' || Buffer.from(key, 'base64').length !== 16) return new DrawbridgeError('BAD_REQUEST', 'missing or invalid Sec-WebSocket-Key');
  const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  if (!offered.includes(WS_SUBPROTOCOL)) {
    return new DrawbridgeError('PROTOCOL_ERROR', `this hub speaks link protocol ${WS_SUBPROTOCOL}; the peer offered ${offered.filter(Boolean).join(', ') || 'none'} (upgrade drawbridge on the edge or client)`);
  }
  return undefined;
}

/** Completes the server side of the handshake on a request that passed checkUpgradeRequest. */
export function completeUpgrade(req: IncomingMessage, socket: Duplex): void {
  const key = req.headers['sec-websocket-key'] as string;
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${acceptKey(key)}\r\nSec-WebSocket-Protocol: ${WS_SUBPROTOCOL}\r\n\r\n`,
  );
}

/** Answers an upgrade request with an HTTP error and the usual JSON error body, then closes. */
export function refuseUpgrade(socket: Duplex, error: DrawbridgeError, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ error: error.toJSON() });
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.end(
    `HTTP/1.1 ${error.status} ${error.code}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`,
  );
}

export interface DialOptions {
  /** https://hub:port (the link path is appended) */
  hubUrl: string;
  path: string;
  tls: ConnectionOptions;
  headers?: Record<string, string>;
  /** Gives up on TCP + TLS + upgrade after this long. */
  timeoutMs?: number;
}

export interface DialedLink {
  socket: Socket;
  /** Bytes that arrived with the 101 response, already part of the link. */
  head: Buffer;
  /** The proxy the link went through, if any (for logs). */
  via?: string;
}

/** Dials a link: TLS to the hub (through HTTPS_PROXY when the environment says so) and the upgrade. */
export async function dialLink(options: DialOptions): Promise<DialedLink> {
  const url = new URL(options.path, options.hubUrl);
  const key = randomBytes(16).toString('base64');
  const proxy = proxyFor(url);
  const agent = proxy ? await proxyAgentFor(url) : undefined;
  return new Promise<DialedLink>((resolve, reject) => {
    let settled = false;
    const fail = (error: DrawbridgeError): void => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(error);
    };
    const req = request(url, {
      method: 'GET',
      ...options.tls,
      ...(agent ? { agent } : { agent: false }),
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': key,
        'sec-websocket-protocol': WS_SUBPROTOCOL,
        ...options.headers,
      },
      timeout: options.timeoutMs ?? 15_000,
    });
    req.once('timeout', () => fail(new DrawbridgeError('HUB_UNREACHABLE', `cannot reach the hub at ${options.hubUrl}: timed out`)));
    req.once('error', (error) => fail(connectionError(options.hubUrl, error, proxy ? describeProxy(proxy) : undefined)));
    req.once('response', (res) => {
      // Not upgraded: the hub refused, with its usual JSON error body.
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= 64 * 1024) chunks.push(c);
      });
      res.once('end', () => fail(errorFromResponse(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
      res.once('error', () => fail(new DrawbridgeError('HUB_UNREACHABLE', `the hub closed the connection (HTTP ${res.statusCode})`)));
    });
    req.once('upgrade', (res, socket: Socket, head: Buffer) => {
      if (settled) {
        socket.destroy();
        return;
      }
      const accepted = res.headers['sec-websocket-accept'] === acceptKey(key) && res.headers['sec-websocket-protocol'] === WS_SUBPROTOCOL;
      if (!accepted) {
        socket.destroy();
        fail(new DrawbridgeError('PROTOCOL_ERROR', 'the hub did not complete the link handshake (is this a Drawbridge hub of the same version?)'));
        return;
      }
      settled = true;
      socket.setTimeout(0);
      socket.setNoDelay(true);
      resolve({ socket, head, ...(proxy ? { via: describeProxy(proxy) } : {}) });
    });
    req.end();
  });
}

function errorFromResponse(status: number, text: string): DrawbridgeError {
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    const error = body.error;
    if (error && isErrorCode(error.code) && typeof error.message === 'string') {
      return new DrawbridgeError(error.code, error.message, { details: error.details });
    }
  } catch {
    // fall through: not our JSON
  }
  if (status === 407) return new DrawbridgeError('HUB_UNREACHABLE', 'the HTTP proxy requires authentication (put the credentials in HTTPS_PROXY)');
  return new DrawbridgeError('HUB_UNREACHABLE', `the hub (or a proxy on the way) answered HTTP ${status} instead of opening the link`);
}

/** Turns a socket-level failure into the error a user can act on. */
export function connectionError(hubUrl: string, error: Error, via?: string): DrawbridgeError {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS|HOSTNAME|ALTNAME/.test(code) || /certificate/i.test(error.message)) {
    return new DrawbridgeError(
      'TLS_PIN_MISMATCH',
      `the hub certificate at ${hubUrl} is not trusted (${error.message}); check --ca-pin against the hub's start-up output`,
      { cause: error },
    );
  }
  const through = via ? ` through proxy ${via}` : '';
  return new DrawbridgeError('HUB_UNREACHABLE', `cannot reach the hub at ${hubUrl}${through}: ${code || error.message}`, { cause: error });
}
