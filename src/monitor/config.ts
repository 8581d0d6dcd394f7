/**
 * The `monitoring:` section of hub.yaml: every alert and finding rule on or off with its
 * severity, thresholds and windows, the allowed ports per device tag, and retention.
 * Defaults follow Wazuh's sshd rules where there is one (8 failures from one source within
 * 120 s is a brute force).
 */
import { z } from 'zod';
import { durationSchema } from '../util/schemas.js';

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
const severity = z.enum(SEVERITIES);

export const ALERT_RULES = [
  'ssh-brute-force',
  'ssh-password-spray',
  'ssh-login-after-failures',
  'root-login',
  'new-listening-port',
  'new-user',
  'new-privileged-user',
  'firewall-permissive',
  'telemetry-silent',
] as const;
export type AlertRule = (typeof ALERT_RULES)[number];

export const FINDING_RULES = [
  'open-port-all-interfaces',
  'permissive-firewall',
  'ssh-root-login-allowed',
  'ssh-password-auth-allowed',
  'ssh-empty-passwords-allowed',
] as const;
export type FindingRule = (typeof FINDING_RULES)[number];

const window = (text: string) => durationSchema.pipe(z.number().min(1000, 'at least 1s').max(7 * 86_400_000, 'at most 7d')).prefault(text);
const count = (n: number) => z.number().int().min(1).max(1_000_000).default(n);
const base = (level: Severity) => ({ enabled: z.boolean().default(true), severity: severity.default(level) });

/** "tcp/22", "udp/123", or "22" (both protocols). */
export const portSpecSchema = z.union([z.number().int().min(1).max(65535), z.string().regex(/^(?:(tcp|udp)\/)?\d{1,5}$/, 'use tcp/PORT, udp/PORT or PORT')]);

export const MonitoringConfigSchema = z.strictObject({
  /** false: the hub offers no telemetry capability, and agents do not report. */
  enabled: z.boolean().default(true),
  rules: z
    .strictObject({
      /** `failures` failed logins (or attempts for users that do not exist) from one source within `window`. */
      'ssh-brute-force': z.strictObject({ ...base('high'), failures: count(8), window: window('120s') }).prefault({}),
      /** Failed logins for `users` different user names from one source within `window`. */
      'ssh-password-spray': z.strictObject({ ...base('high'), users: count(5), window: window('10m') }).prefault({}),
      /** A successful login from a source that failed at least `failures` times within `window` before it. */
      'ssh-login-after-failures': z.strictObject({ ...base('critical'), failures: count(3), window: window('10m') }).prefault({}),
      /** A successful login as root (or any account with uid 0). */
      'root-login': z.strictObject(base('high')).prefault({}),
      /** A port that starts listening after the edge's first report (or outside the allowed ports of its tags). */
      'new-listening-port': z.strictObject(base('medium')).prefault({}),
      'new-user': z.strictObject(base('medium')).prefault({}),
      /** A new uid-0 account or a new member of a privileged group. */
      'new-privileged-user': z.strictObject(base('high')).prefault({}),
      /** The firewall turned permissive (it was not at the previous report). */
      'firewall-permissive': z.strictObject(base('high')).prefault({}),
      /** An edge online with the telemetry capability that sent nothing for `after` (at least three of its checkpoint intervals). */
      'telemetry-silent': z.strictObject({ ...base('medium'), after: window('15m') }).prefault({}),
    })
    .prefault({}),
  findings: z
    .strictObject({
      'open-port-all-interfaces': z.strictObject(base('medium')).prefault({}),
      'permissive-firewall': z.strictObject(base('high')).prefault({}),
      'ssh-root-login-allowed': z.strictObject(base('high')).prefault({}),
      'ssh-password-auth-allowed': z.strictObject(base('medium')).prefault({}),
      'ssh-empty-passwords-allowed': z.strictObject(base('critical')).prefault({}),
    })
    .prefault({}),
  baseline: z
    .strictObject({
      /**
       * Ports an edge may listen on, by the tags of its devices (an edge carries every tag of
       * every device it hosts). Allowed ports raise no new-listening-port alert and no
       * open-port-all-interfaces finding. An edge that matches a rule is held to it from its
       * first report; an edge that matches none learns its first report as its baseline.
       */
      allowedPorts: z
        .array(
          z
            .strictObject({
              tags: z.record(z.string().min(1).max(64), z.string().min(1).max(128)).default({}),
              matchAll: z.boolean().optional(),
              ports: z.array(portSpecSchema).max(1000),
            })
            .superRefine((rule, ctx) => {
              const tagged = Object.keys(rule.tags).length > 0;
              if (tagged === (rule.matchAll === true)) {
                ctx.addIssue({ code: 'custom', path: ['tags'], message: 'list tags, or say matchAll: true for every edge (not both)' });
              }
            }),
        )
        .max(1000)
        .default([]),
    })
    .prefault({}),
  retention: z
    .strictObject({
      /** Raw events older than this are deleted (alerts and findings are kept). */
      maxAge: durationSchema.pipe(z.number().min(3_600_000, 'at least 1h')).prefault('30d'),
      /** The newest this many raw events are kept per edge. */
      maxEventsPerEdge: z.number().int().min(100).max(10_000_000).default(10_000),
    })
    .prefault({}),
});

export type MonitoringConfig = z.output<typeof MonitoringConfigSchema>;

/** Parses "tcp/22" | "udp/53" | "22" | 22 into the protocol-qualified keys it allows. */
export function allowedPortKeys(spec: string | number): string[] {
  const text = String(spec);
  const match = /^(?:(tcp|udp)\/)?(\d{1,5})$/.exec(text);
  if (!match) return [];
  const port = match[2] as string;
  return match[1] ? [`${match[1]}/${port}`] : [`tcp/${port}`, `udp/${port}`];
}
