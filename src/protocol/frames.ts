/**
 * The link's wire format, with no I/O: RFC 6455 WebSocket frames whose binary messages carry
 * one multiplexed stream frame each, and whose text messages carry one control envelope.
 *
 * A binary message's payload starts with a 5-byte stream header (type, stream id) so that
 * the receiver can route every byte of a DATA frame as it arrives: the decoder hands out
 * slices of the socket's own chunks and never reassembles a data message. Only headers (at
 * most 14 + 5 bytes) and small control payloads are ever copied.
 *
 *   DATA   0x00 id:u32 bytes...       part of the stream's byte flow, at most MAX_DATA_BYTES
 *   CREDIT 0x01 id:u32 n:u32          the receiver consumed n more bytes: the sender may send n more
 *   EOF    0x02 id:u32                the sender finished sending (TCP half-close)
 *   RESET  0x03 id:u32 reason:utf8    the stream is aborted; reason is "CODE: message"
 */

export const OPCODE = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

export const STREAM_FRAME = { data: 0, credit: 1, eof: 2, reset: 3 } as const;

/** Bytes of the stream header inside a binary message: type (1) + stream id (4). */
export const STREAM_HEADER_BYTES = 5;

/**
 * Largest DATA payload in one frame. Small frames keep an interactive stream from waiting
 * behind a bulk one on the same link (a frame is the unit of interleaving). The size makes a
 * full frame from a client or agent (masked: 2 + 2 + 4 header bytes, then 5 of stream
 * header) exactly one 16 KiB TLS record, so the hub reads whole frames and forwards each in
 * one record of its own, instead of splitting every frame across two reads.
 */
export const MAX_DATA_BYTES = 16 * 1024 - 13;

/** Control frames (ping, pong, close) carry at most 125 bytes (RFC 6455 5.5). */
const MAX_CONTROL_FRAME_PAYLOAD = 125;
/** RESET reasons, like WebSocket close reasons, are short: keep the code first. */
export const MAX_RESET_REASON_BYTES = 256;

const MAX_STREAM_ID = 0xffffffff;

/** Builds a WebSocket frame header for a payload of `length` bytes. */
function wsHeader(opcode: number, length: number, masked: boolean, extra: number): { header: Buffer; offset: number } {
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const size = 2 + lengthBytes + (masked ? 4 : 0);
  const header = Buffer.allocUnsafe(size + extra);
  header[0] = 0x80 | opcode;
  const maskBit = masked ? 0x80 : 0;
  if (lengthBytes === 0) header[1] = maskBit | length;
  else if (lengthBytes === 2) {
    header[1] = maskBit | 126;
    header.writeUInt16BE(length, 2);
  } else {
    header[1] = maskBit | 127;
    header.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    header.writeUInt32BE(length >>> 0, 6);
  }
  // Our own clients send an all-zero mask key: the frames travel inside TLS and are never
  // produced by a browser, so masking (a defence against cache poisoning by hostile scripts)
  // buys nothing, and a zero key lets both ends skip the XOR pass over every byte.
  if (masked) header.writeUInt32BE(0, 2 + lengthBytes);
  return { header, offset: size };
}

/** Header of a DATA frame (WebSocket header + stream header); the payload follows as is. */
export function encodeDataHeader(streamId: number, payloadLength: number, masked: boolean): Buffer {
  const { header, offset } = wsHeader(OPCODE.binary, STREAM_HEADER_BYTES + payloadLength, masked, STREAM_HEADER_BYTES);
  header[offset] = STREAM_FRAME.data;
  header.writeUInt32BE(streamId, offset + 1);
  return header;
}

export function encodeCredit(streamId: number, bytes: number, masked: boolean): Buffer {
  const { header, offset } = wsHeader(OPCODE.binary, STREAM_HEADER_BYTES + 4, masked, STREAM_HEADER_BYTES + 4);
  header[offset] = STREAM_FRAME.credit;
  header.writeUInt32BE(streamId, offset + 1);
  header.writeUInt32BE(bytes, offset + 5);
  return header;
}

export function encodeEof(streamId: number, masked: boolean): Buffer {
  const { header, offset } = wsHeader(OPCODE.binary, STREAM_HEADER_BYTES, masked, STREAM_HEADER_BYTES);
  header[offset] = STREAM_FRAME.eof;
  header.writeUInt32BE(streamId, offset + 1);
  return header;
}

