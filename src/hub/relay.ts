/**
 * The stream relay: rendezvous tokens, joining the client and agent WebSockets, relaying
 * frames with bounded buffering, and ending streams for every reason there is (either
 * side closing, grant expiry or revocation, kill, device disabled, hub shutdown).
 *
 * Per stream the hub buffers at most HUB_HIGH_WATER_BYTES in each direction before it stops
 * reading the sending side (plus one frame of at most DATA_MAX_PAYLOAD_BYTES in flight).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type WebSocket from 'ws';
import { closeReason, closeWithError, DrawbridgeError, errorCodeForClose, parseCloseReason, type ErrorCode } from '../errors.js';
import { EOF_FRAME } from '../protocol/messages.js';
import { hashSecret, secretMatches } from '../protocol/tokens.js';
import type { Logger } from '../util/logger.js';
import type { Store } from '../store/store.js';
import type { HubConfig } from './config.js';
import type { HubMetrics } from './metrics.js';

export const HUB_HIGH_WATER_BYTES = 1024 * 1024;
const HUB_LOW_WATER_BYTES = 256 * 1024;

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

interface StreamState extends StreamInfo {
  setupStart: number;
  tokens: Record<Side, string | null>; // hashes; null once used
  sockets: Partial<Record<Side, WebSocket>>;
  joined: boolean;
  ended: boolean;
  bytesToDevice: number;
  bytesFromDevice: number;
  eofFrom: Record<Side, boolean>;
  pendingError?: DrawbridgeError;
  timer: NodeJS.Timeout;
}

export interface StreamTicket {
  streamId: string;
  clientToken: string;
  agentToken: string;
  expiresAt: number;
}

export interface LiveSession extends StreamInfo {
  joined: boolean;
  bytesToDevice: number;
  bytesFromDevice: number;
}

export class Relay {
  private readonly streams = new Map<string, StreamState>();
  /** Open streams per device, kept alongside `streams` so listings and caps are O(1). */
  private readonly perDevice = new Map<string, number>();
  private pending = 0;

  constructor(
    private readonly store: Store,
    private readonly config: HubConfig,
    private readonly metrics: HubMetrics,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Streams requested or open */
  get size(): number {
    return this.streams.size;
  }

  countForDevice(device: string): number {
    return this.perDevice.get(device) ?? 0;
  }

  /**
   * Registers a stream after the caller has authorised it. Writes the open audit record
   * first: if that fails, nothing is created (fail closed).
   */
  async create(info: Omit<StreamInfo, 'id' | 'startedAt'>): Promise<StreamTicket> {
    if (this.pending >= this.config.limits.maxPendingStreams) {
      throw new DrawbridgeError('TOO_MANY_PENDING');
    }
    if (this.countForDevice(info.device) >= this.config.limits.maxStreamsPerDevice) {
      throw new DrawbridgeError(
        'TOO_MANY_STREAMS',
        `device "${info.device}" already has ${this.config.limits.maxStreamsPerDevice} open streams (the limit)`,
      );
    }
    const id = randomBytes(16).toString('hex');
    const clientToken = randomBytes(32).toString('base64url');
    const agentToken = randomBytes(32).toString('base64url');
    const startedAt = this.now();
    try {
      await this.store.openSession(
        { ...info, id, startedAt, endedAt: null, bytesToDevice: 0, bytesFromDevice: 0, closeReason: null },
        {
          actor: info.principal,
          action: 'stream.open',
          device: info.device,
          details: { session: id, target: info.target, clientAddress: info.clientAddress, grant: info.grantId },
        },
      );
    } catch (cause) {
      throw new DrawbridgeError('AUDIT_UNAVAILABLE', undefined, { cause });
    }
    const expiresAt = startedAt + this.config.limits.rendezvousTimeout;
    const state: StreamState = {
      ...info,
      id,
      startedAt,
      setupStart: performance.now(),
      tokens: { client: hashSecret(clientToken), agent: hashSecret(agentToken) },
      sockets: {},
      joined: false,
      ended: false,
      bytesToDevice: 0,
      bytesFromDevice: 0,
      eofFrom: { client: false, agent: false },
      timer: setTimeout(() => this.end(id, new DrawbridgeError('TIMEOUT', 'the stream was not set up in time (rendezvous timed out)')), this.config.limits.rendezvousTimeout),
    };
    state.timer.unref();
    this.streams.set(id, state);
    this.perDevice.set(info.device, this.countForDevice(info.device) + 1);
    this.pending++;
    this.metrics.pendingStreams.set(this.pending);
    return { streamId: id, clientToken, agentToken, expiresAt };
  }

  /**
   * Checks a rendezvous token before the upgrade completes. Single use: the token is
   * consumed here, so a replay fails even if the first attempt's upgrade then fails.
   */
  claim(streamId: string, side: Side, token: string): DrawbridgeError | undefined {
    const state = this.streams.get(streamId);
    const expected = state?.tokens[side];
    // Compare even when the stream is unknown so both paths cost the same.
    const ok = secretMatches(token, expected ?? '0'.repeat(64)) && state !== undefined && !state.ended;
    if (!ok) return new DrawbridgeError('RENDEZVOUS_INVALID');
    state.tokens[side] = null;
    return undefined;
  }

  /** Attaches an upgraded socket to its claimed stream. */
  attach(streamId: string, side: Side, ws: WebSocket): void {
    const state = this.streams.get(streamId);
    if (!state || state.ended) {
      closeWithError(ws, 'RENDEZVOUS_INVALID', 'the stream has ended');
      return;
    }
    state.sockets[side] = ws;
    ws.on('error', () => undefined);
    if (state.pendingError) {
      this.end(streamId, state.pendingError);
      return;
    }
    ws.once('close', (code: number, reason: Buffer) => this.onSocketClose(state, side, code, reason.toString()));
    if (state.sockets.client && state.sockets.agent) this.join(state);
    else {
      // Until joined, a message from this side would be lost: hold the socket's reads.
      ws.pause();
    }
  }

  /** The agent could not serve a stream (target refused, cap reached ...). */
  reject(device: string, streamId: string, code: ErrorCode, message: string): void {
    const state = this.streams.get(streamId);
    if (!state || state.device !== device || state.joined) return;
    const error = new DrawbridgeError(code, message);
    if (!state.sockets.client) {
      // The client has not arrived yet: answer it as soon as it does, or at the timeout.
      state.pendingError = error;
      return;
    }
    this.end(streamId, error);
  }

  private join(state: StreamState): void {
    const client = state.sockets.client as WebSocket;
    const agent = state.sockets.agent as WebSocket;
    state.joined = true;
    clearTimeout(state.timer);
    this.pending--;
    this.metrics.pendingStreams.set(this.pending);
    this.metrics.activeStreams.inc();
    this.metrics.streamSetupSeconds.observe((performance.now() - state.setupStart) / 1000);
    this.pipe(state, client, agent, 'client');
    this.pipe(state, agent, client, 'agent');
    client.resume();
    agent.resume();
  }

  private pipe(state: StreamState, from: WebSocket, to: WebSocket, fromSide: Side): void {
    let paused = false;
    const onSent = (error?: Error): void => {
      if (!error && paused && to.bufferedAmount < HUB_LOW_WATER_BYTES) {
        paused = false;
        from.resume();
      }
    };
    from.on('message', (data: Buffer, isBinary: boolean) => {
      if (to.readyState !== to.OPEN) return;
      if (!isBinary) {
        if (String(data) === EOF_FRAME) {
          state.eofFrom[fromSide] = true;
          to.send(EOF_FRAME, { binary: false });
        }
        return;
      }
      if (fromSide === 'client') state.bytesToDevice += data.length;
      else state.bytesFromDevice += data.length;
      to.send(data, { binary: true }, onSent);
      if (!paused && to.bufferedAmount > HUB_HIGH_WATER_BYTES) {
        paused = true;
        from.pause();
      }
    });
  }

  private onSocketClose(state: StreamState, side: Side, code: number, reason: string): void {
    if (state.ended) return;
    const parsed = parseCloseReason(reason);
    const errorCode = errorCodeForClose(code, parsed.code);
    if (!state.joined && side === 'agent' && !state.sockets.client) {
      // The device side gave up before the client arrived: keep the reason for the client.
      delete state.sockets.agent;
      state.pendingError = new DrawbridgeError(errorCode ?? 'TARGET_UNREACHABLE', parsed.message || undefined);
      return;
    }
    if (code === 1000 || code === 1005) {
      this.end(state.id, undefined, side === 'client' ? 'closed by client' : 'closed by device side', code, reason);
    } else if (errorCode && state.sockets[side === 'client' ? 'agent' : 'client']) {
      this.end(state.id, new DrawbridgeError(errorCode, parsed.message || undefined));
    } else {
      this.end(state.id, undefined, `${side} connection lost (${code})`, code === 1006 ? 1001 : code, reason);
    }
  }

  /**
   * Ends a stream: closes both sockets with the error's close code (or the peer's own close),
   * writes the close audit record with byte counts and reason.
   */
  end(streamId: string, error?: DrawbridgeError, description?: string, passCode?: number, passReason?: string): void {
    const state = this.streams.get(streamId);
    if (!state || state.ended) return;
    state.ended = true;
    clearTimeout(state.timer);
    this.streams.delete(streamId);
    const remaining = this.countForDevice(state.device) - 1;
    if (remaining > 0) this.perDevice.set(state.device, remaining);
    else this.perDevice.delete(state.device);
    if (state.joined) this.metrics.activeStreams.dec();
    else {
      this.pending--;
      this.metrics.pendingStreams.set(this.pending);
    }
    const closeCode = error ? error.closeCode : (passCode ?? 1000);
    const reasonText = error ? closeReason(error.code, error.message) : (passReason ?? '');
    const validCode = closeCode === 1005 || closeCode === 1006 ? 1000 : closeCode;
    for (const ws of [state.sockets.client, state.sockets.agent]) {
      if (!ws) continue;
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(validCode, reasonText);
      // Closing either end closes the chain within 1 s, even if a peer never answers.
      setTimeout(() => ws.terminate(), 1000).unref();
    }
    const outcome = error?.code ?? 'ok';
    this.metrics.streamsTotal.inc({ outcome });
    this.metrics.bytesRelayed.inc({ direction: 'to_device' }, state.bytesToDevice);
    this.metrics.bytesRelayed.inc({ direction: 'from_device' }, state.bytesFromDevice);
    const endedAt = this.now();
    const reason = error ? error.code : (description ?? 'closed');
    void this.store
      .closeSession(
        state.id,
        { endedAt, bytesToDevice: state.bytesToDevice, bytesFromDevice: state.bytesFromDevice, closeReason: reason },
        {
          actor: state.principal,
          action: 'stream.close',
          device: state.device,
          details: {
            session: state.id,
            reason,
            ...(error ? { message: error.message } : {}),
            joined: state.joined,
            durationMs: endedAt - state.startedAt,
            bytesToDevice: state.bytesToDevice,
            bytesFromDevice: state.bytesFromDevice,
          },
        },
      )
      .catch((err: unknown) => this.logger.error({ err, session: state.id }, 'could not write the stream close record'));
    this.logger.info(
      { session: state.id, device: state.device, principal: state.principal, reason, bytesToDevice: state.bytesToDevice, bytesFromDevice: state.bytesFromDevice },
      'stream closed',
    );
  }

  /** Ends every stream matching `predicate` with `error`. Returns how many. */
  endWhere(predicate: (s: StreamInfo & { joined: boolean }) => boolean, error: DrawbridgeError): number {
    let n = 0;
    for (const state of [...this.streams.values()]) {
      if (predicate(state)) {
        this.end(state.id, error);
        n++;
      }
    }
    return n;
  }

  /** Ends streams whose grant window has closed. Called on a short timer. */
  sweepExpiredGrants(): void {
    const now = this.now();
    this.endWhere((s) => s.grantEndsAt !== null && s.grantEndsAt <= now, new DrawbridgeError('ACCESS_EXPIRED'));
  }

  list(): LiveSession[] {
    return [...this.streams.values()].map(liveView);
  }

  get(id: string): LiveSession | undefined {
    const state = this.streams.get(id);
    return state ? liveView(state) : undefined;
  }

  closeAll(error: DrawbridgeError): void {
    this.endWhere(() => true, error);
  }
}

function liveView(s: StreamState): LiveSession {
  return {
    id: s.id,
    principal: s.principal,
    device: s.device,
    target: s.target,
    clientAddress: s.clientAddress,
    grantId: s.grantId,
    grantEndsAt: s.grantEndsAt,
    startedAt: s.startedAt,
    joined: s.joined,
    bytesToDevice: s.bytesToDevice,
    bytesFromDevice: s.bytesFromDevice,
  };
}
