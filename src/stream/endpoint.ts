/**
 * One end of a stream outside the hub: joins a local byte stream (a TCP socket to the
 * target on the edge, an accepted TCP connection or stdin/stdout on the client) to a stream
 * on a link.
 *
 * Flow control is end to end: this side may send only as many bytes as the far end has
 * granted (the window, then CREDIT frames), and grants the far end more only as the local
 * output actually takes bytes (its write callback), so a local reader that stops stalls
 * only its own stream and this process holds at most one window of its data.
 *
 * Each direction ends on its own (EOF is a TCP half-close); RESET aborts both. The local
 * side's listeners are attached when the endpoint is made, before the stream is open, so an
 * input that ends or fails early (a port check that connects and leaves) is never missed.
 */
import type { Readable, Writable } from 'node:stream';
import { closeReason, DrawbridgeError, parseCloseReason, type ErrorCode } from '../errors.js';
import { MAX_DATA_BYTES } from '../protocol/frames.js';
import { IMMEDIATE_MAX_BYTES, MAX_BATCH_BYTES, SMALL_BATCH_BYTES, type Link } from '../transport/link.js';
import { youngGc } from '../transport/young-gc.js';

export interface LocalSide {
  input: Readable;
  output: Writable;
  /** Abort the local side (a TCP reset for sockets). */
  destroy(): void;
  /** Which end this is, for reasons sent to the far end: 'client' or 'target'. */
  role: 'client' | 'target';
}

export interface EndpointResult {
  /** both directions ended with EOF */
  clean: boolean;
  errorCode?: ErrorCode;
  message: string;
  bytesSent: number;
  bytesReceived: number;
}

export class StreamEndpoint {
  private link: Link | undefined;
  private streamId = 0;
  private window = 0;
  private onDone: ((endpoint: StreamEndpoint) => void) | undefined;
  private sendCredit = 0;
  private granted = 0;
  private received = 0;
  private consumed = 0;
  private bytesSent = 0;
  private readonly pendingOut: Buffer[] = [];
  private started = false;
  private inputEnded = false;
  private eofSent = false;
  private eofReceived = false;
  private outputFinished = false;
  private done = false;
  private localFailure: string | undefined;
  private readonly onConsumed: (bytes: number) => void;
  private outBatch: Buffer[] = [];
  private outBytes = 0;
  private outFlushScheduled = false;
  private readonly flushOutputBound = (): void => {
    this.outFlushScheduled = false;
    if (!this.done) this.flushOutput();
  };
  readonly result: Promise<EndpointResult>;
  private resolveResult!: (result: EndpointResult) => void;

