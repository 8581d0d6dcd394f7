/**
 * Minimal HTTP plumbing for the REST API: bounded JSON bodies and
 * error responses in the one shape `{ "error": { "code", "message" } }`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { DrawbridgeError } from '../errors.js';
import { escapeJsonControlCharacters } from '../util/control-chars.js';
import { describeIssues, issuesText } from '../util/schemas.js';

export const MAX_BODY_BYTES = 64 * 1024;
/** Routes that take no token (agent enrollment) need about 1 KiB. */
export const MAX_ANONYMOUS_BODY_BYTES = 8 * 1024;

export type Params = Record<string, string>;

/**
 * JSON text for API answers: the exact values, with DEL, C1 and bidi controls written as
 * \u escapes too (JSON.stringify only escapes C0), so a body shown raw on a terminal (curl)
 * cannot drive it.
 */
export function toJsonText(value: unknown): string {
  return escapeJsonControlCharacters(JSON.stringify(value));
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = toJsonText(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(payload);
}

export function sendError(res: ServerResponse, error: DrawbridgeError, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, error.status, { error: error.toJSON() }, headers);
}

/** Reads the whole body, refusing it as soon as it grows past `maxBytes`. */
export async function readBody(req: IncomingMessage, maxBytes = MAX_BODY_BYTES): Promise<Buffer> {
  const tooLarge = (): DrawbridgeError => new DrawbridgeError('PAYLOAD_TOO_LARGE', `request body is larger than ${maxBytes} bytes`);
  if (Number(req.headers['content-length'] ?? 0) > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Parses and validates a JSON body already read; every issue is reported at once with its path. */
export function parseJson<T>(req: IncomingMessage, raw: Buffer, schema: z.ZodType<T>): T {
  let parsed: unknown = {};
  if (raw.length > 0) {
    const type = req.headers['content-type'] ?? '';
    if (!type.startsWith('application/json')) {
      throw new DrawbridgeError('BAD_REQUEST', 'the request body must be JSON (content-type: application/json)');
    }
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new DrawbridgeError('BAD_REQUEST', 'the request body is not valid JSON');
    }
  }
  return validate(schema, parsed, 'body');
}

export function validate<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new DrawbridgeError('VALIDATION_FAILED', issuesText(result.error, where), { details: describeIssues(result.error, where) });
}

export { clientAddress } from './client-address.js';

/** The token of an `Authorization: Bearer ...` header, or undefined. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : '';
  return token || undefined;
}
