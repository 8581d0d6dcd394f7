/**
 * A link: one WebSocket connection between the hub and an agent or a client, carrying
 * control messages (JSON envelopes, requests matched to replies by id) and the frames of
 * every stream multiplexed on it. Used on both ends; the owner decides what the messages
 * and streams mean.
 *
 * Writing: control messages go to the socket at once. Stream frames go at once too unless
 * the socket already holds LINK_HIGH_WATER_BYTES, in which case they wait in a queue in
 * arrival order, so a control message never waits behind more than that much stream data.
 * Bulk messages (telemetry) wait until the queue is empty and the socket nearly so. Writes
 * in one round of I/O are gathered into one buffer and written once: one TLS write for many
 * frames, and one object for the socket to hold instead of two per frame (fewer objects
 * outliving a scavenge while a slow peer drains means far less major GC on the hub).
 *
 * Reading is never paused: stream data is bounded by each stream's credit window, which
 * the owner enforces, and control messages by their size limits.
 *
 * Liveness: each end checks every pingIntervalMs whether it has heard anything from its peer
 * (data, credit, control, a ping or a pong). If it has, the peer is alive and no ping is sent;
 * if not, it pings (the peer's pong is heard); a link that has received nothing at all across
 * two intervals is cut (a dead peer is found within three intervals). Pings go out only on
 * quiet links, at most one per interval in all: a hub holding 10,000 idle links handles a
 * quarter of the keepalive traffic of both ends pinging every interval.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { closeReason, DrawbridgeError, isErrorCode, parseCloseReason, type ErrorCode } from '../errors.js';
import {
  BASE_CAPABILITY,
  encodeEnvelope,
  ErrorBodySchema,
  MAX_CONTROL_BYTES,
  messageSpec,
  parseEnvelope,
  PROTOCOL_VERSION,
  type Envelope,
  type MessageSpec,
  type Party,
} from '../protocol/control.js';
import {
  encodeClose,
  encodeCredit,
  encodeDataHeader,
  encodeEof,
  encodePing,
  encodePong,
  encodeReset,
  encodeText,
  FrameDecoder,
  FrameError,
  type FrameSink,
} from '../protocol/frames.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { ByteQueue } from './byte-queue.js';
import { youngGc } from './young-gc.js';
import type { Logger } from '../util/logger.js';

/** Socket bytes beyond which stream frames queue in user space (control still goes at once). */
export const LINK_HIGH_WATER_BYTES = 256 * 1024;
/** A batch this large is written at once rather than at the end of the I/O round. */
export const MAX_BATCH_BYTES = 128 * 1024;
/** Frames up to this size go to the socket at once when nothing else is waiting. */
export const IMMEDIATE_MAX_BYTES = 2048;
/** Batches up to this size are joined into one buffer before the write. */
export const SMALL_BATCH_BYTES = 4096;
/** Bulk messages go only while the socket holds less than this. */
const BULK_LOW_WATER_BYTES = 32 * 1024;
/** Unknown message types are logged this many times per link, then counted silently. */
const UNKNOWN_LOG_LIMIT = 5;
/** After a close frame, the peer gets this long to close its end before the socket is cut. */
const CLOSE_GRACE_MS = 1000;
/**
 * Requests from the peer being handled at once; more are refused with TOO_MANY_PENDING, so
 * one peer cannot queue unbounded work (store lookups, connects) on this end.
 */
export const MAX_INBOUND_REQUESTS = 256;

export interface StreamFrameHandler {
  onData(streamId: number, data: Buffer): void;
  onCredit(streamId: number, bytes: number): void;
  onEof(streamId: number): void;
  onReset(streamId: number, reason: string): void;
}

export interface LinkCloseInfo {
  /** WebSocket close code (1006 when the connection dropped without one) */
  code: number;
  reason: string;
  /** The error code parsed from the reason, if it names one */
  errorCode?: ErrorCode;
  /** true when this end decided to close */
  local: boolean;
}

export interface LinkOptions {
  socket: Socket;
  /** Bytes read with the upgrade response or request, already part of the link. */
  head?: Buffer;
  /** 'server' is the hub's end: it expects masked frames and sends unmasked ones. */
  side: 'server' | 'client';
  /** Who is at the other end, for checking that each message type may come from it. */
  peer: Party;
  self: Party;
  clock: Clock;
  logger: Logger;
  pingIntervalMs: number;
  maxControlBytes?: number;
  /** Called once, when the link has closed for any reason. */
  onClose?: (info: LinkCloseInfo) => void;
}

