/**
 * Secret values on the command line: read from stdin or a file (never from an argument,
 * which other users see in the process list and shells keep in history), bounded, and
 * written out raw, except that control characters are never written to a terminal.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { DrawbridgeError } from '../errors.js';

/** The most any hub accepts (vault.maxValueBytes is at most 512 KiB); the hub checks its own limit. */
export const MAX_CLI_VALUE_BYTES = 512 * 1024;

export async function readBounded(stream: Readable, what: string, maxBytes = MAX_CLI_VALUE_BYTES): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      stream.destroy();
      throw new DrawbridgeError('PAYLOAD_TOO_LARGE', `${what} is larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function readSecretValue(opts: { valueStdin?: boolean; fromFile?: string }): Promise<Buffer> {
  if (Boolean(opts.valueStdin) === Boolean(opts.fromFile)) {
    throw new DrawbridgeError('VALIDATION_FAILED', 'give the value with exactly one of --value-stdin or --from-file FILE');
  }
  if (opts.fromFile) {
    try {
      return await readBounded(createReadStream(opts.fromFile), opts.fromFile);
    } catch (error) {
      if (error instanceof DrawbridgeError) throw error;
      throw new DrawbridgeError('VALIDATION_FAILED', `cannot read ${opts.fromFile}: ${(error as Error).message}`);
    }
  }
  return readBounded(process.stdin, 'the value on stdin');
}

export function parseVersionFlag(text: string | undefined, flag: string, min = 1): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > 2 ** 31 - 1) throw new DrawbridgeError('VALIDATION_FAILED', `${flag} must be a whole number of at least ${min} (got "${text.slice(0, 40)}")`);
  return n;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

/** Writes a value as is; to a terminal, only if it holds no control characters (terminal injection). */
export function writeValue(value: Buffer, output: NodeJS.WriteStream = process.stdout): void {
  if (output.isTTY && CONTROL.test(value.toString('latin1'))) {
    throw new DrawbridgeError('VALIDATION_FAILED', 'the value holds control characters; refusing to write it to a terminal (pipe it, or use --json for base64)');
  }
  output.write(value);
}

export { valueJson } from '../util/value-json.js';
