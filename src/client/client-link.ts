/**
 * The client's one link to the hub, carrying every stream it opens: a new stream costs a
 * control message and the edge's connect, no TLS handshake and no HTTP request. The link
 * is dialled on first use and again on the next use after it was lost.
 */
import { DrawbridgeError } from '../errors.js';
import { BASE_CAPABILITY, PROTOCOL_VERSION } from '../protocol/control.js';
import { Hello, StreamOpen, type LinkLimits } from '../protocol/messages/index.js';
import type { ResultOf } from '../protocol/control.js';
import { EndpointTable, StreamEndpoint, type EndpointResult, type LocalSide } from '../stream/endpoint.js';
import { Link } from '../transport/link.js';
import { dialLink } from '../transport/upgrade.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { silentLogger } from '../util/silent-logger.js';
import { tlsOptions, type HubTrust } from './trust.js';

export const CLIENT_CAPABILITIES = [BASE_CAPABILITY, 'streams'];

/** How long the hub gets to answer a stream request (it waits for the edge's connect). */
const OPEN_TIMEOUT_MS = 30_000;

export type StreamInfo = ResultOf<typeof StreamOpen>;

export interface OpenedStream {
  /** Resolves when the stream is open, rejects with the hub's or edge's refusal. */
  opened: Promise<StreamInfo>;
  /** Resolves when the stream has ended, however it ended. */
  result: Promise<EndpointResult>;
  streamId: number;
  /** The local program stopped sending (it is being stopped): send EOF, let the far end finish. */
  endInput(): void;
  /** Ends the stream now with `error`. */
  abort(error: DrawbridgeError): void;
}

interface Connected {
  link: Link;
  endpoints: EndpointTable;
  limits: LinkLimits;
  principal?: { name: string; role: string };
}

export interface ClientLinkOptions {
  hubUrl: string;
  token: string;
  trust: HubTrust;
  clock?: Clock;
  logger?: Logger;
  pingIntervalMs?: number;
}

export class ClientLink {
  private connected: Connected | undefined;
  private dialing: Promise<Connected> | undefined;
  private nextStreamId = 1;
  private closed = false;
  /** The proxy the link goes through, if any */
  via: string | undefined;

  constructor(private readonly options: ClientLinkOptions) {}

  /** Opens a stream to `device` joined to `local`. Local events before the open are not lost. */
  open(device: string, local: LocalSide): OpenedStream {
    const streamId = this.nextStreamId;
    this.nextStreamId = this.nextStreamId >= 0xffffffff ? 1 : this.nextStreamId + 1;
    // Listeners go on the local side now: an input that ends or fails while the link is
    // being dialled is acted on once the stream opens.
    const endpoint = new StreamEndpoint(local);
    const opened = this.ensure().then(
      (connected) =>
        new Promise<StreamInfo>((resolve, reject) => {
          endpoint.bind(connected.link, streamId, connected.limits.streamWindowBytes, (done) => connected.endpoints.remove(done));
          connected.endpoints.add(endpoint);
          connected.link.call(StreamOpen, { stream: streamId, device }, OPEN_TIMEOUT_MS, (error, info) => {
            if (error || !info) {
              const refusal = error ?? new DrawbridgeError('INTERNAL');
              endpoint.fail(refusal);
              reject(refusal);
              return;
            }
            endpoint.start();
            resolve(info);
          });
        }),
      (error: DrawbridgeError) => {
        endpoint.fail(error);
        throw error;
      },
    );
    opened.catch(() => undefined);
    return { opened, result: endpoint.result, streamId, endInput: () => endpoint.endInput(), abort: (error) => endpoint.fail(error) };
  }

  /** Dials the link if it is not up; concurrent callers share one dial. */
  ensure(): Promise<Connected> {
    if (this.closed) return Promise.reject(new DrawbridgeError('LINK_LOST', 'the client is closed'));
    if (this.connected?.link.isOpen) return Promise.resolve(this.connected);
    this.dialing ??= this.dial().finally(() => {
      this.dialing = undefined;
    });
    return this.dialing;
  }

  /** Who the hub says we are (after the first stream or ensure()). */
  get principal(): { name: string; role: string } | undefined {
    return this.connected?.principal;
  }

  async close(): Promise<void> {
    this.closed = true;
    const connected = this.connected;
    this.connected = undefined;
    if (!connected) return;
    connected.endpoints.failAll(new DrawbridgeError('LINK_LOST', 'the client is closing'));
    if (connected.link.isOpen) {
      await new Promise<void>((resolve) => {
        connected.link.close(1000, 'client closing');
        const timer = setTimeout(resolve, 1000);
        timer.unref();
        this.onClosed = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  private onClosed: (() => void) | undefined;

  private async dial(): Promise<Connected> {
    const clock = this.options.clock ?? systemClock;
    const logger = this.options.logger ?? silentLogger();
    const dialed = await dialLink({
      hubUrl: this.options.hubUrl,
      path: '/v1/link/client',
      tls: tlsOptions(this.options.trust),
      headers: { authorization: `Bearer ${this.options.token}` },
    });
    this.via = dialed.via;
    return new Promise<Connected>((resolve, reject) => {
      let connected: Connected | undefined;
      const link = new Link({
        socket: dialed.socket,
        head: dialed.head,
        side: 'client',
        self: 'client',
        peer: 'hub',
        clock,
        logger,
        pingIntervalMs: this.options.pingIntervalMs ?? 10_000,
        onClose: (info) => {
          const error = info.errorCode
            ? new DrawbridgeError(info.errorCode, info.reason.replace(/^[A-Z_]+: /, ''))
            : new DrawbridgeError('HUB_UNREACHABLE', `the link to the hub was lost (${info.code}${info.reason ? `: ${info.reason}` : ''})`);
          endpoints.failAll(error);
          if (this.connected === connected) this.connected = undefined;
          if (!connected) reject(error);
          this.onClosed?.();
        },
      });
      const endpoints = new EndpointTable(link);
      link.streams = endpoints;
      link.handle(Hello, (hello) => {
        if (hello.protocol !== PROTOCOL_VERSION) {
          link.closeWithError(new DrawbridgeError('PROTOCOL_ERROR', `the hub speaks protocol ${hello.protocol}; this client speaks ${PROTOCOL_VERSION}`));
          return;
        }
        link.peerCapabilities = new Set([BASE_CAPABILITY, ...hello.capabilities.filter((c) => CLIENT_CAPABILITIES.includes(c))]);
        connected = { link, endpoints, limits: hello.limits, ...(hello.principal ? { principal: hello.principal } : {}) };
        this.connected = connected;
        resolve(connected);
      });
    });
  }
}
