/**
 * The stream relay. A session joins a stream on a client's link to a stream on the
 * device's edge link; the relay forwards frames between the two, enforces flow control,
 * counts bytes, and ends sessions for every reason there is (both sides done, a reset from
 * either side, a link lost, grant expiry or revocation, kill, idle or too long, device
 * disabled, hub shutdown), with an audit record for the open and the close.
 *
 * Memory: the relay never buffers per stream itself. It forwards a DATA frame only within
 * the credit the receiving end has granted (at most the window ahead of what it consumed),
 * and resets a stream whose sender goes beyond it, so what the hub holds for a stream in
 * its socket buffers is bounded by the window, even against a hostile peer.
 *
 * Addressing: a session is known hub-wide by its random id; each of its two legs is a
 * (link, stream id) pair whose id is meaningful only on that link. A leg on another hub
 * node would be a stream on a hub-to-hub link: the relay does not care which.
 */
import { performance } from 'node:perf_hooks';
import { closeReason, DrawbridgeError, parseCloseReason } from '../errors.js';
import { StreamConnect } from '../protocol/messages/index.js';
import { randomId } from '../protocol/tokens.js';
import type { Store } from '../store/store.js';
import type { Link, StreamFrameHandler } from '../transport/link.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { HubConfig } from './config.js';
import type { HubMetrics } from './metrics.js';

export type Side = 'client' | 'agent';

export interface StreamInfo {
  id: string;
  principal: string;
  device: string;
  target: string | null;
  clientAddress: string;
  grantId: string | null;
  grantEndsAt: number | null;
  startedAt: number;
}

export interface LiveSession extends StreamInfo {
  joined: boolean;
  bytesToDevice: number;
  bytesFromDevice: number;
}

interface Leg {
  link: Link;
  streamId: number;
  /** Bytes the relay may still forward to this leg (credit it granted, not yet used). */
  credit: number;
  eof: boolean;
}

interface Session extends StreamInfo {
  client: Leg;
  agent: Leg;
  state: 'connecting' | 'open' | 'ended';
  bytesToDevice: number;
  bytesFromDevice: number;
  lastActivity: number;
  setupStart: number;
}

interface Route {
  session: Session;
  side: Side;
}

export interface OpenRequest {
  clientLink: Link;
  clientStreamId: number;
  principal: string;
  device: string;
  target: string | null;
  clientAddress: string;
  grantId: string | null;
  grantEndsAt: number | null;
  agentLink: Link;
}

/** Per-link routing: stream id on that link -> session and which leg it is. */
class LinkRoutes implements StreamFrameHandler {
  readonly routes = new Map<number, Route>();
  /** Next stream id the hub assigns on this link (agent links only). */
  nextId = 1;

  constructor(
    private readonly relay: Relay,
    private readonly link: Link,
  ) {}

  onData(id: number, data: Buffer): void {
    const route = this.routes.get(id);
    if (route) this.relay.forwardData(route, data);
    else this.link.sendReset(id, closeReason('PROTOCOL_ERROR', 'no such stream on this link'));
  }

  onCredit(id: number, bytes: number): void {
    const route = this.routes.get(id);
    if (route) this.relay.forwardCredit(route, bytes);
  }

  onEof(id: number): void {
    const route = this.routes.get(id);
    if (route) this.relay.forwardEof(route);
    else this.link.sendReset(id, closeReason('PROTOCOL_ERROR', 'no such stream on this link'));
  }

  onReset(id: number, reason: string): void {
    const route = this.routes.get(id);
    if (route) this.relay.forwardReset(route, reason);
  }
}

export class Relay {
  private readonly sessions = new Map<string, Session>();
  private readonly routesByLink = new Map<Link, LinkRoutes>();
  private readonly perDevice = new Map<string, number>();
  private readonly pendingByPrincipal = new Map<string, number>();
  private pending = 0;
  private readonly sweepTimer: TimerHandle;
  /** Refreshed by the sweep: a frame's activity time without a clock call per frame. */
  private coarseNow: number;

