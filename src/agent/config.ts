/**
 * The agent's configuration file (YAML). One file lists every virtual device the agent
 * hosts; each device's private key sits in its own file beside it (mode 0600).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { dump as stringifyYaml, load as parseYaml } from 'js-yaml';
import { z } from 'zod';
import { durationSchema, issuesText, nameSchema } from '../util/schemas.js';
import { DrawbridgeError } from '../errors.js';
import { isCanonicalPin } from '../protocol/pins.js';
import { writeFileAtomic } from '../util/files.js';
import { secretNameSchema } from '../vault/name-schema.js';
import { parseTemplate } from './vault/template.js';
import { AgentMonitoringSchema } from './collectors/config.js';

const duration = durationSchema;

export const TARGET_PATTERN = /^(?:\[([0-9a-fA-F:.]+)\]|([a-zA-Z0-9.-]{1,253})):(\d{1,5})$/;

export function parseTarget(text: string): { host: string; port: number } {
  const match = TARGET_PATTERN.exec(text.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port < 1 || port > 65535) {
    throw new DrawbridgeError('VALIDATION_FAILED', `invalid target "${text}": use HOST:PORT, e.g. 127.0.0.1:22 or [::1]:22`);
  }
  return { host: (match[1] ?? match[2]) as string, port };
}

const target = z.string().refine((t) => {
  try {
    parseTarget(t);
    return true;
  } catch {
    return false;
  }
}, 'must be HOST:PORT, e.g. 127.0.0.1:22');

export const AgentDeviceSchema = z.strictObject({
  name: nameSchema,
  hubUrl: z.url({ protocol: /^https$/ }),
  /** The hub's pin, in its canonical form: sha256:HEX (its CA) or spki:sha256:BASE64 (its public key). */
  caPin: z.string().refine(isCanonicalPin, 'must be sha256: followed by 64 hex digits, or spki:sha256: and a base64 key hash'),
  /** The one place this device's streams may go, whatever the hub asks. */
  target,
  /** Private key file, relative to the config file's directory */
  keyFile: z.string().min(1),
  /** Concurrent streams for this device; more are refused with TOO_MANY_STREAMS. */
  maxStreams: z.number().int().min(1).max(10_000).default(64),
});
export type AgentDeviceConfig = z.output<typeof AgentDeviceSchema>;

/** The edge's own identity: created at the first enrollment, shared by every device here. */
export const AgentEdgeSchema = z.strictObject({
  /** How the hub lists this host (default: its host name at the first enrollment). */
  name: nameSchema,
  /** Ed25519 private key (link authentication), relative to the config file's directory */
  keyFile: z.string().min(1).default('keys/edge.key'),
  /** X25519 private key (secrets are encrypted to it) */
  encryptionKeyFile: z.string().min(1).default('keys/edge-x25519.key'),
});
export type AgentEdgeConfig = z.output<typeof AgentEdgeSchema>;

/** The local API for apps on this host: HTTP + JSON on a Unix domain socket (no TCP port). */
export const LocalApiSchema = z.strictObject({
  /** Socket path, relative to the config file's directory (default: agent.sock beside it). */
  socket: z.string().min(1).max(100).default('agent.sock'),
  /** 0600: only the agent's user; 0660: its group too (put app users in that group). */
  mode: z.enum(['0600', '0660']).default('0600'),
  /** App tokens (stored hashed), relative to the config file's directory. */
  tokensFile: z.string().min(1).default('app-tokens.json'),
});

export const AgentSecretsSchema = z.strictObject({
  /** The encrypted offline cache, relative to the config file's directory. */
  cacheFile: z.string().min(1).default('secrets-cache.json'),
  /** The cache key (mode 0600), relative to the config file's directory. */
  cacheKeyFile: z.string().min(1).default('keys/cache.key'),
  /** Local reads are reported to the hub this often, in batches. */
  readReportInterval: duration.pipe(z.number().min(100, 'at least 100ms').max(3_600_000, 'at most 1h')).prefault('10s'),
});

/**
 * A file rendered from secrets: one secret's value as is, or a small template of several
 * ({{ secret "NAME" }}), written atomically with its mode and owner on every change, and an
 * optional reload command run without a shell.
 */
