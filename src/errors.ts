/**
 * The one registry of Drawbridge error codes. Every refusal the hub, agent or client
 * produces carries one of these codes, so that the HTTP status, the WebSocket close code
 * and the CLI message all agree and scripts can match on a stable string.
 */

export interface ErrorSpec {
  /** HTTP status used when the error answers an API request. */
  readonly status: number;
  /** WebSocket close code (4000-4999 is the application range). */
  readonly closeCode: number;
  /** Default human-readable message. */
  readonly message: string;
}

export const ERRORS = {
  BAD_REQUEST: { status: 400, closeCode: 4400, message: 'the request is malformed' },
  VALIDATION_FAILED: { status: 400, closeCode: 4400, message: 'the request failed validation' },
  INVALID_NAME: {
    status: 400,
    closeCode: 4400,
    message: 'names are 1-63 characters of lower-case letters, digits and "-", starting with a letter or digit',
  },
  PAYLOAD_TOO_LARGE: { status: 413, closeCode: 1009, message: 'the message is larger than the limit' },
  UNAUTHENTICATED: { status: 401, closeCode: 4401, message: 'authentication failed: missing or invalid token' },
  FORBIDDEN: { status: 403, closeCode: 4403, message: 'not allowed' },
  NOT_AUTHORIZED: { status: 403, closeCode: 4403, message: 'no active grant for this device' },
  RATE_LIMITED: { status: 429, closeCode: 4429, message: 'too many failed authentication attempts; retry later' },
  NOT_FOUND: { status: 404, closeCode: 4404, message: 'not found' },
  METHOD_NOT_ALLOWED: { status: 405, closeCode: 4405, message: 'method not allowed' },
  UNKNOWN_DEVICE: { status: 404, closeCode: 4404, message: 'unknown device' },
  CONFLICT: { status: 409, closeCode: 4409, message: 'already exists' },
  DEVICE_DISABLED: { status: 409, closeCode: 4410, message: 'the device is disabled' },
  DEVICE_OFFLINE: { status: 503, closeCode: 4503, message: 'the device is offline' },
  DEVICE_REPLACED: { status: 409, closeCode: 4411, message: 'another connection for this device took over' },
  DEVICE_REMOVED: { status: 410, closeCode: 4412, message: 'the device was removed' },
  ENROLLMENT_INVALID: { status: 401, closeCode: 4401, message: 'the enrollment token is invalid' },
  ENROLLMENT_EXPIRED: { status: 401, closeCode: 4401, message: 'the enrollment token has expired' },
  ENROLLMENT_USED: { status: 401, closeCode: 4401, message: 'the enrollment token was already used' },
  DEVICE_KEY_INVALID: { status: 401, closeCode: 4401, message: 'the device key signature did not verify' },
  RENDEZVOUS_INVALID: { status: 401, closeCode: 4401, message: 'the rendezvous token is invalid, expired or already used' },
  TOO_MANY_STREAMS: { status: 429, closeCode: 4430, message: 'the device has too many open streams' },
  TOO_MANY_PENDING: { status: 503, closeCode: 4431, message: 'too many streams are being set up; retry shortly' },
  TARGET_REFUSED: { status: 502, closeCode: 4502, message: 'the target refused the connection at the edge' },
  TARGET_UNREACHABLE: { status: 502, closeCode: 4504, message: 'the target is unreachable from the edge' },
  TIMEOUT: { status: 504, closeCode: 4408, message: 'timed out' },
  ACCESS_EXPIRED: { status: 403, closeCode: 4420, message: 'access ended: the grant expired' },
  ACCESS_REVOKED: { status: 403, closeCode: 4421, message: 'access ended: the grant was revoked' },
  SESSION_KILLED: { status: 409, closeCode: 4422, message: 'the session was killed by an administrator' },
  PRINCIPAL_REMOVED: { status: 401, closeCode: 4423, message: 'access ended: the user was removed or the token rotated' },
  PROTOCOL_ERROR: { status: 400, closeCode: 1008, message: 'protocol violation' },
  AUDIT_UNAVAILABLE: { status: 503, closeCode: 1011, message: 'the audit log could not be written; the action was refused' },
  INVALID_STATE: { status: 409, closeCode: 4409, message: 'the object is not in a state that allows this' },
  HUB_SHUTTING_DOWN: { status: 503, closeCode: 1001, message: 'the hub is shutting down' },
  INTERNAL: { status: 500, closeCode: 1011, message: 'internal error' },
  CONFIG_INVALID: { status: 500, closeCode: 1011, message: 'the configuration is invalid' },
  TLS_PIN_MISMATCH: { status: 495, closeCode: 1015, message: 'the hub certificate does not match the pinned CA' },
  HUB_UNREACHABLE: { status: 503, closeCode: 1006, message: 'cannot reach the hub' },
  UNSUPPORTED: { status: 400, closeCode: 4400, message: 'not supported by the peer' },
  LINK_LOST: { status: 503, closeCode: 4432, message: 'the link to the hub was lost' },
  EDGE_AUTH_FAILED: { status: 401, closeCode: 4401, message: 'edge authentication failed' },
  EDGE_DISABLED: { status: 409, closeCode: 4413, message: 'the edge is disabled' },
  EDGE_REMOVED: { status: 410, closeCode: 4414, message: 'the edge was removed' },
  EDGE_REPLACED: { status: 409, closeCode: 4415, message: 'another connection for this edge took over' },
  EDGE_NAME_TAKEN: { status: 409, closeCode: 4409, message: 'another edge already has this name' },
  UNKNOWN_EDGE: { status: 404, closeCode: 4404, message: 'unknown edge' },
  EDGE_DISCONNECTED: { status: 503, closeCode: 4433, message: "the device's edge agent disconnected" },
  CLIENT_DISCONNECTED: { status: 503, closeCode: 4434, message: 'the client disconnected' },
  CONNECTION_RESET: { status: 502, closeCode: 4506, message: 'the connection was reset' },
  TARGET_CLOSED: { status: 502, closeCode: 4505, message: 'the target closed the connection' },
  STREAM_IDLE: { status: 408, closeCode: 4435, message: 'the stream was idle longer than the limit' },
  STREAM_TOO_LONG: { status: 408, closeCode: 4436, message: 'the stream reached its maximum duration' },
  TOO_MANY_OPEN_REQUESTS: { status: 429, closeCode: 4437, message: 'too many access requests are waiting for review' },
  // vault and secret delivery (issue 7)
  UNKNOWN_SECRET: { status: 404, closeCode: 4404, message: 'unknown secret' },
  CAS_MISMATCH: { status: 409, closeCode: 4409, message: 'check-and-set failed: the current version is not the one given' },
  SECRET_DELETED: { status: 410, closeCode: 4416, message: 'the secret version is deleted' },
  SECRET_DESTROYED: { status: 410, closeCode: 4417, message: 'the secret version was destroyed' },
  VAULT_KEY_UNAVAILABLE: { status: 503, closeCode: 1011, message: 'the vault key-encryption key is not available' },
  DECRYPT_FAILED: { status: 500, closeCode: 4438, message: 'a ciphertext did not authenticate' },
  // hardening (issue 9)
  USAGE: { status: 400, closeCode: 4400, message: 'the command line is not valid' },
  HUB_LOCKED: { status: 409, closeCode: 4409, message: 'another hub is running on this data directory' },
  // edge security monitoring
  UNKNOWN_ALERT: { status: 404, closeCode: 4404, message: 'unknown alert' },
  UNKNOWN_FINDING: { status: 404, closeCode: 4404, message: 'unknown finding' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class DrawbridgeError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly closeCode: number;
  readonly details: unknown;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; details?: unknown }) {
    const spec: ErrorSpec = ERRORS[code];
    super(message ?? spec.message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DrawbridgeError';
    this.code = code;
    this.status = spec.status;
    this.closeCode = spec.closeCode;
    this.details = options?.details;
  }

  toJSON(): { code: ErrorCode; message: string; details?: unknown } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERRORS, value);
}