  constructor(
    private readonly store: Store,
    private readonly config: HubConfig,
    private readonly metrics: HubMetrics,
    private readonly logger: Logger,
    private readonly clock: Clock,
  ) {
    this.coarseNow = clock.now();
    // Grants, idle limits and durations end on time: within one sweep (250 ms).
    this.sweepTimer = clock.setInterval(() => this.sweep(), 250);
    this.sweepTimer.unref();
  }

  /** Sessions being set up or open */
  get size(): number {
    return this.sessions.size;
  }

  countForDevice(device: string): number {
    return this.perDevice.get(device) ?? 0;
  }

  /** Takes over the stream frames of a link (client or agent) once it is authenticated. */
  adopt(link: Link): void {
    const routes = new LinkRoutes(this, link);
    this.routesByLink.set(link, routes);
    link.streams = routes;
  }

  /** The link is gone: every session with a leg on it ends. */
  linkClosed(link: Link, error: DrawbridgeError): void {
    const routes = this.routesByLink.get(link);
    if (!routes) return;
    this.routesByLink.delete(link);
    for (const route of [...routes.routes.values()]) this.end(route.session, error);
  }

  /** Is `streamId` free on this client link? */
  clientStreamInUse(link: Link, streamId: number): boolean {
    return this.routesByLink.get(link)?.routes.has(streamId) ?? false;
  }

  streamsOnLink(link: Link): number {
    return this.routesByLink.get(link)?.routes.size ?? 0;
  }

