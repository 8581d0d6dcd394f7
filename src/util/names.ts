import { DrawbridgeError } from '../errors.js';

/** Device and user names: DNS-label-like so they are safe in URLs, logs and ssh host names. */
const NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function isValidName(name: string): boolean {
  return NAME.test(name);
}

export function assertValidName(name: unknown, what = 'name'): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : String(name);
    throw new DrawbridgeError(
      'INVALID_NAME',
      `invalid ${what} ${shown}: use 1-63 lower-case letters, digits and "-", not starting or ending with "-"`,
    );
  }
  return name;
}
