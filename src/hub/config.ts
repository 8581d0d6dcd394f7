/**
 * Hub configuration (YAML), validated once at start: unknown keys are rejected and every
 * problem is reported at once with its path. Durations are written "30m", "8h".
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { durationSchema, issuesText } from '../util/schemas.js';
import { DrawbridgeError } from '../errors.js';

const duration = durationSchema;

const tagValue = z.string().min(1).max(128);

export const HubConfigSchema = z.strictObject({
  access: z
    .strictObject({
      /** The longest grant anyone may request */
      maxDuration: duration.prefault('8h'),
      /** How long a request may wait for review before it expires */
      requestTtl: duration.prefault('1h'),
      autoApprove: z
        .array(
          z.strictObject({
            /** Every tag listed must match the device's tags */
            tags: z.record(z.string().min(1).max(64), tagValue),
            maxDuration: duration,
          }),
        )
        .default([]),
    })
    .prefault({}),
  webhook: z
    .strictObject({
      url: z.url({ protocol: /^https?$/ }),
      /** Signs each body: X-Drawbridge-Signature: sha256=HMAC(secret, body) */
      secret: z.string().min(16),
      timeout: duration.prefault('5s'),
    })
    .optional(),
  metrics: z
    .strictObject({
      /** /metrics needs an admin or auditor token unless this is true (e.g. a scraper on a private network). */
      public: z.boolean().default(false),
    })
    .prefault({}),
  limits: z
    .strictObject({
      /** Concurrent streams per device, enforced by the hub (the agent has its own cap). */
      maxStreamsPerDevice: z.number().int().min(1).max(100_000).default(64),
      /** Streams requested but not yet joined, hub-wide: bounds memory under a flood. */
      maxPendingStreams: z.number().int().min(1).max(1_000_000).default(1024),
      /** Control connections that have not yet authenticated. */
      maxPendingControl: z.number().int().min(1).max(1_000_000).default(1024),
      /** Rendezvous tokens die after this; both sides must arrive within it. */
      rendezvousTimeout: duration.prefault('30s'),
      /** An agent must answer its challenge within this. */
      authTimeout: duration.prefault('10s'),
      /** Failed authentications per source address per minute before answering 429. */
      authFailuresPerMinute: z.number().int().min(1).max(100_000).default(20),
      /** Control connections are pinged this often; two missed pongs end the link. */
      pingInterval: duration.prefault('10s'),
    })
    .prefault({}),
});

export type HubConfig = z.output<typeof HubConfigSchema>;

export function defaultHubConfig(): HubConfig {
  return HubConfigSchema.parse({});
}

export function parseHubConfig(value: unknown, source: string): HubConfig {
  const result = HubConfigSchema.safeParse(value ?? {});
  if (result.success) return result.data;
  throw new DrawbridgeError('CONFIG_INVALID', `${source} is invalid: ${issuesText(result.error)}`);
}

export function loadHubConfigFile(path: string): HubConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new DrawbridgeError('CONFIG_INVALID', `cannot read hub config ${path}: ${(cause as Error).message}`, { cause });
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (cause) {
    throw new DrawbridgeError('CONFIG_INVALID', `${path} is not valid YAML: ${(cause as Error).message.split('\n')[0]}`, { cause });
  }
  return parseHubConfig(value, path);
}
