/**
 * Limits on connections, before any request is read: a cap on concurrent connections in
 * total and per source address, and a first-request timeout for connections that finish
 * their TLS handshake and then say nothing. Without them, idle TLS connections were never
 * closed and a thousand unauthenticated ones kept real agents out. Over a cap a new
 * connection is closed at once; every closed connection is counted in a metric.
 */
import type { Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Clock, TimerHandle } from '../util/clock.js';
import { normalizeAddress, type TrustedProxies } from './client-address.js';
import type { HubMetrics } from './metrics.js';

export interface ConnectionGuardOptions {
  maxConnections: number;
  maxConnectionsPerAddress: number;
  firstRequestTimeoutMs: number;
  /** Connections from these are not capped per address: every client behind them shares it. */
  trustedProxies: TrustedProxies;
  clock: Clock;
  metrics: HubMetrics;
  /** A connection that sent no request in time: counted as a failed authentication of its source. */
  onFirstRequestTimeout(source: string): void;
}

export class ConnectionGuard {
  private total = 0;
  private readonly perAddress = new Map<string, number>();
  private readonly waiting = new WeakMap<object, TimerHandle>();

  constructor(private readonly options: ConnectionGuardOptions) {}

  /** Open connections (TCP accepted and not yet closed). */
  get size(): number {
    return this.total;
  }

  attach(server: Server): void {
    // Prepended, so a refused connection is closed before TLS spends anything on it.
    server.prependListener('connection', (socket: Socket) => this.admit(socket));
    server.on('secureConnection', (socket: Socket) => this.awaitFirstRequest(socket));
    const requested = (req: IncomingMessage): void => {
      const timer = this.waiting.get(req.socket);
      if (timer) {
        this.options.clock.clearTimeout(timer);
        this.waiting.delete(req.socket);
      }
    };
    server.prependListener('request', requested);
    server.prependListener('upgrade', requested);
  }

  private admit(socket: Socket): void {
    const address = normalizeAddress(socket.remoteAddress ?? 'unknown');
    const fromProxy = this.options.trustedProxies.has(address);
    const count = this.perAddress.get(address) ?? 0;
    const over = this.total >= this.options.maxConnections ? 'over_total_cap' : !fromProxy && count >= this.options.maxConnectionsPerAddress ? 'over_address_cap' : undefined;
    if (over) {
      this.options.metrics.connectionsClosed.inc({ reason: over });
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    this.total++;
    this.perAddress.set(address, count + 1);
    socket.once('close', () => {
      this.total--;
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left > 0) this.perAddress.set(address, left);
      else this.perAddress.delete(address);
    });
  }

  private awaitFirstRequest(socket: Socket): void {
    const timer = this.options.clock.setTimeout(() => {
      this.waiting.delete(socket);
      if (socket.destroyed) return;
      this.options.metrics.connectionsClosed.inc({ reason: 'first_request_timeout' });
      this.options.onFirstRequestTimeout(normalizeAddress(socket.remoteAddress ?? 'unknown'));
      socket.destroy();
    }, this.options.firstRequestTimeoutMs);
    timer.unref();
    this.waiting.set(socket, timer);
    socket.once('close', () => this.options.clock.clearTimeout(this.waiting.get(socket)));
  }
}