type RequestHandler = (body: unknown) => unknown;

interface PendingRequest {
  spec: MessageSpec;
  resolve(value: unknown): void;
  reject(error: DrawbridgeError): void;
  timer: TimerHandle;
}

export class Link {
  readonly id = randomBytes(6).toString('hex');
  /** Capabilities the peer announced (plus the base one); sends of other types are dropped. */
  peerCapabilities = new Set<string>([BASE_CAPABILITY]);
  /** Where stream frames go; until set, they are answered with RESET. */
  streams: StreamFrameHandler | undefined;
  /** Round-trip time of the last answered ping, in ms. */
  rttMs: number | undefined;
  readonly remoteAddress: string;

  private readonly socket: Socket;
  private readonly masked: boolean;
  private readonly decoder: FrameDecoder;
  private readonly handlers = new Map<string, RequestHandler>();
  private readonly pending = new Map<number, PendingRequest>();
  private nextRequestId = 1;
  private readonly queue = new ByteQueue();
  private readonly bulkQueue: Buffer[] = [];
  private batch: Buffer[] = [];
  private batchBytes = 0;
  private flushScheduled = false;
  private closing = false;
  private closed = false;
  private closeInfo: LinkCloseInfo | undefined;
  private readonly pingTimer: TimerHandle;
  private heardSinceLastPing = true;
  private silentIntervals = 0;
  private unknownLogged = 0;
  private inboundRequests = 0;
  private closeTimer: TimerHandle | undefined;
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly options: LinkOptions) {
    this.socket = options.socket;
    this.masked = options.side === 'client';
    this.remoteAddress = options.socket.remoteAddress ?? 'unknown';
    this.decoder = new FrameDecoder(this.sink(), {
      expectMasked: options.side === 'server',
      maxTextBytes: options.maxControlBytes ?? MAX_CONTROL_BYTES,
    });
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.onSocketData(chunk));
    this.socket.on('drain', () => this.flush());
    this.socket.on('error', () => undefined);
    this.socket.once('close', () => this.finish({ code: 1006, reason: 'the connection dropped', local: false }));
    this.pingTimer = options.clock.setInterval(() => this.heartbeat(), options.pingIntervalMs);
    this.pingTimer.unref();
    if (options.head && options.head.length > 0) queueMicrotask(() => this.onSocketData(options.head as Buffer));
  }

  get isOpen(): boolean {
    return !this.closing && !this.closed;
  }

  /** Bytes waiting to be sent (socket buffer plus the stream queue). */
  get backlogBytes(): number {
    return this.buffered + this.queue.length;
  }

  /** Handles one message type; for requests, the handler's return value (or promise) is the reply. */
  handle<B, R>(spec: MessageSpec<B, R>, handler: (body: B) => R | Promise<R> | void): void {
    this.handlers.set(spec.type, handler as RequestHandler);
  }

  /** Sends a notification. Returns false when it was not sent (link closed, or the peer lacks the capability). */
  send<B>(spec: MessageSpec<B, unknown>, body: B): boolean {
    return this.sendEnvelope(spec, { v: PROTOCOL_VERSION, type: spec.type, body });
  }

  /** Sends a request and resolves with the peer's result (validated), or rejects with its error. */
  request<B, R>(spec: MessageSpec<B, R>, body: B, timeoutMs = 30_000): Promise<R> {
    return new Promise<R>((resolve, reject) => this.call(spec, body, timeoutMs, (error, result) => (error ? reject(error) : resolve(result as R))));
  }

  /**
   * The callback form of request(): the callback runs synchronously when the reply is
   * decoded, before any frame that follows it on the link, so the owner can change a
   * stream's state in frame order.
   */
  call<B, R>(spec: MessageSpec<B, R>, body: B, timeoutMs: number, callback: (error: DrawbridgeError | undefined, result?: R) => void): void {
    if (!spec.result) throw new Error(`"${spec.type}" is not a request`);
    if (!this.isOpen) return callback(this.closedError());
    if (!this.peerCapabilities.has(spec.capability)) {
      return callback(new DrawbridgeError('UNSUPPORTED', `the peer does not support "${spec.type}" (capability ${spec.capability})`));
    }
    const id = this.nextRequestId;
    this.nextRequestId = this.nextRequestId >= 2 ** 31 - 1 ? 1 : this.nextRequestId + 1;
    const timer = this.options.clock.setTimeout(() => {
      this.pending.delete(id);
      callback(new DrawbridgeError('TIMEOUT', `no answer to "${spec.type}" within ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    this.pending.set(id, {
      spec: spec as MessageSpec,
      resolve: (value) => callback(undefined, value as R),
      reject: (error) => callback(error),
      timer,
    });
    this.sendEnvelope(spec, { v: PROTOCOL_VERSION, type: spec.type, id, body });
  }

  /** Resolves once the control backlog is below the high-water mark (send-side backpressure). */
  writable(): Promise<void> {
    if (!this.isOpen || (this.queue.length === 0 && this.buffered < LINK_HIGH_WATER_BYTES)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  sendData(streamId: number, data: Buffer): void {
    if (this.closed) return;
    const header = encodeDataHeader(streamId, data.length, this.masked);
    if (this.queue.length === 0 && this.buffered < LINK_HIGH_WATER_BYTES) {
      if (data.length <= IMMEDIATE_MAX_BYTES) {
        // A small piece (a keystroke, a reply) as one buffer, so it can go out at once.
        this.write(Buffer.concat([header, data], header.length + data.length));
        return;
      }
      // Header and data go into the batch together: written alone, the header would make a
      // TLS record and a syscall of its own, and the peer would decrypt and handle it alone.
      this.gather(header);
      this.gather(data);
    } else {
      this.queue.push(header);
      this.queue.push(data);
    }
  }

  sendCredit(streamId: number, bytes: number): void {
    if (!this.closed) this.write(encodeCredit(streamId, bytes, this.masked));
  }

  /** EOF follows the stream's queued data, so it never overtakes it. */
  sendEof(streamId: number): void {
    if (this.closed) return;
    const frame = encodeEof(streamId, this.masked);
    if (this.queue.length === 0) this.write(frame);
    else this.queue.push(frame);
  }

  /** RESET goes at once: whatever data of the stream is still queued is moot. */
  sendReset(streamId: number, reason: string): void {
    if (!this.closed) this.write(encodeReset(streamId, reason, this.masked));
  }

  /** Closes the link with a WebSocket close code and reason; the peer gets CLOSE_GRACE_MS to answer. */
  close(code: number, reason: string): void {
    if (this.closing || this.closed) return;
    this.closing = true;
    this.closeInfo = { code, reason, local: true, ...errorCodeOf(reason) };
    this.write(encodeClose(sendableCloseCode(code), reason, this.masked));
    this.uncork();
    this.socket.end();
    this.closeTimer = this.options.clock.setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    this.closeTimer.unref();
    this.failPending(this.closedError());
  }

  /** Closes with the error's own close code and a reason that names its code. */
  closeWithError(error: DrawbridgeError): void {
    this.close(error.closeCode, closeReason(error.code, error.message));
  }

  /** Cuts the connection without a close handshake (a dead or hostile peer). */
  terminate(code = 1006, reason = 'terminated'): void {
    if (!this.closeInfo) this.closeInfo = { code, reason, local: true, ...errorCodeOf(reason) };
    this.socket.destroy();
  }

  private closedError(): DrawbridgeError {
    const info = this.closeInfo;
    if (info?.errorCode) return new DrawbridgeError(info.errorCode, parseCloseReason(info.reason).message);
    return new DrawbridgeError('LINK_LOST', `the link is closed${info ? ` (${info.code}${info.reason ? `: ${info.reason}` : ''})` : ''}`);
  }

  private sendEnvelope(spec: MessageSpec, envelope: Envelope): boolean {
    if (!this.isOpen) return false;
    if (!this.peerCapabilities.has(spec.capability)) {
      this.options.logger.debug({ link: this.id, type: spec.type, capability: spec.capability }, 'not sent: the peer lacks the capability');
      return false;
    }
    const text = encodeEnvelope(envelope);
    const size = Buffer.byteLength(text);
    if (size > spec.maxBytes) {
      // A programming error on this side: never put an oversized message on the wire.
      throw new DrawbridgeError('PAYLOAD_TOO_LARGE', `"${spec.type}" of ${size} bytes exceeds its limit of ${spec.maxBytes}`);
    }
    const frame = encodeText(text, this.masked);
    if (spec.priority === 'bulk') {
      if (this.queue.length === 0 && this.bulkQueue.length === 0 && this.buffered < BULK_LOW_WATER_BYTES) this.write(frame);
      else this.bulkQueue.push(frame);
    } else {
      this.write(frame);
    }
    return true;
  }

  private reply(re: number, body: unknown): void {
    if (!this.isOpen) return;
    this.write(encodeText(encodeEnvelope({ v: PROTOCOL_VERSION, type: 'result', re, body }), this.masked));
  }

  private replyError(re: number, code: ErrorCode, message: string): void {
    if (!this.isOpen) return;
    this.write(encodeText(encodeEnvelope({ v: PROTOCOL_VERSION, type: 'error', re, body: { code, message: message.slice(0, 1024) } }), this.masked));
  }

  /** Bytes handed to the socket and not yet sent, plus the batch being gathered. */
  private get buffered(): number {
    return this.socket.writableLength + this.batchBytes;
  }

  private write(buffer: Buffer): void {
    // flushScheduled: something was already written or gathered in this round of I/O.
    if (!this.flushScheduled && buffer.length <= IMMEDIATE_MAX_BYTES && this.socket.writableLength === 0) {
      // Nothing waiting: a small frame goes now rather than after this round of I/O, which
      // is what an interactive stream (and a stream set-up) waits for at every hop. Only the
      // first of a round: the frames that follow it in the same round (other streams' set-up
      // and replies under load) are gathered into one write, as each write is a TLS record,
      // a syscall and a wake-up of the peer.
      this.socket.write(buffer);
      this.scheduleFlush();
      return;
    }
    this.gather(buffer);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Written after this round of I/O callbacks: the frames written while reading a burst
    // of input go out together.
    setImmediate(this.uncorkBound);
  }

  /** Adds to the batch written at the end of this round of I/O (or at once when it is large). */
  private gather(buffer: Buffer): void {
    this.batch.push(buffer);
    this.batchBytes += buffer.length;
    if (this.batchBytes >= MAX_BATCH_BYTES) this.uncork();
    else this.scheduleFlush();
  }

  private readonly uncorkBound = (): void => {
    this.flushScheduled = false;
    this.uncork();
  };

  /** Writes the gathered batch now. */
  private uncork(): void {
    if (this.batchBytes === 0) return;
    const batch = this.batch;
    const bytes = this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    // Small batches (control messages, interactive bytes) are joined here, which is cheaper
    // than a gathered write; large ones go corked, so the bulk bytes are copied only once,
    // into TLS records, and no large buffer is made here to outlive the write.
    if (batch.length === 1 || bytes <= SMALL_BATCH_BYTES) {
      this.socket.write(batch.length === 1 ? (batch[0] as Buffer) : Buffer.concat(batch, bytes));
      return;
    }
    this.socket.cork();
    for (const buffer of batch) this.socket.write(buffer);
    this.socket.uncork();
  }

  private flush(): void {
    if (this.queue.length > 0) {
      // The batch (control messages, mostly) goes first, then queued data up to the mark.
      this.uncork();
      while (this.queue.length > 0 && this.buffered < LINK_HIGH_WATER_BYTES) this.socket.write(this.queue.shift() as Buffer);
    }
    if (this.queue.length === 0) {
      let j = 0;
      while (j < this.bulkQueue.length && this.buffered < BULK_LOW_WATER_BYTES) {
        this.write(this.bulkQueue[j] as Buffer);
        j++;
      }
      if (j > 0) this.bulkQueue.splice(0, j);
    }
    if (this.queue.length === 0 && this.buffered < LINK_HIGH_WATER_BYTES) {
      for (const waiter of this.waiters.splice(0)) waiter();
    }
  }

  private heartbeat(): void {
    if (this.closed) return;
    if (this.heardSinceLastPing) {
      this.silentIntervals = 0;
      this.heardSinceLastPing = false;
      return;
    }
    if (++this.silentIntervals >= 2) {
      this.options.logger.warn({ link: this.id, peer: this.options.peer, remoteAddress: this.remoteAddress }, 'link silent for two ping intervals; cutting it');
      this.terminate(1006, closeReason('LINK_LOST', 'the peer stopped answering pings'));
      return;
    }
    const payload = Buffer.allocUnsafe(8);
    payload.writeDoubleBE(performance.now(), 0);
    this.write(encodePing(payload, this.masked));
  }

  private onSocketData(chunk: Buffer): void {
    if (this.closed) return;
    this.heardSinceLastPing = true;
    youngGc.read(chunk.length);
    try {
      this.decoder.push(chunk);
    } catch (error) {
      if (error instanceof FrameError) {
        this.options.logger.warn({ link: this.id, peer: this.options.peer, remoteAddress: this.remoteAddress, err: error.message }, 'link protocol violation');
        this.close(error.closeCode, closeReason('PROTOCOL_ERROR', error.message));
        return;
      }
      throw error;
    }
  }

  private sink(): FrameSink {
    const refuse = (streamId: number): void => this.sendReset(streamId, closeReason('PROTOCOL_ERROR', 'no such stream on this link'));
    return {
      onData: (id, data) => (this.streams ? this.streams.onData(id, data) : refuse(id)),
      onCredit: (id, bytes) => this.streams?.onCredit(id, bytes),
      onEof: (id) => (this.streams ? this.streams.onEof(id) : refuse(id)),
      onReset: (id, reason) => this.streams?.onReset(id, reason),
      onText: (text) => this.onText(text),
      onPing: (payload) => {
        if (!this.closing) this.write(encodePong(payload, this.masked));
      },
      onPong: (payload) => {
        if (payload.length === 8) this.rttMs = performance.now() - payload.readDoubleBE(0);
      },
      onClose: (code, reason) => {
        if (!this.closeInfo) this.closeInfo = { code, reason, local: false, ...errorCodeOf(reason) };
        if (!this.closing) {
          this.closing = true;
          this.write(encodeClose(code === 1005 ? 1000 : code, '', this.masked));
          this.uncork();
          this.socket.end();
          this.closeTimer = this.options.clock.setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
          this.closeTimer.unref();
        }
        this.failPending(this.closedError());
      },
    };
  }

  private onText(text: string): void {
    if (this.closing) return;
    let envelope: Envelope;
    try {
      envelope = parseEnvelope(text);
    } catch (error) {
      this.options.logger.warn({ link: this.id, peer: this.options.peer, err: (error as Error).message }, 'malformed control message');
      this.close(1008, closeReason('PROTOCOL_ERROR', (error as Error).message));
      return;
    }
    if (envelope.type === 'result' || envelope.type === 'error') {
      this.onReply(envelope);
      return;
    }
    const spec = messageSpec(envelope.type);
    const accepted = spec && spec.from === this.options.peer && spec.to.includes(this.options.self);
    const handler = accepted ? this.handlers.get(envelope.type) : undefined;
    if (!spec || !accepted) {
      // Never fatal: a newer peer may know types this one does not.
      this.logUnknown(envelope.type);
      if (envelope.id !== undefined) this.replyError(envelope.id, 'UNSUPPORTED', `"${envelope.type}" is not supported here`);
      return;
    }
    if (Buffer.byteLength(text) > spec.maxBytes) {
      this.options.logger.warn({ link: this.id, type: spec.type, bytes: Buffer.byteLength(text), limit: spec.maxBytes }, 'control message over its size limit; dropped');
      if (envelope.id !== undefined) this.replyError(envelope.id, 'PAYLOAD_TOO_LARGE', `"${spec.type}" is limited to ${spec.maxBytes} bytes`);
      return;
    }
    if ((spec.result !== undefined) !== (envelope.id !== undefined)) {
      this.options.logger.warn({ link: this.id, type: spec.type }, spec.result ? 'request without an id; dropped' : 'notification with an id; dropped');
      if (envelope.id !== undefined) this.replyError(envelope.id, 'PROTOCOL_ERROR', `"${spec.type}" is a notification`);
      return;
    }
    const parsed = spec.body.safeParse(envelope.body ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const message = `invalid "${spec.type}": ${issue ? `${issue.path.join('.') || '(body)'} ${issue.message}` : 'invalid body'}`;
      this.options.logger.warn({ link: this.id, type: spec.type, err: message }, 'invalid control message; dropped');
      if (envelope.id !== undefined) this.replyError(envelope.id, 'VALIDATION_FAILED', message);
      return;
    }
    if (!handler) {
      if (envelope.id !== undefined) this.replyError(envelope.id, 'INVALID_STATE', `"${spec.type}" is not accepted on this link now`);
      else this.options.logger.debug({ link: this.id, type: spec.type }, 'no handler for this message now; dropped');
      return;
    }
    const id = envelope.id;
    if (id !== undefined && this.inboundRequests >= MAX_INBOUND_REQUESTS) {
      this.replyError(id, 'TOO_MANY_PENDING', `more than ${MAX_INBOUND_REQUESTS} requests are in progress on this link; retry shortly`);
      return;
    }
    let outcome: unknown;
    try {
      outcome = handler(parsed.data);
    } catch (error) {
      if (id !== undefined) this.replyFailure(id, spec, error);
      else this.logHandlerError(spec, error);
      return;
    }
    if (id === undefined) {
      if (outcome instanceof Promise) outcome.catch((error: unknown) => this.logHandlerError(spec, error));
      return;
    }
    this.inboundRequests++;
    Promise.resolve(outcome)
      .then(
        (result) => this.reply(id, result ?? {}),
        (error: unknown) => this.replyFailure(id, spec, error),
      )
      .finally(() => this.inboundRequests--);
  }

  private replyFailure(id: number, spec: MessageSpec, error: unknown): void {
    if (error instanceof DrawbridgeError) {
      this.replyError(id, error.code, error.message);
      return;
    }
    this.logHandlerError(spec, error);
    this.replyError(id, 'INTERNAL', 'internal error');
  }

  private logHandlerError(spec: MessageSpec, error: unknown): void {
    if (error instanceof DrawbridgeError) {
      this.options.logger.info({ link: this.id, type: spec.type, code: error.code, err: error.message }, 'control message refused');
    } else {
      this.options.logger.error({ link: this.id, type: spec.type, err: error }, 'control message handler failed');
    }
  }

  private onReply(envelope: Envelope): void {
    const pending = this.pending.get(envelope.re as number);
    if (!pending) {
      this.options.logger.debug({ link: this.id, re: envelope.re }, 'reply to no pending request (late or unknown); dropped');
      return;
    }
    this.pending.delete(envelope.re as number);
    this.options.clock.clearTimeout(pending.timer);
    if (envelope.type === 'error') {
      const body = ErrorBodySchema.safeParse(envelope.body);
      if (body.success && isErrorCode(body.data.code)) pending.reject(new DrawbridgeError(body.data.code, body.data.message));
      else pending.reject(new DrawbridgeError('PROTOCOL_ERROR', `the peer refused "${pending.spec.type}" with an unknown error`));
      return;
    }
    const result = (pending.spec.result as NonNullable<MessageSpec['result']>).safeParse(envelope.body ?? {});
    if (result.success) pending.resolve(result.data);
    else pending.reject(new DrawbridgeError('PROTOCOL_ERROR', `invalid reply to "${pending.spec.type}": ${result.error.issues[0]?.message ?? 'invalid'}`));
  }

  private logUnknown(type: string): void {
    this.unknownLogged++;
    if (this.unknownLogged <= UNKNOWN_LOG_LIMIT) {
      this.options.logger.warn({ link: this.id, peer: this.options.peer, type: type.slice(0, 64) }, 'ignored a control message of a type not handled here');
    }
  }

  private failPending(error: DrawbridgeError): void {
    for (const [id, pending] of this.pending) {
      this.options.clock.clearTimeout(pending.timer);
      pending.reject(error);
      this.pending.delete(id);
    }
  }

  private finish(fallback: LinkCloseInfo): void {
    if (this.closed) return;
    this.closed = true;
    this.closing = true;
    this.options.clock.clearInterval(this.pingTimer);
    this.options.clock.clearTimeout(this.closeTimer);
    this.queue.clear();
    this.bulkQueue.length = 0;
    this.batch = [];
    this.batchBytes = 0;
    const info = this.closeInfo ?? fallback;
    this.closeInfo = info;
    this.failPending(this.closedError());
    for (const waiter of this.waiters.splice(0)) waiter();
    this.options.onClose?.(info);
  }
}

/** 1005, 1006 and 1015 describe a close and must never be sent in one (RFC 6455 7.4.1). */
function sendableCloseCode(code: number): number {
  return code === 1004 || code === 1005 || code === 1006 || code === 1015 || code < 1000 || code > 4999 ? 1011 : code;
}

function errorCodeOf(reason: string): { errorCode?: ErrorCode } {
  const parsed = parseCloseReason(reason);
  return parsed.code ? { errorCode: parsed.code } : {};
}
