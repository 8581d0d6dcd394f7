/**
 * Random identifiers as hex, from a pool filled by the system CSPRNG 4 KiB at a time. The
 * hub names every stream session with 16 random bytes; one randomFillSync per id costs
 * 3-14 us (a call into OpenSSL each time), a slice of the pool a fraction of that. The
 * bytes are the same CSPRNG output either way, each used once. (crypto.randomUUID pools
 * the same way.)
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let used = POOL_BYTES;

/** `bytes` random bytes (at most 256) as 2 x `bytes` lowercase hex characters. */
export function randomHex(bytes: number): string {
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > 256) throw new RangeError(`randomHex takes 1 to 256 bytes, not ${bytes}`);
  if (used + bytes > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const hex = pool.toString('hex', used, used + bytes);
  // Overwritten once taken: an id handed out is never left in memory to be read again.
  pool.fill(0, used, used + bytes);
  used += bytes;
  return hex;
}