  /**
   * Opens a session after the caller authorised it: checks the limits, writes the open
   * audit record (if that fails, nothing is created: fail closed), asks the edge to connect
   * the target, and calls back once it did or could not.
   */
  async open(request: OpenRequest, done: (error: DrawbridgeError | undefined, session?: LiveSession) => void): Promise<void> {
    const limits = this.config.limits;
    if (this.pending >= limits.maxPendingStreams) throw new DrawbridgeError('TOO_MANY_PENDING', 'too many streams are being set up on this hub; retry shortly');
    if ((this.pendingByPrincipal.get(request.principal) ?? 0) >= limits.maxPendingStreamsPerPrincipal) {
      throw new DrawbridgeError('TOO_MANY_PENDING', `"${request.principal}" already has ${limits.maxPendingStreamsPerPrincipal} streams being set up (the limit per user)`);
    }
    if (this.countForDevice(request.device) >= limits.maxStreamsPerDevice) {
      throw new DrawbridgeError('TOO_MANY_STREAMS', `device "${request.device}" already has ${limits.maxStreamsPerDevice} open streams (the limit)`);
    }
    const clientRoutes = this.routesByLink.get(request.clientLink);
    const agentRoutes = this.routesByLink.get(request.agentLink);
    if (!clientRoutes || !agentRoutes) throw new DrawbridgeError('DEVICE_OFFLINE', `device "${request.device}" is offline`);
    if (clientRoutes.routes.has(request.clientStreamId)) throw new DrawbridgeError('PROTOCOL_ERROR', `stream ${request.clientStreamId} is already in use on this link`);
    if (clientRoutes.routes.size >= limits.maxStreamsPerLink) {
      throw new DrawbridgeError('TOO_MANY_STREAMS', `this connection already carries ${limits.maxStreamsPerLink} streams (the limit per client link)`);
    }

    const id = randomId(16);
    const startedAt = this.clock.now();
    try {
      await this.store.openSession(
        { id, principal: request.principal, device: request.device, target: request.target, clientAddress: request.clientAddress, grantId: request.grantId, startedAt, endedAt: null, bytesToDevice: 0, bytesFromDevice: 0, closeReason: null },
        {
          actor: request.principal,
          action: 'stream.open',
          device: request.device,
          details: { session: id, target: request.target, clientAddress: request.clientAddress, grant: request.grantId },
        },
      );
    } catch (cause) {
      throw new DrawbridgeError('AUDIT_UNAVAILABLE', undefined, { cause });
    }
    // The links may have gone while the audit record was written.
    if (!request.clientLink.isOpen || !request.agentLink.isOpen || !this.routesByLink.has(request.clientLink) || !this.routesByLink.has(request.agentLink)) {
      this.writeClose({ ...request, id, startedAt } as StreamInfo, 0, 0, false, request.agentLink.isOpen ? 'CLIENT_DISCONNECTED' : 'EDGE_DISCONNECTED', 'a link closed while the stream was set up');
      throw new DrawbridgeError('DEVICE_OFFLINE', `device "${request.device}" went offline`);
    }
    const window = this.config.limits.streamWindow;
    let agentStreamId = agentRoutes.nextId;
    while (agentRoutes.routes.has(agentStreamId)) agentStreamId = agentStreamId >= 0xffffffff ? 1 : agentStreamId + 1;
    agentRoutes.nextId = agentStreamId >= 0xffffffff ? 1 : agentStreamId + 1;
    const session: Session = {
      id,
      principal: request.principal,
      device: request.device,
      target: request.target,
      clientAddress: request.clientAddress,
      grantId: request.grantId,
      grantEndsAt: request.grantEndsAt,
      startedAt,
      client: { link: request.clientLink, streamId: request.clientStreamId, credit: window, eof: false },
      agent: { link: request.agentLink, streamId: agentStreamId, credit: window, eof: false },
      state: 'connecting',
      bytesToDevice: 0,
      bytesFromDevice: 0,
      lastActivity: startedAt,
      setupStart: performance.now(),
    };
    this.sessions.set(id, session);
    clientRoutes.routes.set(request.clientStreamId, { session, side: 'client' });
    agentRoutes.routes.set(agentStreamId, { session, side: 'agent' });
    this.perDevice.set(request.device, this.countForDevice(request.device) + 1);
    this.pending++;
    this.pendingByPrincipal.set(request.principal, (this.pendingByPrincipal.get(request.principal) ?? 0) + 1);
    this.metrics.pendingStreams.set(this.pending);

    request.agentLink.call(StreamConnect, { stream: agentStreamId, device: request.device, session: id }, limits.streamConnectTimeout, (error) => {
      if (session.state === 'ended') {
        // Ended meanwhile (client left, kill, ...): if the edge did connect, release its end.
        if (!error) request.agentLink.sendReset(agentStreamId, closeReason('CLIENT_DISCONNECTED', 'the stream ended before it was set up'));
        done(new DrawbridgeError('CLIENT_DISCONNECTED', 'the stream ended before it was set up'));
        return;
      }
      if (error) {
        const refusal = error.code === 'TIMEOUT' ? new DrawbridgeError('TIMEOUT', `the edge did not connect "${request.device}" within ${limits.streamConnectTimeout} ms`) : error;
        this.end(session, refusal, { resetAgent: error.code === 'TIMEOUT' });
        done(refusal);
        return;
      }
      this.markOpen(session);
      done(undefined, liveView(session));
    });
  }

  private markOpen(session: Session): void {
    session.state = 'open';
    this.leavePending(session);
    this.metrics.activeStreams.inc();
    this.metrics.streamSetupSeconds.observe((performance.now() - session.setupStart) / 1000);
  }

  private leavePending(session: Session): void {
    this.pending--;
    const left = (this.pendingByPrincipal.get(session.principal) ?? 1) - 1;
    if (left > 0) this.pendingByPrincipal.set(session.principal, left);
    else this.pendingByPrincipal.delete(session.principal);
    this.metrics.pendingStreams.set(this.pending);
  }

  // ---- frames ----

