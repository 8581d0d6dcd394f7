/**
 * Joins a local byte stream (a TCP socket, or stdin/stdout) to a stream WebSocket.
 *
 * Data travels as binary frames; the text frame "eof" carries a TCP half-close, so each
 * direction ends on its own. Backpressure is explicit both ways: when the WebSocket has
 * more than HIGH_WATER_BYTES queued we stop reading the local side, and when the local
 * side's write buffer is full we pause the WebSocket (which stops reading its TCP socket,
 * so the pressure travels back through the hub to the far end).
 */
import type { Readable, Writable } from 'node:stream';
import type WebSocket from 'ws';
import { DATA_CHUNK_BYTES, EOF_FRAME } from '../protocol/messages.js';
import { parseCloseReason, type ErrorCode } from '../errors.js';

/** Bytes queued in the WebSocket before the local reader is paused (per stream). */
export const HIGH_WATER_BYTES = 1024 * 1024;
/** Resume reading once the queue falls below this. */
export const LOW_WATER_BYTES = 256 * 1024;

export interface BridgeResult {
  /** WebSocket close code and the error code parsed from its reason, if any */
  closeCode: number;
  errorCode?: ErrorCode;
  message: string;
  bytesSent: number;
  bytesReceived: number;
  /** true when both directions finished with an orderly end */
  clean: boolean;
}

export interface BridgeOptions {
  ws: WebSocket;
  input: Readable;
  output: Writable;
  /** Destroys the local side on an abnormal end (e.g. socket.destroy) */
  destroyLocal: () => void;
}

export function bridge(options: BridgeOptions): Promise<BridgeResult> {
  const { ws, input, output, destroyLocal } = options;
  let bytesSent = 0;
  let bytesReceived = 0;
  let localEnded = false; // local input finished; we sent eof
  let remoteEnded = false; // peer sent eof; we ended the local output
  let inputPaused = false;

  return new Promise<BridgeResult>((resolve) => {
    const onSent = (error?: Error): void => {
      if (error) return;
      if (inputPaused && ws.bufferedAmount < LOW_WATER_BYTES) {
        inputPaused = false;
        input.resume();
      }
    };

    const send = (chunk: Buffer): void => {
      for (let offset = 0; offset < chunk.length; offset += DATA_CHUNK_BYTES) {
        const part = offset === 0 && chunk.length <= DATA_CHUNK_BYTES ? chunk : chunk.subarray(offset, offset + DATA_CHUNK_BYTES);
        ws.send(part, { binary: true }, onSent);
      }
      bytesSent += chunk.length;
      if (ws.bufferedAmount > HIGH_WATER_BYTES && !inputPaused) {
        inputPaused = true;
        input.pause();
      }
    };

    const maybeFinish = (): void => {
      if (localEnded && remoteEnded && ws.readyState === ws.OPEN) ws.close(1000, 'done');
    };

    input.on('data', (chunk: Buffer | string) => {
      if (ws.readyState !== ws.OPEN) return;
      send(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    });
    input.once('end', () => {
      localEnded = true;
      if (ws.readyState === ws.OPEN) ws.send(EOF_FRAME, { binary: false });
      maybeFinish();
    });
    const onLocalError = (): void => {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(4000, 'local connection reset');
    };
    input.once('error', onLocalError);
    if (output !== (input as unknown)) output.once('error', onLocalError);
    // A local close before the input ended means the local peer went away entirely. A close
    // after the input's orderly end is normal for a read-only input such as a stdin pipe
    // (it is destroyed right after EOF) while the reply is still on its way to stdout.
    // A socket (input === output) that closes while the reply is still due cannot take it.
    input.once('close', () => {
      const peerGone = !localEnded || (output === (input as unknown) && !remoteEnded);
      if (peerGone && ws.readyState === ws.OPEN) ws.close(1000, 'local connection closed');
    });

    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        if (String(data) === EOF_FRAME && !remoteEnded) {
          remoteEnded = true;
          output.end();
          maybeFinish();
        }
        return;
      }
      if (remoteEnded) return; // data after eof is a protocol violation; drop it
      bytesReceived += data.length;
      if (!output.write(data)) {
        ws.pause();
        output.once('drain', () => ws.resume());
      }
    });

    ws.once('close', (code: number, reasonBuffer: Buffer) => {
      const reason = reasonBuffer.toString();
      const parsed = parseCloseReason(reason);
      const clean = localEnded && remoteEnded;
      if (!clean) {
        if (code === 1000 && remoteEnded) output.end();
        else destroyLocal();
      }
      resolve({
        closeCode: code,
        ...(parsed.code ? { errorCode: parsed.code } : {}),
        message: parsed.message,
        bytesSent,
        bytesReceived,
        clean,
      });
    });
    ws.on('error', () => {
      /* 'close' follows and carries the outcome */
    });
  });
}
