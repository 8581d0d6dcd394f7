/**
 * Operator credentials: `drawbridge login` stores hub URL, token and CA pin in the user's
 * config dir (mode 0600); DRAWBRIDGE_HUB / DRAWBRIDGE_TOKEN / DRAWBRIDGE_CA_PIN and
 * command-line flags override, in that order of increasing precedence.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { DrawbridgeError } from '../errors.js';
import { writeFileAtomic } from '../util/files.js';
import { configDir } from '../util/paths.js';

export interface Credentials {
  hubUrl: string;
  token: string;
  caPin?: string;
}

const CredentialsFile = z.strictObject({
  hubUrl: z.url({ protocol: /^https$/ }),
  token: z.string().min(1),
  caPin: z.string().optional(),
});

export { configDir } from '../util/paths.js';

export function credentialsPath(): string {
  return join(configDir(), 'credentials.json');
}

export function saveCredentials(credentials: Credentials): string {
  const path = credentialsPath();
  writeFileAtomic(path, JSON.stringify(credentials, null, 2) + '\n', 0o600);
  return path;
}

export function loadStoredCredentials(): Partial<Credentials> {
  const path = credentialsPath();
  if (!existsSync(path)) return {};
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new DrawbridgeError('CONFIG_INVALID', `${path} is not valid JSON; run drawbridge login again`, { cause });
  }
  const parsed = CredentialsFile.safeParse(value);
  if (!parsed.success) throw new DrawbridgeError('CONFIG_INVALID', `${path} is invalid; run drawbridge login again`);
  return parsed.data;
}

export interface CredentialOverrides {
  hub?: string | undefined;
  token?: string | undefined;
  caPin?: string | undefined;
}

export function resolveCredentials(flags: CredentialOverrides = {}): Credentials {
  const stored = loadStoredCredentials();
  const hubUrl = flags.hub ?? process.env['DRAWBRIDGE_HUB'] ?? stored.hubUrl;
  const token = flags.token ?? process.env['DRAWBRIDGE_TOKEN'] ?? stored.token;
  const caPin = flags.caPin ?? process.env['DRAWBRIDGE_CA_PIN'] ?? stored.caPin;
  if (!hubUrl || !token) {
    throw new DrawbridgeError(
      'UNAUTHENTICATED',
      'not logged in: run "drawbridge login --hub URL --token T [--ca-pin sha256:HEX]" or set DRAWBRIDGE_HUB and DRAWBRIDGE_TOKEN',
    );
  }
  let url: URL;
  try {
    url = new URL(hubUrl);
  } catch {
    throw new DrawbridgeError('VALIDATION_FAILED', `invalid hub URL "${hubUrl}"`);
  }
  if (url.protocol !== 'https:') throw new DrawbridgeError('VALIDATION_FAILED', `the hub URL must start with https:// (got "${hubUrl}")`);
  return { hubUrl: url.origin, token, ...(caPin ? { caPin } : {}) };
}