export function encodeReset(streamId: number, reason: string, masked: boolean): Buffer {
  const text = truncateUtf8(reason, MAX_RESET_REASON_BYTES);
  const { header, offset } = wsHeader(OPCODE.binary, STREAM_HEADER_BYTES + text.length, masked, STREAM_HEADER_BYTES + text.length);
  header[offset] = STREAM_FRAME.reset;
  header.writeUInt32BE(streamId, offset + 1);
  text.copy(header, offset + STREAM_HEADER_BYTES);
  return header;
}

/** A control envelope (JSON text) as one WebSocket text message. */
export function encodeText(text: string | Buffer, masked: boolean): Buffer {
  const payload = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const { header, offset } = wsHeader(OPCODE.text, payload.length, masked, payload.length);
  payload.copy(header, offset);
  return header;
}

export function encodePing(payload: Buffer, masked: boolean): Buffer {
  return encodeSmallControl(OPCODE.ping, payload, masked);
}

export function encodePong(payload: Buffer, masked: boolean): Buffer {
  return encodeSmallControl(OPCODE.pong, payload, masked);
}

export function encodeClose(code: number, reason: string, masked: boolean): Buffer {
  const text = truncateUtf8(reason, 123);
  const payload = Buffer.allocUnsafe(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  return encodeSmallControl(OPCODE.close, payload, masked);
}

function encodeSmallControl(opcode: number, payload: Buffer, masked: boolean): Buffer {
  const body = payload.subarray(0, MAX_CONTROL_FRAME_PAYLOAD);
  const { header, offset } = wsHeader(opcode, body.length, masked, body.length);
  body.copy(header, offset);
  return header;
}

export function truncateUtf8(text: string, maxBytes: number): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return bytes;
  // Cut on a character boundary: drop trailing continuation bytes of a split character.
  let end = maxBytes;
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** What the decoder found. Every callback runs synchronously inside `push`. */
export interface FrameSink {
  /** A piece of a DATA frame's payload: a view of the pushed chunk, valid until it returns unless kept. */
  onData(streamId: number, data: Buffer): void;
  onCredit(streamId: number, bytes: number): void;
  onEof(streamId: number): void;
  onReset(streamId: number, reason: string): void;
  onText(text: string): void;
  onPing(payload: Buffer): void;
  onPong(payload: Buffer): void;
  onClose(code: number, reason: string): void;
}

export class FrameError extends Error {
  constructor(
    /** The WebSocket close code this violation calls for. */
    readonly closeCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}

export interface DecoderOptions {
  /** The server side requires masked frames (RFC 6455 5.1); the client side refuses them. */
  expectMasked: boolean;
  /** Largest text (control envelope) message accepted. */
  maxTextBytes: number;
}

const enum State {
  Header,
  Data,
  Buffered,
}

/**
 * Incremental decoder: push socket chunks in arrival order. Throws FrameError on a protocol
 * violation; the link then closes with its close code. After a throw the decoder is spent.
 */
export class FrameDecoder {
  private state: State = State.Header;
  /** Header bytes gathered so far (WebSocket header and, for binary messages, stream header). */
  private readonly scratch = Buffer.alloc(14 + STREAM_HEADER_BYTES);
  private have = 0;
  private need = 2;
  private opcode = 0;
  private masked = false;
  private payloadLength = 0;
  private wsHeaderLength = 0;
  private mask = Buffer.alloc(4);
  private maskIsZero = true;
  /** Offset of the next payload byte within the message, for unmasking. */
  private payloadOffset = 0;
  private remaining = 0;
  private streamId = 0;
  private buffered: Buffer | undefined;
  private bufferedFill = 0;
  /** The stream frame type being buffered (CREDIT, RESET), or -1 for text and control frames. */
  private streamType = -1;

  constructor(
    private readonly sink: FrameSink,
    private readonly options: DecoderOptions,
  ) {}

  push(chunk: Buffer): void {
    let offset = 0;
    const length = chunk.length;
    while (offset < length) {
      if (this.state === State.Header) {
        const take = Math.min(this.need - this.have, length - offset);
        chunk.copy(this.scratch, this.have, offset, offset + take);
        this.have += take;
        offset += take;
        if (this.have === this.need) this.parseHeader();
      } else if (this.state === State.Data) {
        const take = Math.min(this.remaining, length - offset);
        const piece = chunk.subarray(offset, offset + take);
        if (!this.maskIsZero) unmask(piece, this.mask, this.payloadOffset);
        offset += take;
        this.remaining -= take;
        this.payloadOffset += take;
        const streamId = this.streamId;
        if (this.remaining === 0) this.reset();
        this.sink.onData(streamId, piece);
      } else {
        const buffer = this.buffered as Buffer;
        const take = Math.min(this.remaining, length - offset);
        chunk.copy(buffer, this.bufferedFill, offset, offset + take);
        this.bufferedFill += take;
        offset += take;
        this.remaining -= take;
        if (this.remaining === 0) this.finishBuffered();
      }
    }
  }

  private reset(): void {
    this.state = State.Header;
    this.have = 0;
    this.need = 2;
    this.buffered = undefined;
  }

  private parseHeader(): void {
    const s = this.scratch;
    if (this.have === 2) {
      const b0 = s[0] as number;
      const b1 = s[1] as number;
      if ((b0 & 0x70) !== 0) throw new FrameError(1002, 'reserved bits set (no extension was negotiated)');
      if ((b0 & 0x80) === 0) throw new FrameError(1003, 'fragmented messages are not used on this link');
      this.opcode = b0 & 0x0f;
      if (this.opcode === OPCODE.continuation) throw new FrameError(1003, 'fragmented messages are not used on this link');
      this.masked = (b1 & 0x80) !== 0;
      this.maskIsZero = true;
      if (this.masked !== this.options.expectMasked) {
        throw new FrameError(1002, this.options.expectMasked ? 'client frames must be masked' : 'server frames must not be masked');
      }
      const len7 = b1 & 0x7f;
      this.wsHeaderLength = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (this.masked ? 4 : 0);
      if (this.wsHeaderLength > 2) {
        this.need = this.wsHeaderLength;
        return;
      }
      this.payloadLength = len7;
    } else if (this.have === this.wsHeaderLength) {
      const len7 = (s[1] as number) & 0x7f;
      let cursor = 2;
      if (len7 === 126) {
        this.payloadLength = s.readUInt16BE(2);
        cursor = 4;
      } else if (len7 === 127) {
        const high = s.readUInt32BE(2);
        if (high !== 0) throw new FrameError(1009, 'message too large');
        this.payloadLength = s.readUInt32BE(6);
        cursor = 10;
      } else {
        this.payloadLength = len7;
      }
      if (this.masked) {
        s.copy(this.mask, 0, cursor, cursor + 4);
        this.maskIsZero = this.mask.readUInt32BE(0) === 0;
      }
    }
    // Whole WebSocket header known (have === wsHeaderLength, or 2 for short unmasked frames).
    if (this.have === this.wsHeaderLength) this.afterWsHeader();
    else if (this.have === this.wsHeaderLength + STREAM_HEADER_BYTES) this.afterStreamHeader();
  }

  private afterWsHeader(): void {
    this.payloadOffset = 0;
    switch (this.opcode) {
      case OPCODE.binary:
        if (this.payloadLength < STREAM_HEADER_BYTES) throw new FrameError(1002, 'binary message shorter than a stream header');
        if (this.payloadLength > STREAM_HEADER_BYTES + Math.max(MAX_DATA_BYTES, MAX_RESET_REASON_BYTES)) {
          throw new FrameError(1009, `stream frame of ${this.payloadLength} bytes is larger than the limit`);
        }
        this.need = this.wsHeaderLength + STREAM_HEADER_BYTES;
        return;
      case OPCODE.text:
        if (this.payloadLength > this.options.maxTextBytes) {
          throw new FrameError(1009, `control message of ${this.payloadLength} bytes is larger than the limit of ${this.options.maxTextBytes}`);
        }
        return this.startBuffered();
      case OPCODE.ping:
      case OPCODE.pong:
      case OPCODE.close:
        if (this.payloadLength > MAX_CONTROL_FRAME_PAYLOAD) throw new FrameError(1002, 'control frame payload over 125 bytes');
        return this.startBuffered();
      default:
        throw new FrameError(1003, `unknown opcode ${this.opcode}`);
    }
  }

  private afterStreamHeader(): void {
    const s = this.scratch;
    const at = this.wsHeaderLength;
    if (!this.maskIsZero) {
      for (let i = 0; i < STREAM_HEADER_BYTES; i++) s[at + i] = (s[at + i] as number) ^ (this.mask[i & 3] as number);
    }
    this.payloadOffset = STREAM_HEADER_BYTES;
    const type = s[at] as number;
    this.streamId = s.readUInt32BE(at + 1);
    this.remaining = this.payloadLength - STREAM_HEADER_BYTES;
    switch (type) {
      case STREAM_FRAME.data:
        if (this.remaining > MAX_DATA_BYTES) throw new FrameError(1009, `DATA frame of ${this.remaining} bytes is larger than ${MAX_DATA_BYTES}`);
        if (this.remaining === 0) {
          this.reset();
          return;
        }
        this.state = State.Data;
        return;
      case STREAM_FRAME.credit:
        if (this.remaining !== 4) throw new FrameError(1002, 'CREDIT frame must carry 4 bytes');
        return this.startBuffered(type);
      case STREAM_FRAME.eof: {
        if (this.remaining !== 0) throw new FrameError(1002, 'EOF frame must be empty');
        const id = this.streamId;
        this.reset();
        this.sink.onEof(id);
        return;
      }
      case STREAM_FRAME.reset:
        if (this.remaining > MAX_RESET_REASON_BYTES) throw new FrameError(1009, 'RESET reason too long');
        if (this.remaining === 0) {
          const id = this.streamId;
          this.reset();
          this.sink.onReset(id, '');
          return;
        }
        return this.startBuffered(type);
      default:
        throw new FrameError(1003, `unknown stream frame type ${type}`);
    }
  }

  private startBuffered(streamType = -1): void {
    this.streamType = streamType;
    if (streamType < 0) this.remaining = this.payloadLength;
    if (this.remaining === 0) {
      this.buffered = Buffer.alloc(0);
      this.bufferedFill = 0;
      this.finishBuffered();
      return;
    }
    this.buffered = Buffer.allocUnsafe(this.remaining);
    this.bufferedFill = 0;
    this.state = State.Buffered;
  }

  private finishBuffered(): void {
    const payload = this.buffered as Buffer;
    // Stream frames are buffered after their 5-byte header; text and control from byte 0.
    if (!this.maskIsZero) unmask(payload, this.mask, this.opcode === OPCODE.binary ? STREAM_HEADER_BYTES : 0);
    const opcode = this.opcode;
    const streamType = this.streamType;
    const streamId = this.streamId;
    this.reset();
    if (opcode === OPCODE.binary) {
      if (streamType === STREAM_FRAME.credit) {
        const bytes = payload.readUInt32BE(0);
        if (bytes === 0) throw new FrameError(1002, 'CREDIT of 0 bytes');
        this.sink.onCredit(streamId, bytes);
      } else this.sink.onReset(streamId, payload.toString('utf8'));
      return;
    }
    switch (opcode) {
      case OPCODE.text:
        this.sink.onText(decodeUtf8Strict(payload));
        return;
      case OPCODE.ping:
        this.sink.onPing(payload);
        return;
      case OPCODE.pong:
        this.sink.onPong(payload);
        return;
      case OPCODE.close: {
        if (payload.length === 1) throw new FrameError(1002, 'close frame with a 1-byte payload');
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.sink.onClose(code, payload.length > 2 ? payload.subarray(2).toString('utf8') : '');
        return;
      }
    }
  }

}

/** XORs a piece of payload in place; `start` is where the piece sits in its message. */
function unmask(piece: Buffer, mask: Buffer, start: number): void {
  for (let i = 0; i < piece.length; i++) piece[i] = (piece[i] as number) ^ (mask[(start + i) & 3] as number);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8Strict(payload: Buffer): string {
  try {
    return utf8.decode(payload);
  } catch {
    throw new FrameError(1007, 'text message is not valid UTF-8');
  }
}

export function isValidStreamId(id: number): boolean {
  return Number.isInteger(id) && id > 0 && id <= MAX_STREAM_ID;
}
