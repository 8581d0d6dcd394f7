/**
 * What both ends of the telemetry capability compute the same way: the hash of an
 * inventory's full state (so the hub can tell that its copy drifted), and the payload
 * encoding (plain JSON or base64 of raw DEFLATE, whichever is smaller).
 */
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { deflateRaw, inflateRaw } from 'node:zlib';
import { DrawbridgeError } from '../errors.js';
import { MAX_DECODED_PAYLOAD_BYTES, type InventoryRow, type Payload } from './messages/telemetry.js';

const deflateAsync = promisify(deflateRaw);
const inflateAsync = promisify(inflateRaw);

/** A row as canonical text: fields in key order, so equal rows hash equally on every peer. */
export function canonicalRow(row: InventoryRow): string {
  const keys = Object.keys(row).sort();
  return JSON.stringify(keys.map((key) => [key, row[key]]));
}

/**
 * The state hash: SHA-256 over the canonical rows sorted by key, first 96 bits, base64url
 * (16 characters). It detects drift, not forgery: the edge is trusted to report itself.
 */
export function stateHash(rows: Iterable<InventoryRow>): string {
  const sorted = [...rows].sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  const hash = createHash('sha256');
  for (const row of sorted) hash.update(canonicalRow(row)).update('\n');
  return hash.digest().subarray(0, 12).toString('base64url');
}

/** One digest of every inventory's sequence number and state hash, for a checkpoint of a quiet edge. */
export function checkpointDigest(inventories: Partial<Record<string, { seq: number; hash: string }>>): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(inventories).sort()) {
    const state = inventories[name] as { seq: number; hash: string };
    hash.update(`${name}:${state.seq}:${state.hash}\n`);
  }
  return hash.digest().subarray(0, 12).toString('base64url');
}

/** Content below this many bytes of JSON goes as it is: DEFLATE plus base64 would not pay. */
const COMPRESS_FROM_BYTES = 160;

/** Encodes content as the smaller of plain JSON and base64 DEFLATE. */
export async function encodePayload(content: unknown): Promise<Payload> {
  const json = JSON.stringify(content);
  if (json.length < COMPRESS_FROM_BYTES) return { json: content };
  const deflated = (await deflateAsync(Buffer.from(json), { level: 9 })).toString('base64');
  return deflated.length + 12 < json.length ? { deflate: deflated } : { json: content };
}

/**
 * Decodes a payload (inflating off the main thread's critical path, in libuv's pool), refusing
 * more than MAX_DECODED_PAYLOAD_BYTES of output: a small message cannot expand into a large one.
 */
export async function decodePayload(payload: Payload): Promise<unknown> {
  if ('json' in payload) return payload.json;
  let inflated: Buffer;
  try {
    inflated = await inflateAsync(Buffer.from(payload.deflate, 'base64'), { maxOutputLength: MAX_DECODED_PAYLOAD_BYTES });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || error instanceof RangeError) {
      throw new DrawbridgeError('PAYLOAD_TOO_LARGE', `the payload inflates to more than ${MAX_DECODED_PAYLOAD_BYTES} bytes`);
    }
    throw new DrawbridgeError('VALIDATION_FAILED', `the payload is not valid DEFLATE data (${(error as Error).message})`);
  }
  try {
    return JSON.parse(inflated.toString('utf8')) as unknown;
  } catch {
    throw new DrawbridgeError('VALIDATION_FAILED', 'the inflated payload is not valid JSON');
  }
}
