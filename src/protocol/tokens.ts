/**
 * Token formats. Every secret is >= 256 random bits, base64url, and only its SHA-256 is
 * stored. Tokens carry a public id so the hub looks the record up by id and then compares
 * the secret's hash in constant time (no timing oracle on the lookup itself).
 */
import { createHash, randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';
import { isCanonicalPin } from './pins.js';
import { DrawbridgeError } from '../errors.js';

const API_TOKEN = /^dbp_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const ENROLLMENT_PREFIX = 'dbe1_';

export function randomSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

const ID_POOL_BYTES = 4096;
const idPool = Buffer.alloc(ID_POOL_BYTES);
let idPoolUsed = ID_POOL_BYTES;

/**
 * `bytes` random bytes (1 to 256) as lowercase hex: public ids, never secrets. Taken from a
 * pool the CSPRNG fills 4 KiB at a time: the hub names every stream session with one, and a
 * randomBytes call per id costs 3-14 us (a call into OpenSSL each time). Each byte is used
 * once and zeroed when taken. (crypto.randomUUID pools the same way.)
 */
export function randomId(bytes = 8): string {
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > 256) throw new RangeError(`randomId takes 1 to 256 bytes, not ${bytes}`);
  if (idPoolUsed + bytes > ID_POOL_BYTES) {
    randomFillSync(idPool);
    idPoolUsed = 0;
  }
  const hex = idPool.toString('hex', idPoolUsed, idPoolUsed + bytes);
  idPool.fill(0, idPoolUsed, idPoolUsed + bytes);
  idPoolUsed += bytes;
  return hex;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Constant-time comparison of a presented secret against a stored SHA-256 hex digest. */
export function secretMatches(secret: string, storedHashHex: string): boolean {
  const presented = createHash('sha256').update(secret).digest();
  const stored = Buffer.from(storedHashHex, 'hex');
  return stored.length === presented.length && timingSafeEqual(presented, stored);
}

export interface ApiToken {
  id: string;
  secret: string;
  token: string;
}

export function createApiToken(): ApiToken {
  const id = randomId(8);
  const secret = randomSecret(32);
  return { id, secret, token: `dbp_${id}_${secret}` };
}

export function parseApiToken(token: string): { id: string; secret: string } | undefined {
  const match = API_TOKEN.exec(token);
  if (!match) return undefined;
  return { id: match[1] as string, secret: match[2] as string };
}

/** What an enrollment token bundles, so the agent needs nothing else to find and trust the hub. */
export interface EnrollmentTokenBody {
  hubUrl: string;
  caPin: string;
  device: string;
  id: string;
  secret: string;
}

export function encodeEnrollmentToken(body: EnrollmentTokenBody): string {
  const json = JSON.stringify({ v: 1, h: body.hubUrl, p: body.caPin, d: body.device, i: body.id, s: body.secret });
  return ENROLLMENT_PREFIX + Buffer.from(json).toString('base64url');
}

export function decodeEnrollmentToken(token: string): EnrollmentTokenBody {
  const trimmed = token.trim();
  if (!trimmed.startsWith(ENROLLMENT_PREFIX) || trimmed.length > 4096) {
    throw new DrawbridgeError('ENROLLMENT_INVALID', 'not a Drawbridge enrollment token (it should start with "dbe1_")');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(trimmed.slice(ENROLLMENT_PREFIX.length), 'base64url').toString('utf8'));
  } catch (cause) {
    throw new DrawbridgeError('ENROLLMENT_INVALID', 'the enrollment token is corrupted (not decodable)', { cause });
  }
  const r = raw as Record<string, unknown> | null;
  if (
    r === null || typeof r !== 'object' || r['v'] !== 1 ||
    typeof r['h'] !== 'string' || typeof r['p'] !== 'string' || typeof r['d'] !== 'string' ||
    typeof r['i'] !== 'string' || typeof r['s'] !== 'string' ||
    !isCanonicalPin(r['p']) || !/^[0-9a-f]{16}$/.test(r['i'])
  ) {
    throw new DrawbridgeError('ENROLLMENT_INVALID', 'the enrollment token is corrupted (missing or malformed fields)');
  }
  return { hubUrl: r['h'], caPin: r['p'], device: r['d'], id: r['i'], secret: r['s'] };
}