  forwardData(route: Route, data: Buffer): void {
    const session = route.session;
    const from = route.side === 'client' ? session.client : session.agent;
    const to = route.side === 'client' ? session.agent : session.client;
    if (session.state !== 'open') return this.violation(session, `${route.side} sent data before the stream was open`);
    if (from.eof) return this.violation(session, `${route.side} sent data after its EOF`);
    if (data.length > to.credit) return this.violation(session, `${route.side} sent more than the receiver's window`);
    to.credit -= data.length;
    if (route.side === 'client') session.bytesToDevice += data.length;
    else session.bytesFromDevice += data.length;
    session.lastActivity = this.coarseNow;
    to.link.sendData(to.streamId, data);
  }

  forwardCredit(route: Route, bytes: number): void {
    const session = route.session;
    if (session.state !== 'open') return;
    const receiver = route.side === 'client' ? session.client : session.agent;
    const sender = route.side === 'client' ? session.agent : session.client;
    // Never let credit pile up beyond one window: a receiver that grants more than it can
    // have consumed would make the hub buffer for it.
    const granted = Math.min(bytes, this.config.limits.streamWindow - receiver.credit);
    if (granted <= 0) return;
    receiver.credit += granted;
    sender.link.sendCredit(sender.streamId, granted);
  }

  forwardEof(route: Route): void {
    const session = route.session;
    const from = route.side === 'client' ? session.client : session.agent;
    const to = route.side === 'client' ? session.agent : session.client;
    if (session.state !== 'open') return this.violation(session, `${route.side} sent EOF before the stream was open`);
    if (from.eof) return this.violation(session, `${route.side} sent EOF twice`);
    from.eof = true;
    session.lastActivity = this.coarseNow;
    to.link.sendEof(to.streamId);
    // Both directions finished: the stream is done, and its slot is free at once.
    if (session.client.eof && session.agent.eof) this.end(session, undefined);
  }

  forwardReset(route: Route, reason: string): void {
    const session = route.session;
    const parsed = parseCloseReason(reason);
    const fromClient = route.side === 'client';
    const code = parsed.code ?? 'CONNECTION_RESET';
    const message = parsed.message || (fromClient ? 'the client reset the stream' : 'the device side reset the stream');
    this.end(session, new DrawbridgeError(code, message), { resetClient: !fromClient, resetAgent: fromClient, resetReason: reason || closeReason(code, message) });
  }

  private violation(session: Session, what: string): void {
    this.logger.warn({ session: session.id, device: session.device, principal: session.principal }, `stream protocol violation: ${what}`);
    this.end(session, new DrawbridgeError('PROTOCOL_ERROR', `stream protocol violation: ${what}`));
  }

  // ---- ending ----

  /**
   * Ends a session: resets the legs still open (with the error's code and message, so the
   * client says why), frees its slot, and writes the close audit record with byte counts.
   */
  private end(
    session: Session,
    error: DrawbridgeError | undefined,
    options: { resetClient?: boolean; resetAgent?: boolean; resetReason?: string } = {},
  ): void {
    if (session.state === 'ended') return;
    const wasOpen = session.state === 'open';
    const wasConnecting = session.state === 'connecting';
    session.state = 'ended';
    this.sessions.delete(session.id);
    this.routesByLink.get(session.client.link)?.routes.delete(session.client.streamId);
    this.routesByLink.get(session.agent.link)?.routes.delete(session.agent.streamId);
    const remaining = this.countForDevice(session.device) - 1;
    if (remaining > 0) this.perDevice.set(session.device, remaining);
    else this.perDevice.delete(session.device);
    if (wasConnecting) this.leavePending(session);
    if (wasOpen) this.metrics.activeStreams.dec();
    if (error) {
      const reason = options.resetReason ?? closeReason(error.code, error.message);
      // The client's leg of a refused set-up is answered by the open request's error reply.
      if ((options.resetClient ?? true) && wasOpen) session.client.link.sendReset(session.client.streamId, reason);
      if ((options.resetAgent ?? true) && (wasOpen || wasConnecting)) session.agent.link.sendReset(session.agent.streamId, reason);
    }
    this.metrics.streamsTotal.inc({ outcome: error?.code ?? 'ok' });
    this.metrics.bytesRelayed.inc({ direction: 'to_device' }, session.bytesToDevice);
    this.metrics.bytesRelayed.inc({ direction: 'from_device' }, session.bytesFromDevice);
    this.writeClose(session, session.bytesToDevice, session.bytesFromDevice, wasOpen, error?.code ?? 'closed', error?.message);
  }

