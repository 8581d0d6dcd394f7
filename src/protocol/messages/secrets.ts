/**
 * Secret delivery (capability `secrets`). Values travel only as HPKE ciphertexts sealed to
 * the edge's own X25519 key (src/protocol/secret-hpke.ts), bound to the edge, the secret's
 * name and its version: the hub's relay, proxies and TLS terminators see ciphertext only.
 *
 * The edge speaks first: after its link is authenticated it reports what it holds
 * (`secrets.sync`), and the hub answers with the difference, then pushes every change.
 * Each stored version is acknowledged (the reply to `secrets.deliver`), so the hub knows,
 * across restarts on either side, what each edge holds.
 */
import { z } from 'zod';
import { defineMessage } from '../control.js';
import { MAX_SECRET_NAME_LENGTH } from '../../vault/names.js';
import { secretNameSchema } from '../../vault/name-schema.js';

const version = z.number().int().min(1).max(2 ** 31 - 1);
const base64 = (max: number) => z.string().max(max).regex(/^[A-Za-z0-9+/]*={0,2}$/);

/** Secrets one edge may hold; the sync report must fit one message. */
export const MAX_SECRETS_PER_EDGE = 2000;
/** Read counts per report; more wait for the next one. */
export const MAX_READ_COUNTS_PER_REPORT = 1000;

export const SecretsSync = defineMessage({
  type: 'secrets.sync',
  from: 'agent',
  to: ['hub'],
  capability: 'secrets',
  summary: 'The edge reports every secret version it holds (at link-up, and again after it dropped a cache entry); the hub then sends the difference.',
  maxBytes: 512 * 1024,
  body: z.strictObject({ held: z.array(z.strictObject({ name: secretNameSchema, version })).max(MAX_SECRETS_PER_EDGE) }),
  result: z.strictObject({}),
});

export const SecretsDeliver = defineMessage({
  type: 'secrets.deliver',
  from: 'hub',
  to: ['agent'],
  capability: 'secrets',
  summary: "The hub delivers a secret version, HPKE-sealed to the edge's X25519 key; the reply is the edge's acknowledgement that it stored it.",
  maxBytes: 1024 * 1024,
  body: z.strictObject({
    name: secretNameSchema,
    version,
    /** HPKE encapsulated key (32 bytes for X25519), base64 */
    enc: base64(64),
    /** HPKE ciphertext of the value, base64 */
    ciphertext: base64(900 * 1024),
  }),
  result: z.strictObject({ stored: z.literal(true) }),
});

export const SecretsRemove = defineMessage({
  type: 'secrets.remove',
  from: 'hub',
  to: ['agent'],
  capability: 'secrets',
  summary: 'The edge must drop a secret it holds (denied, deleted or destroyed); the reply confirms it is gone.',
  body: z.strictObject({ name: secretNameSchema, reason: z.enum(['denied', 'deleted']) }),
  result: z.strictObject({}),
});

export const SecretsReads = defineMessage({
  type: 'secrets.reads',
  from: 'agent',
  to: ['hub'],
  capability: 'secrets',
  priority: 'bulk',
  summary: 'Local reads counted per app and version since the last report; the hub records when each secret was last read and audits the batch.',
  maxBytes: 256 * 1024,
  body: z.strictObject({
    reads: z
      .array(
        z.strictObject({
          app: z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/),
          name: z.string().max(MAX_SECRET_NAME_LENGTH),
          version,
          count: z.number().int().min(1).max(2 ** 40),
          /** ms since the epoch, the edge's clock */
          lastReadAt: z.number().int().min(0),
        }),
      )
      .min(1)
      .max(MAX_READ_COUNTS_PER_REPORT),
  }),
  result: z.strictObject({}),
});
