/**
 * Hub configuration (YAML), validated once at start: unknown keys are rejected and every
 * problem is reported at once with its path. Durations are written "30m", "8h".
 */
import { readFileSync } from 'node:fs';
import { load as parseYaml } from 'js-yaml';
import { z } from 'zod';
import { durationSchema, issuesText, sizeSchema } from '../util/schemas.js';
import { DrawbridgeError } from '../errors.js';
import { parseCidr } from './client-address.js';
import { MonitoringConfigSchema } from '../monitor/config.js';

const duration = durationSchema;

const tagValue = z.string().min(1).max(128);

const cidrSchema = z.string().superRefine((text, ctx) => {
  try {
    parseCidr(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
  }
});

export const HubConfigSchema = z.strictObject({
  server: z
    .strictObject({
      /**
       * The request line and headers must arrive within this. Authentication and the action
       * run only once the whole request is in, so a slow sender only delays itself; these
       * bounds keep a slow or silent sender from holding a socket (and its memory) for long.
       */
      headersTimeout: duration.pipe(z.number().min(1000, 'at least 1s').max(300_000, 'at most 5m')).prefault('10s'),
      /** The whole request, body included, must arrive within this (HTTP 408 otherwise). */
      requestTimeout: duration.pipe(z.number().min(1000, 'at least 1s').max(300_000, 'at most 5m')).prefault('20s'),
      /**
       * Reverse proxies in front of the hub (addresses or CIDR ranges). For a connection from
       * one of them the client is the right-most X-Forwarded-For hop that is not a trusted
       * proxy; nobody else's X-Forwarded-For is believed. Empty: the socket peer is the client.
       */
      trustedProxies: z.array(cidrSchema).max(1000).default([]),
      /** A connection that sends no request within this after its TLS handshake is closed. */
      firstRequestTimeout: duration.pipe(z.number().min(1000, 'at least 1s').max(300_000, 'at most 5m')).prefault('10s'),
      /**
       * Concurrent connections, in total and per source address (trusted proxies are not
       * capped per address): beyond these a new connection is closed at once, so one address
       * cannot take the sockets and memory that agents and operators need.
       */
      maxConnections: z.number().int().min(1).max(1_000_000).default(16_384),
      maxConnectionsPerAddress: z.number().int().min(1).max(1_000_000).default(256),
      /**
       * The pin the hub prints and puts in enrollment tokens. `ca`: the CA (with --tls-cert,
       * the last certificate of the chain file). `spki`: the public key of the --tls-cert
       * certificate, for a certificate from a public CA (agents and clients then check the
       * chain against their system roots, the host name, and the key).
       */
      advertisedPin: z.enum(['ca', 'spki']).default('ca'),
    })
    .superRefine((server, ctx) => {
      if (server.headersTimeout > server.requestTimeout) {
        ctx.addIssue({ code: 'custom', path: ['headersTimeout'], message: 'must not be longer than server.requestTimeout' });
      }
    })
    .prefault({}),
  access: z
    .strictObject({
      /** The longest grant anyone may request */
      maxDuration: duration.prefault('8h'),
      /** How long a request may wait for review before it expires */
      requestTtl: duration.prefault('1h'),
      /**
       * Requests one principal may have waiting for review at once (429 TOO_MANY_OPEN_REQUESTS
       * beyond): one user cannot flood the approvers' queue, the sweeps or the store.
       */
      maxPendingRequestsPerPrincipal: z.number().int().min(1).max(10_000).default(20),
      autoApprove: z
        .array(
          z
            .strictObject({
              /** Every tag listed must match the device's tags */
              tags: z.record(z.string().min(1).max(64), tagValue).default({}),
              /** A rule for every device must say so: an empty tag list is refused, not read as "all". */
              matchAll: z.boolean().optional(),
              maxDuration: duration,
            })
            .superRefine((rule, ctx) => {
              const tagged = Object.keys(rule.tags).length > 0;
              if (!tagged && rule.matchAll !== true) {
                ctx.addIssue({ code: 'custom', path: ['tags'], message: 'a rule without tags would approve requests for every device: list tags, or say matchAll: true' });
              }
              if (tagged && rule.matchAll === true) {
                ctx.addIssue({ code: 'custom', path: ['matchAll'], message: 'matchAll: true applies to every device; leave the tags out, or drop matchAll' });
              }
            }),
        )
        .default([]),
    })
    .superRefine((access, ctx) => {
      access.autoApprove.forEach((rule, i) => {
        if (rule.maxDuration > access.maxDuration) {
          ctx.addIssue({ code: 'custom', path: ['autoApprove', i, 'maxDuration'], message: 'must not be longer than access.maxDuration' });
        }
      });
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
  audit: z
    .strictObject({
      /**
       * A signed checkpoint of the audit chain's head is made this often when the head moved,
       * kept in DATA_DIR/audit-checkpoints.jsonl and sent by webhook (audit.checkpoint), so a
       * copy leaves the machine. 0 turns the periodic ones off (on demand still works).
       */
      checkpointInterval: duration.prefault('1h'),
    })
    .prefault({}),
  vault: z
    .strictObject({
      /** Versions kept per secret; older ones are destroyed as new ones are written. */
      maxVersions: z.number().int().min(1).max(1000).default(10),
      /**
       * The largest value a secret may hold. Every delivery carries the whole value in one
       * control message, so the cap also bounds what an edge receives and caches.
       */
      maxValueBytes: sizeSchema.pipe(z.number().min(1, 'at least 1 byte').max(512 * 1024, 'at most 512KiB')).prefault('64KiB'),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      /** /metrics needs an admin or auditor token unless this is true (e.g. a scraper on a private network). */
      public: z.boolean().default(false),
    })
    .prefault({}),
  /** Edge security monitoring: rules, thresholds, allowed ports, retention (src/monitor/config.ts). */
  monitoring: MonitoringConfigSchema.prefault({}),
  limits: z
    .strictObject({
      /** Concurrent streams per device, enforced by the hub (the agent has its own cap). */
      maxStreamsPerDevice: z.number().int().min(1).max(100_000).default(64),
      /** Streams requested but not yet open, hub-wide: bounds set-up work under a flood. */
      maxPendingStreams: z.number().int().min(1).max(1_000_000).default(1024),
      /** Streams requested but not yet open, per user: one user cannot take the hub-wide budget. */
      maxPendingStreamsPerPrincipal: z.number().int().min(1).max(1_000_000).default(64),
      /** Streams one client link may carry at once. */
      maxStreamsPerLink: z.number().int().min(1).max(1_000_000).default(1024),
      /** Links (agent or client) upgraded but not yet authenticated. */
      maxPendingLinks: z.number().int().min(1).max(1_000_000).default(1024),
      /**
       * Per-stream flow-control window: the most bytes in flight per direction, so the most
       * any process holds for one stream. Larger windows go faster over long round trips;
       * smaller ones keep interactive streams snappy beside bulk ones on a shared link.
       */
      streamWindow: sizeSchema.pipe(z.number().min(16 * 1024, 'at least 16KiB').max(64 * 1024 * 1024, 'at most 64MiB')).prefault('512KiB'),
      /** The edge must connect the target within this, or the stream is refused with TIMEOUT. */
      streamConnectTimeout: duration.prefault('15s'),
      /** A stream that carries no data either way for this long is closed (0 turns it off). */
      streamIdleTimeout: duration.prefault('1h'),
      /** No stream lives longer than this, whatever its grant (0 turns it off). */
      maxStreamDuration: duration.prefault('24h'),
      /** An agent must answer its challenge within this. */
      authTimeout: duration.prefault('10s'),
      /** Failed authentications per source address per minute before answering 429. */
      authFailuresPerMinute: z.number().int().min(1).max(100_000).default(20),
      /**
       * Failed authentications are audited as one record per source address and kind per
       * window, with a count: a flood from rotating addresses adds at most
       * authFailureAuditSources + 1 records a window instead of one per attempt.
       */
      authFailureAuditWindow: duration.pipe(z.number().min(1000, 'at least 1s').max(3_600_000, 'at most 1h')).prefault('1m'),
      /** Distinct sources audited one by one per window; the rest share one overflow record. */
      authFailureAuditSources: z.number().int().min(1).max(100_000).default(256),
      /** Links are pinged this often; a link silent for two intervals is cut (dead peers found within 30 s). */
      pingInterval: duration.pipe(z.number().min(100, 'at least 100ms').max(600_000, 'at most 10m')).prefault('10s'),
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