  private writeClose(info: StreamInfo, bytesToDevice: number, bytesFromDevice: number, joined: boolean, reason: string, message?: string): void {
    const endedAt = this.clock.now();
    void this.store
      .closeSession(
        info.id,
        { endedAt, bytesToDevice, bytesFromDevice, closeReason: reason },
        {
          actor: info.principal,
          action: 'stream.close',
          device: info.device,
          details: {
            session: info.id,
            reason,
            ...(message ? { message } : {}),
            joined,
            durationMs: endedAt - info.startedAt,
            bytesToDevice,
            bytesFromDevice,
          },
        },
      )
      .catch((err: unknown) => this.logger.error({ err, session: info.id }, 'could not write the stream close record'));
    this.logger.info({ session: info.id, device: info.device, principal: info.principal, reason, bytesToDevice, bytesFromDevice }, 'stream closed');
  }

  /** Ends one session by id (kill). Returns false when no such session is live. */
  endById(id: string, error: DrawbridgeError): boolean {
    const session = this.sessions.get(id);
    if (!session) return false;
    this.end(session, error);
    return true;
  }

  /** Ends every session matching `predicate` with `error`. Returns how many. */
  endWhere(predicate: (s: StreamInfo & { joined: boolean }) => boolean, error: DrawbridgeError): number {
    let n = 0;
    for (const session of [...this.sessions.values()]) {
      if (predicate({ ...session, joined: session.state === 'open' })) {
        this.end(session, error);
        n++;
      }
    }
    return n;
  }

  /** Grant expiry, idle limit and maximum duration; runs every 250 ms. */
  sweep(): void {
    const now = this.clock.now();
    this.coarseNow = now;
    const { streamIdleTimeout, maxStreamDuration } = this.config.limits;
    for (const session of [...this.sessions.values()]) {
      if (session.grantEndsAt !== null && session.grantEndsAt <= now) this.end(session, new DrawbridgeError('ACCESS_EXPIRED'));
      else if (streamIdleTimeout > 0 && session.state === 'open' && now - session.lastActivity >= streamIdleTimeout) {
        this.end(session, new DrawbridgeError('STREAM_IDLE', `the stream carried no data for ${Math.round(streamIdleTimeout / 1000)} s (limits.streamIdleTimeout)`));
      } else if (maxStreamDuration > 0 && now - session.startedAt >= maxStreamDuration) {
        this.end(session, new DrawbridgeError('STREAM_TOO_LONG', `the stream reached its maximum duration of ${Math.round(maxStreamDuration / 60_000)} min (limits.maxStreamDuration)`));
      }
    }
  }

  list(): LiveSession[] {
    return [...this.sessions.values()].map(liveView);
  }

  get(id: string): LiveSession | undefined {
    const session = this.sessions.get(id);
    return session ? liveView(session) : undefined;
  }

  closeAll(error: DrawbridgeError): void {
    for (const session of [...this.sessions.values()]) this.end(session, error);
  }

  stop(): void {
    this.clock.clearInterval(this.sweepTimer);
  }
}

function liveView(s: Session): LiveSession {
  return {
    id: s.id,
    principal: s.principal,
    device: s.device,
    target: s.target,
    clientAddress: s.clientAddress,
    grantId: s.grantId,
    grantEndsAt: s.grantEndsAt,
    startedAt: s.startedAt,
    joined: s.state === 'open',
    bytesToDevice: s.bytesToDevice,
    bytesFromDevice: s.bytesFromDevice,
  };
}
