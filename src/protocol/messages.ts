/**
 * Control-channel messages between hub and agent (JSON text frames), and the data-plane
 * conventions of a stream WebSocket. No I/O here: parse, validate, encode.
 */
import { z } from 'zod';
import { DrawbridgeError } from '../errors.js';

export const PROTOCOL_VERSION = 1;

/** Limits on the control channel, on by default: a control message is small by design. */
export const CONTROL_MAX_PAYLOAD_BYTES = 16 * 1024;
/** Largest data frame accepted on a stream WebSocket; senders split to DATA_CHUNK_BYTES. */
export const DATA_MAX_PAYLOAD_BYTES = 256 * 1024;
export const DATA_CHUNK_BYTES = 64 * 1024;
/** The text frame that signals "this side finished sending" (TCP half-close). */
export const EOF_FRAME = 'eof';

const streamId = z.string().regex(/^[0-9a-f]{32}$/);
const errorCode = z.string().regex(/^[A-Z_]{2,40}$/);

/** Hub -> agent */
export const HubMessage = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('challenge'), nonce: z.string().min(32).max(128), protocol: z.number().int() }),
  z.strictObject({ type: z.literal('ready'), device: z.string(), maxStreams: z.number().int().positive() }),
  z.strictObject({
    type: z.literal('stream.open'),
    streamId,
    rendezvousUrl: z.string().url().max(2048),
    token: z.string().min(40).max(256),
  }),
]);
export type HubMessage = z.infer<typeof HubMessage>;

/** Agent -> hub */
export const AgentMessage = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('auth'),
    device: z.string().max(63),
    signature: z.string().max(128),
    agentVersion: z.string().max(64),
    /** The device's configured target, reported for listings and audit (the agent enforces it). */
    target: z.string().max(300).optional(),
  }),
  z.strictObject({ type: z.literal('stream.reject'), streamId, code: errorCode, message: z.string().max(512) }),
]);
export type AgentMessage = z.infer<typeof AgentMessage>;

function decode<T>(schema: z.ZodType<T>, data: unknown, isBinary: boolean, knownTypes: readonly string[]): T {
  if (isBinary) throw new DrawbridgeError('PROTOCOL_ERROR', 'control messages must be text frames');
  let parsed: unknown;
  try {
    parsed = JSON.parse(String(data));
  } catch {
    throw new DrawbridgeError('PROTOCOL_ERROR', 'control message is not valid JSON');
  }
  const type = (parsed as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !knownTypes.includes(type)) {
    throw new DrawbridgeError('PROTOCOL_ERROR', `unknown control message type ${JSON.stringify(type)?.slice(0, 40)}`);
  }
  const result = schema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new DrawbridgeError(
      'PROTOCOL_ERROR',
      `invalid "${type}" message: ${issue ? `${issue.path.join('.') || '(root)'} ${issue.message}` : 'invalid'}`,
    );
  }
  return result.data;
}

const HUB_TYPES = ['challenge', 'ready', 'stream.open'] as const;
const AGENT_TYPES = ['auth', 'stream.reject'] as const;

export function decodeHubMessage(data: unknown, isBinary: boolean): HubMessage {
  return decode(HubMessage, data, isBinary, HUB_TYPES);
}

export function decodeAgentMessage(data: unknown, isBinary: boolean): AgentMessage {
  return decode(AgentMessage, data, isBinary, AGENT_TYPES);
}

/** The bytes an agent signs to prove it holds a device key, bound to this hub (its CA pin). */
export function authPayload(device: string, nonce: string, caPin: string): Buffer {
  return Buffer.from(`drawbridge-device-auth-v1\n${device}\n${nonce}\n${caPin}`);
}
