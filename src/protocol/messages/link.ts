/**
 * Link set-up and the membership of virtual devices: the hub's hello, the edge's proof of
 * identity, and devices attaching to (and detached from) their edge's link.
 */
import { z } from 'zod';
import { nameSchema, plainText } from '../../util/schemas.js';
import { defineMessage } from '../control.js';

const capabilities = z.array(z.string().regex(/^[a-z][a-z0-9.-]{0,39}$/)).max(64);
const base64 = (max: number) => z.string().max(max).regex(/^[A-Za-z0-9+/=_-]*$/);
const errorCode = z.string().regex(/^[A-Z][A-Z_]{1,40}$/);

/** Limits the hub applies to the link; the peer adapts to them. */
export const LinkLimitsSchema = z.strictObject({
  /** Per-stream receive window: the most unconsumed bytes in flight per direction. */
  streamWindowBytes: z.number().int().min(16 * 1024).max(64 * 1024 * 1024),
  /** The hub pings this often; a peer that misses two pings is gone. */
  pingIntervalMs: z.number().int().min(100).max(600_000),
  /** Concurrent streams the hub allows on this link. */
  maxStreams: z.number().int().min(1).max(1_000_000),
});
export type LinkLimits = z.infer<typeof LinkLimitsSchema>;

export const Hello = defineMessage({
  type: 'hello',
  from: 'hub',
  to: ['agent', 'client'],
  summary: 'First message on every link: protocol version, the hub\'s capabilities and limits, and for an agent link the nonce it must sign.',
  body: z.strictObject({
    protocol: z.number().int(),
    hubVersion: z.string().max(64),
    capabilities,
    limits: LinkLimitsSchema,
    /** Agent links: the challenge the edge and its devices sign. */
    nonce: z.string().min(32).max(128).optional(),
    /** Client links: who the hub authenticated. */
    principal: z.strictObject({ name: z.string().max(63), role: z.string().max(20) }).optional(),
  }),
});

export const EdgeAuth = defineMessage({
  type: 'edge.auth',
  from: 'agent',
  to: ['hub'],
  summary: 'The edge proves its identity by signing the hello nonce with its Ed25519 key, and announces its capabilities.',
  body: z.strictObject({
    /** The edge id: hex SHA-256 of its signing public key (SPKI DER), first 32 digits. */
    edge: z.string().regex(/^[0-9a-f]{32}$/),
    signature: base64(128),
    agentVersion: plainText({ max: 64 }),
    hostname: plainText({ max: 253 }),
    capabilities,
  }),
  result: z.strictObject({ edge: z.strictObject({ id: z.string(), name: z.string() }) }),
});

export const MAX_ATTACH_BATCH = 500;

export const DeviceAttach = defineMessage({
  type: 'device.attach',
  from: 'agent',
  to: ['hub'],
  summary: 'Virtual devices hosted by this edge attach to the link, each proving its own key by signing the hello nonce.',
  maxBytes: 256 * 1024,
  body: z.strictObject({
    devices: z
      .array(
        z.strictObject({
          name: nameSchema,
          signature: base64(128),
          /** The device's configured target, for listings and audit (the agent enforces it). */
          target: plainText({ max: 300 }),
          maxStreams: z.number().int().min(1).max(100_000),
        }),
      )
      .min(1)
      .max(MAX_ATTACH_BATCH),
  }),
  result: z.strictObject({
    devices: z.array(
      z.union([
        z.strictObject({ name: z.string(), ok: z.literal(true) }),
        z.strictObject({ name: z.string(), ok: z.literal(false), code: errorCode, message: z.string().max(512) }),
      ]),
    ),
  }),
});

export const DeviceDetach = defineMessage({
  type: 'device.detach',
  from: 'hub',
  to: ['agent'],
  summary: 'The hub detached a device from the link (disabled, removed, re-enrolled elsewhere); its streams have ended.',
  body: z.strictObject({ device: nameSchema, code: errorCode, message: z.string().max(512) }),
});

export const DeviceAttachable = defineMessage({
  type: 'device.attachable',
  from: 'hub',
  to: ['agent'],
  summary: 'A device that was refused may attach now (it was enabled): the agent attaches it at once instead of at its next retry.',
  body: z.strictObject({ device: nameSchema }),
});
