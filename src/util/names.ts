import { DrawbridgeError } from '../errors.js';

/** Device and user names: DNS-label-like so they are safe in URLs, logs and ssh host names. */
export const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function isValidName(name: string): boolean {
  return NAME_PATTERN.test(name);
}

export function assertValidName(name: unknown, what = 'name'): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : String(name);
    throw new DrawbridgeError(
      'INVALID_NAME',
      `invalid ${what} ${shown}: use 1-63 lower-case letters, digits and "-", not starting or ending with "-"`,
    );
  }
  return name;
}
