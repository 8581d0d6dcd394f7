/**
 * The control protocol's envelope and its registry of message types. No I/O here.
 *
 * Every control message is one JSON text frame:
 *
 *   { "v": 2, "type": "stream.open", "id": 7, "body": { ... } }      a request (expects a reply)
 *   { "v": 2, "type": "device.detach", "body": { ... } }             a notification
 *   { "v": 2, "type": "result", "re": 7, "body": { ... } }           the reply to request 7
 *   { "v": 2, "type": "error", "re": 7, "body": { "code", "message" } }
 *
 * Each type is declared once with `defineMessage`: who sends it, the capability it belongs to
 * (a peer is sent only the types whose capability it announced), its body schema, its result
 * schema if it is a request, and its size limit. docs/protocol.md documents every type, and
 * a test checks that the two agree.
 */
import { z } from 'zod';

/** The envelope format. A peer speaking another version is refused at the upgrade. */
export const PROTOCOL_VERSION = 2;
/** Offered and required in Sec-WebSocket-Protocol at the upgrade. */
export const WS_SUBPROTOCOL = 'drawbridge.v2';

/** The largest control message any type may declare; the frame decoder enforces it first. */
export const MAX_CONTROL_BYTES = 1024 * 1024;

export type Party = 'hub' | 'agent' | 'client';

/** Capabilities every peer has; others are announced in the link handshake. */
export const BASE_CAPABILITY = 'core';

export interface MessageSpec<Body = unknown, Result = unknown> {
  readonly type: string;
  /** Who sends it. */
  readonly from: Party;
  /** Who receives it. */
  readonly to: readonly Party[];
  readonly capability: string;
  readonly body: z.ZodType<Body>;
  /** Present for requests: the shape of a successful reply. */
  readonly result?: z.ZodType<Result>;
  /** Size limit of the whole envelope in bytes (checked on receive and on send). */
  readonly maxBytes: number;
  /** Bulk messages (telemetry) wait until the link has no stream data queued. */
  readonly priority: 'control' | 'bulk';
  readonly summary: string;
}

export type BodyOf<S> = S extends MessageSpec<infer B, unknown> ? B : never;
export type ResultOf<S> = S extends MessageSpec<unknown, infer R> ? R : never;

const registry = new Map<string, MessageSpec>();

export function defineMessage<Body, Result = never>(spec: {
  type: string;
  from: Party;
  to: readonly Party[];
  capability?: string;
  body: z.ZodType<Body>;
  result?: z.ZodType<Result>;
  maxBytes?: number;
  priority?: 'control' | 'bulk';
  summary: string;
}): MessageSpec<Body, Result> {
  if (registry.has(spec.type)) throw new Error(`control message type "${spec.type}" is defined twice`);
  if (RESERVED_TYPES.has(spec.type)) throw new Error(`"${spec.type}" is a reserved envelope type`);
  const full: MessageSpec<Body, Result> = {
    capability: BASE_CAPABILITY,
    maxBytes: 16 * 1024,
    priority: 'control',
    ...spec,
  };
  if (full.maxBytes > MAX_CONTROL_BYTES) throw new Error(`"${spec.type}" declares ${full.maxBytes} bytes, over the link limit`);
  registry.set(spec.type, full as MessageSpec);
  return full;
}

export function messageSpec(type: string): MessageSpec | undefined {
  return registry.get(type);
}

export function allMessageSpecs(): MessageSpec[] {
  return [...registry.values()];
}

/** The two reply types; they carry `re`, the id of the request they answer. */
export const RESERVED_TYPES = new Set(['result', 'error']);

const TYPE_PATTERN = /^[a-z][a-z0-9]*(?:[.-][a-z0-9]+)*$/;

export const EnvelopeSchema = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  type: z.string().max(64).regex(TYPE_PATTERN),
  id: z.number().int().min(1).max(2 ** 31 - 1).optional(),
  re: z.number().int().min(1).max(2 ** 31 - 1).optional(),
  body: z.unknown().optional(),
});
export type Envelope = z.infer<typeof EnvelopeSchema>;

export const ErrorBodySchema = z.strictObject({
  code: z.string().regex(/^[A-Z][A-Z_]{1,40}$/),
  message: z.string().max(1024),
});

/** Parses the envelope of a control message; throws Error with a precise reason. */
export function parseEnvelope(text: string): Envelope {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error('control message is not valid JSON');
  }
  const result = EnvelopeSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new Error(`invalid control envelope: ${issue ? `${issue.path.join('.') || '(root)'} ${issue.message}` : 'invalid'}`);
  }
  const envelope = result.data;
  if (RESERVED_TYPES.has(envelope.type) ? envelope.re === undefined || envelope.id !== undefined : envelope.re !== undefined) {
    throw new Error(`invalid control envelope: "${envelope.type}" ${RESERVED_TYPES.has(envelope.type) ? 'needs "re" and no "id"' : 'cannot carry "re"'}`);
  }
  return envelope;
}

export function encodeEnvelope(envelope: Envelope): string {
  return JSON.stringify(envelope);
}
