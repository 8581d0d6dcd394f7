/**
 * What edges and devices sign, and how an edge's id is derived from its key. No I/O here.
 * Every payload names its purpose and version and is bound to the hub (its CA pin), so a
 * signature made for one purpose or one hub is worthless for another.
 */
import { createHash } from 'node:crypto';

/** An edge's id: the first 32 hex digits of SHA-256 over its signing public key (SPKI DER). */
export function edgeIdOf(signingKeySpkiDer: Buffer): string {
  return createHash('sha256').update(signingKeySpkiDer).digest('hex').slice(0, 32);
}

/** Signed by the edge key to authenticate its link. */
export function edgeAuthPayload(edgeId: string, nonce: string, caPin: string): Buffer {
  return Buffer.from(`drawbridge-edge-auth-v2\n${edgeId}\n${nonce}\n${caPin}`);
}

/** Signed by a device key to attach the device to its edge's link. */
export function deviceAuthPayload(device: string, edgeId: string, nonce: string, caPin: string): Buffer {
  return Buffer.from(`drawbridge-device-auth-v2\n${device}\n${edgeId}\n${nonce}\n${caPin}`);
}

/** Signed by the edge key at enrollment: proves the edge holds the key it registers. */
export function enrollPayload(enrollmentId: string, device: string, devicePublicKey: string, caPin: string): Buffer {
  return Buffer.from(`drawbridge-enroll-v2\n${enrollmentId}\n${device}\n${devicePublicKey}\n${caPin}`);
}