  /** Attaches to the local side at once; bind() joins it to a stream on a link later. */
  constructor(private readonly local: LocalSide) {
    this.result = new Promise((resolve) => (this.resolveResult = resolve));
    this.onConsumed = (bytes) => this.consumedBytes(bytes);
    const { input, output } = local;
    input.pause();
    input.on('data', (chunk: Buffer | string) => this.onInput(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    input.once('end', () => {
      this.inputEnded = true;
      this.maybeSendEof();
    });
    const onLocalError = (error: Error): void => this.onLocalFailure(`${this.local.role === 'client' ? "the client's" : "the target's"} connection failed (${(error as NodeJS.ErrnoException).code ?? error.message})`);
    input.on('error', onLocalError);
    if (output !== (input as unknown)) output.on('error', onLocalError);
    output.once('finish', () => {
      this.outputFinished = true;
      this.maybeFinish();
    });
    // A socket that closes before both directions finished lost its peer; stdin closing
    // after its end is normal (the reply still goes to stdout).
    input.once('close', () => {
      const isSocket = output === (input as unknown);
      if (!this.inputEnded || (isSocket && !this.eofReceived)) {
        this.onLocalFailure(`${this.local.role === 'client' ? 'the client' : 'the target'} closed the connection`);
      }
    });
  }

  get bytesReceived(): number {
    return this.received;
  }

  get id(): number {
    return this.streamId;
  }

  /** Joins the endpoint to stream `streamId` on `link`; frames for it may arrive from now on. */
  bind(link: Link, streamId: number, window: number, onDone: (endpoint: StreamEndpoint) => void): void {
    this.link = link;
    this.streamId = streamId;
    this.window = window;
    this.sendCredit = window;
    this.granted = window;
    this.onDone = onDone;
  }

  /** The stream is open: start reading the local input (events seen before are acted on now). */
  start(): void {
    if (this.started || this.done || !this.link) return;
    this.started = true;
    if (this.localFailure) {
      this.reset(this.localFailure);
      return;
    }
    this.local.input.resume();
    this.maybeSendEof();
  }

  /**
   * The local program is done sending, whatever its input says (it is being stopped): stop
   * reading, send what was read, then EOF. The stream then ends normally once the far end
   * finishes too.
   */
  endInput(): void {
    if (this.done || this.inputEnded) return;
    this.inputEnded = true;
    this.local.input.pause();
    this.local.input.removeAllListeners('data');
    this.maybeSendEof();
  }

  /** The stream could not be opened, or must end now: abort the local side with `error`. */
  fail(error: DrawbridgeError): void {
    if (this.done) return;
    // Sent even before the open was answered: the far end may already hold the stream.
    this.link?.sendReset(this.streamId, closeReason(error.code, error.message));
    this.local.destroy();
    this.finish({ clean: false, errorCode: error.code, message: error.message });
  }

  // ---- frames from the link ----

  onData(data: Buffer): void {
    if (this.done) return;
    if (this.eofReceived) return this.violation('data after EOF');
    this.received += data.length;
    if (this.received > this.granted) return this.violation(`the peer sent ${this.received - this.granted} bytes beyond its credit`);
    // Pieces that arrive in one round of I/O are written together, as one buffer with one
    // callback: one syscall, and few objects held while a slow local reader drains.
    // Nothing waiting and a small piece (a keystroke, a reply): write it now instead of after
    // this round of I/O; the round trip of an interactive stream waits for it at every hop.
    if (this.outBytes === 0 && data.length <= IMMEDIATE_MAX_BYTES && this.local.output.writableLength === 0) {
      const bytes = data.length;
      this.local.output.write(data, () => this.onConsumed(bytes));
      return;
    }
    this.outBatch.push(data);
    this.outBytes += data.length;
    if (this.outBytes >= MAX_BATCH_BYTES) this.flushOutput();
    else if (!this.outFlushScheduled) {
      this.outFlushScheduled = true;
      setImmediate(this.flushOutputBound);
    }
  }

  private flushOutput(): void {
    if (this.outBytes === 0) return;
    const bytes = this.outBytes;
    const batch = this.outBatch;
    this.outBatch = [];
    this.outBytes = 0;
    const output = this.local.output;
    if (batch.length === 1 || bytes <= SMALL_BATCH_BYTES) {
      output.write(batch.length === 1 ? (batch[0] as Buffer) : Buffer.concat(batch, bytes), () => this.onConsumed(bytes));
      return;
    }
    // A gathered write: the kernel takes the pieces as they are (no copy here); the last
    // piece's callback says the whole batch was taken, as writes complete in order.
    output.cork();
    const last = batch.length - 1;
    for (let i = 0; i < last; i++) output.write(batch[i] as Buffer);
    output.write(batch[last] as Buffer, () => this.onConsumed(bytes));
    output.uncork();
  }

  onCredit(bytes: number): void {
    if (this.done) return;
    this.sendCredit += bytes;
    this.pump();
  }

  onEof(): void {
    if (this.done || this.eofReceived) return;
    this.eofReceived = true;
    this.flushOutput();
    this.local.output.end();
  }

  onReset(reason: string): void {
    if (this.done) return;
    const parsed = parseCloseReason(reason);
    this.local.destroy();
    this.finish({ clean: false, errorCode: parsed.code ?? 'CONNECTION_RESET', message: parsed.message || 'the stream was reset' });
  }

  // ---- local side ----

  private onInput(chunk: Buffer): void {
    if (this.done) return;
    youngGc.read(chunk.length);
    this.pendingOut.push(chunk);
    this.pump();
  }

  private pump(): void {
    const out = this.pendingOut;
    const link = this.link;
    if (!link) return;
    while (out.length > 0 && this.sendCredit > 0) {
      const chunk = out[0] as Buffer;
      const size = Math.min(chunk.length, this.sendCredit, MAX_DATA_BYTES);
      if (size === chunk.length) {
        out.shift();
        link.sendData(this.streamId, chunk);
      } else {
        link.sendData(this.streamId, chunk.subarray(0, size));
        out[0] = chunk.subarray(size);
      }
      this.sendCredit -= size;
      this.bytesSent += size;
    }
    // Out of credit with bytes in hand: stop reading until the far end grants more.
    if (out.length > 0) this.local.input.pause();
    else if (this.started && !this.inputEnded) this.local.input.resume();
    this.maybeSendEof();
  }

  private maybeSendEof(): void {
    if (!this.started || this.eofSent || !this.inputEnded || this.pendingOut.length > 0 || this.done) return;
    this.eofSent = true;
    this.link?.sendEof(this.streamId);
    this.maybeFinish();
  }

  private consumedBytes(bytes: number): void {
    this.consumed += bytes;
    if (this.done) return;
    // Grant in steps of a quarter window: few CREDIT frames, and the sender never idles.
    const grant = this.consumed + this.window - this.granted;
    if (grant >= this.window / 4) {
      this.granted += grant;
      this.link?.sendCredit(this.streamId, grant);
    }
  }

  private onLocalFailure(reason: string): void {
    if (this.done || this.localFailure) return;
    this.localFailure = reason;
    if (this.started) this.reset(reason);
  }

  private reset(reason: string): void {
    const code: ErrorCode = this.local.role === 'target' ? 'TARGET_CLOSED' : 'CONNECTION_RESET';
    this.link?.sendReset(this.streamId, closeReason(code, reason));
    this.local.destroy();
    this.finish({ clean: false, errorCode: code, message: reason });
  }

  private violation(what: string): void {
    const message = `stream protocol violation: ${what}`;
    this.link?.sendReset(this.streamId, closeReason('PROTOCOL_ERROR', message));
    this.local.destroy();
    this.finish({ clean: false, errorCode: 'PROTOCOL_ERROR', message });
  }

  private maybeFinish(): void {
    if (this.eofSent && this.eofReceived && this.outputFinished) {
      this.finish({ clean: true, message: 'closed' });
    }
  }

  private finish(outcome: { clean: boolean; errorCode?: ErrorCode; message: string }): void {
    if (this.done) return;
    this.done = true;
    this.pendingOut.length = 0;
    this.onDone?.(this);
    this.resolveResult({ ...outcome, bytesSent: this.bytesSent, bytesReceived: this.received });
  }
}

/**
 * The endpoints of one link, by stream id: routes stream frames to them. Frames for an id
 * with no endpoint are answered with RESET (data, EOF) or ignored (credit, reset: they race
 * with a stream that just ended).
 */
export class EndpointTable {
  private readonly endpoints = new Map<number, StreamEndpoint>();

  constructor(
    private readonly link: Link,
    /** A RESET for an id with no endpoint (yet): e.g. a stream whose target is still connecting. */
    private readonly onUnknownReset?: (id: number) => void,
  ) {}

  get size(): number {
    return this.endpoints.size;
  }

  has(id: number): boolean {
    return this.endpoints.has(id);
  }

  add(endpoint: StreamEndpoint): void {
    this.endpoints.set(endpoint.id, endpoint);
  }

  remove(endpoint: StreamEndpoint): void {
    if (this.endpoints.get(endpoint.id) === endpoint) this.endpoints.delete(endpoint.id);
  }

  get(id: number): StreamEndpoint | undefined {
    return this.endpoints.get(id);
  }

  /** Ends every stream: the link is gone. */
  failAll(error: DrawbridgeError): void {
    for (const endpoint of [...this.endpoints.values()]) endpoint.fail(error);
  }

  onData(id: number, data: Buffer): void {
    const endpoint = this.endpoints.get(id);
    if (endpoint) endpoint.onData(data);
    else this.link.sendReset(id, closeReason('PROTOCOL_ERROR', 'no such stream'));
  }

  onCredit(id: number, bytes: number): void {
    this.endpoints.get(id)?.onCredit(bytes);
  }

  onEof(id: number): void {
    const endpoint = this.endpoints.get(id);
    if (endpoint) endpoint.onEof();
    else this.link.sendReset(id, closeReason('PROTOCOL_ERROR', 'no such stream'));
  }

  onReset(id: number, reason: string): void {
    const endpoint = this.endpoints.get(id);
    if (endpoint) endpoint.onReset(reason);
    else this.onUnknownReset?.(id);
  }
}