export const AgentFileSchema = z
  .strictObject({
    /** Absolute, or relative to the config file's directory. */
    path: z.string().min(1).max(4096).refine((p) => !p.includes('\0'), 'must not contain NUL'),
    secret: secretNameSchema.optional(),
    template: z.string().max(64 * 1024).optional(),
    /** Octal, e.g. "0640" */
    mode: z.string().regex(/^0?[0-7]{3}$/, 'must be an octal mode such as "0600"').default('0600'),
    /** "user", "user:group", "uid" or "uid:gid" (changing the owner needs root) */
    owner: z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}$|^\d+$|^([a-z_][a-z0-9_.-]{0,31}|\d+):([a-z_][a-z0-9_.-]{0,31}|\d+)$/, 'must be user, user:group, uid or uid:gid').optional(),
    /** Run after the file changed: the program and its arguments, without a shell (no quoting, no expansion). */
    reload: z.array(z.string().min(1).max(4096)).min(1).max(64).optional(),
  })
  .superRefine((file, ctx) => {
    if ((file.secret === undefined) === (file.template === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['secret'], message: 'give exactly one of secret or template' });
    }
    if (file.template !== undefined) {
      try {
        parseTemplate(file.template);
      } catch (error) {
        ctx.addIssue({ code: 'custom', path: ['template'], message: (error as Error).message });
      }
    }
  });
export type AgentFileConfig = z.output<typeof AgentFileSchema>;

export const AgentConfigSchema = z.strictObject({
  edge: AgentEdgeSchema.optional(),
  devices: z.array(AgentDeviceSchema).default([]),
  localApi: LocalApiSchema.prefault({}),
  secrets: AgentSecretsSchema.prefault({}),
  files: z.array(AgentFileSchema).max(256).default([]),
  limits: z
    .strictObject({
      /** Connecting to the target gives up after this. */
      connectTimeout: duration.prefault('10s'),
      /** The hub link is pinged this often; a link silent for two intervals is redialled. */
      pingInterval: duration.prefault('10s'),
      /** Reconnect backoff: first delay and cap (full jitter between 0 and the current step). */
      reconnectMinDelay: duration.prefault('500ms'),
      reconnectMaxDelay: duration.prefault('10s'),
    })
    .prefault({}),
  /** The edge's security collector (src/agent/collectors/config.ts): on by default. */
  monitoring: AgentMonitoringSchema.prefault({}),
});
export type AgentConfig = z.output<typeof AgentConfigSchema>;

export { defaultAgentConfigPath } from '../util/paths.js';

export function resolveKeyPath(configPath: string, keyFile: string): string {
  return isAbsolute(keyFile) ? keyFile : join(dirname(configPath), keyFile);
}

export function loadAgentConfig(path: string, options: { allowMissing?: boolean } = {}): AgentConfig {
  if (!existsSync(path)) {
    if (options.allowMissing) return AgentConfigSchema.parse({});
    throw new DrawbridgeError('CONFIG_INVALID', `agent config ${path} does not exist; enroll a device first: drawbridge agent enroll TOKEN --target HOST:PORT`);
  }
  let value: unknown;
  try {
    value = parseYaml(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new DrawbridgeError('CONFIG_INVALID', `${path} is not valid YAML: ${(cause as Error).message.split('\n')[0]}`, { cause });
  }
  const result = AgentConfigSchema.safeParse(value ?? {});
  if (!result.success) {
    throw new DrawbridgeError('CONFIG_INVALID', `${path} is invalid: ${issuesText(result.error)}`);
  }
  const paths = new Set<string>();
  for (const file of result.data.files) {
    const full = resolveKeyPath(path, file.path);
    if (paths.has(full)) throw new DrawbridgeError('CONFIG_INVALID', `${path} is invalid: files: ${file.path} is listed twice`);
    paths.add(full);
  }
  const names = new Set<string>();
  for (const device of result.data.devices) {
    if (names.has(device.name)) throw new DrawbridgeError('CONFIG_INVALID', `${path} is invalid: device "${device.name}" is listed twice`);
    names.add(device.name);
  }
  return result.data;
}

/** Adds or replaces one device entry (and sets the edge section), keeping the rest of the file as it was. */
export function upsertAgentDevice(path: string, device: z.input<typeof AgentDeviceSchema>, edge?: z.input<typeof AgentEdgeSchema>): void {
  const existing = existsSync(path) ? (parseYaml(readFileSync(path, 'utf8')) as Record<string, unknown> | null) ?? {} : {};
  const devices = Array.isArray(existing['devices']) ? (existing['devices'] as { name?: string }[]) : [];
  const next = { ...existing, ...(edge ? { edge } : {}), devices: [...devices.filter((d) => d.name !== device.name), device] };
  // Validate before writing, so a bad edit never replaces a good file.
  const check = AgentConfigSchema.safeParse(next);
  if (!check.success) throw new DrawbridgeError('CONFIG_INVALID', `refusing to write an invalid config: ${check.error.issues[0]?.message}`);
  writeFileAtomic(path, '# Drawbridge agent configuration (see drawbridge agent --help)\n' + stringifyYaml(next), 0o600);
}
