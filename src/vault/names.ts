/**
 * Secret names: the device-name rules, plus "/" between segments for paths
 * ("plant-3/db-password"). Safe in URLs (each "/" encoded as %2F), logs and file names of
 * the agent's cache, and never ambiguous: no empty segment, no leading or trailing "/".
 * No zod here: the CLI checks names before it loads any schema (see name-schema.ts).
 */
import { DrawbridgeError } from '../errors.js';

const SEGMENT = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
export const SECRET_NAME_PATTERN = new RegExp(`^${SEGMENT}(?:/${SEGMENT}){0,7}$`);
/** Long enough for a few levels of path, short enough for a log line and a URL. */
export const MAX_SECRET_NAME_LENGTH = 200;

export function isValidSecretName(name: string): boolean {
  return name.length <= MAX_SECRET_NAME_LENGTH && SECRET_NAME_PATTERN.test(name);
}

export function assertSecretName(name: unknown): string {
  if (typeof name !== 'string' || !isValidSecretName(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : String(name);
    throw new DrawbridgeError(
      'INVALID_NAME',
      `invalid secret name ${shown}: use up to 8 segments joined by "/", each 1-63 lower-case letters, digits and "-", not starting or ending with "-" (at most ${MAX_SECRET_NAME_LENGTH} characters)`,
    );
  }
  return name;
}

/** A tag rule "key=value", as devices carry tags. */
export const TAG_RULE_PATTERN = /^([a-zA-Z0-9_.-]{1,64})=(.{1,128})$/s;

export function parseTagRule(text: string): { key: string; value: string } {
  const match = TAG_RULE_PATTERN.exec(text);
  if (!match) throw new DrawbridgeError('VALIDATION_FAILED', `invalid tag "${text.slice(0, 80)}": use key=value (key: 1-64 of letters, digits, "_", "." and "-")`);
  return { key: match[1] as string, value: match[2] as string };
}