/** Map a WebSocket close code back to an error code (first match wins). */
export function errorCodeForClose(closeCode: number, reasonCode?: string): ErrorCode | undefined {
  if (isErrorCode(reasonCode)) return reasonCode;
  for (const [code, spec] of Object.entries(ERRORS)) {
    if (spec.closeCode === closeCode) return code as ErrorCode;
  }
  return undefined;
}

/** WebSocket close reasons are capped at 123 bytes; keep the code first so it survives. */
export function closeReason(code: ErrorCode, message: string): string {
  const text = `${code}: ${message}`;
  const bytes = Buffer.from(text);
  if (bytes.length <= 123) return text;
  return bytes.subarray(0, 120).toString('utf8').replace(/\uFFFD+$/, '') + '...';
}

/** Closes a WebSocket with the error's own close code and a reason that names the code. */
export function closeWithError(ws: { close(code: number, reason: string): void }, code: ErrorCode, message?: string): void {
  ws.close(ERRORS[code].closeCode, closeReason(code, message ?? ERRORS[code].message));
}

/** Parse a close reason produced by closeReason(). */
export function parseCloseReason(reason: string): { code?: ErrorCode; message: string } {
  const match = /^([A-Z_]+): (.*)$/s.exec(reason);
  if (match && isErrorCode(match[1])) return { code: match[1], message: match[2] ?? '' };
  return { message: reason };
}
