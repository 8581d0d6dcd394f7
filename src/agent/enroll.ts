/**
 * Enrollment: the agent generates the device's Ed25519 key pair locally, proves it holds
 * a one-time enrollment secret, and registers only the public key. The private key never
 * leaves this machine.
 */
import { generateKeyPairSync } from 'node:crypto';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { request } from 'node:https';
import { DrawbridgeError } from '../errors.js';
import { decodeEnrollmentToken } from '../protocol/tokens.js';
import { errorFromBody } from '../client/hub-client.js';
import { resolveTrust, tlsOptions } from '../client/trust.js';
import { writeFileAtomic } from '../util/files.js';
import { parseTarget, resolveKeyPath, upsertAgentDevice } from './config.js';

export interface EnrollOptions {
  token: string;
  target: string;
  configPath: string;
  maxStreams?: number;
}

export interface EnrollResult {
  device: string;
  hubUrl: string;
  keyFile: string;
  configPath: string;
}

export async function enrollDevice(options: EnrollOptions): Promise<EnrollResult> {
  const body = decodeEnrollmentToken(options.token);
  parseTarget(options.target);
  const configDirectory = dirname(options.configPath);
  const trust = await resolveTrust(body.hubUrl, body.caPin, join(configDirectory, 'ca'));
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const keyFileRelative = join('keys', `${body.device}.key`);
  const keyPath = resolveKeyPath(options.configPath, keyFileRelative);
  const pendingKeyPath = `${keyPath}.pending`;
  writeFileAtomic(pendingKeyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);

  const payload = JSON.stringify({
    id: body.id,
    secret: body.secret,
    device: body.device,
    publicKey: (publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64'),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const req = request(
        new URL('/v1/enroll', body.hubUrl),
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
          timeout: 15_000,
          ...tlsOptions(trust),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            if ((res.statusCode ?? 500) < 300) return resolve();
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              parsed = undefined;
            }
            reject(errorFromBody(res.statusCode ?? 0, parsed));
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (cause) =>
        reject(cause instanceof DrawbridgeError ? cause : new DrawbridgeError('HUB_UNREACHABLE', `cannot reach the hub at ${body.hubUrl}: ${cause.message}`, { cause })),
      );
      req.end(payload);
    });
  } catch (error) {
    rmSync(pendingKeyPath, { force: true });
    throw error;
  }
  // The hub now holds the new public key: install the matching private key, then the config.
  writeFileAtomic(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  rmSync(pendingKeyPath, { force: true });
  upsertAgentDevice(options.configPath, {
    name: body.device,
    hubUrl: body.hubUrl,
    caPin: body.caPin,
    target: options.target,
    keyFile: keyFileRelative,
    ...(options.maxStreams ? { maxStreams: options.maxStreams } : {}),
  });
  return { device: body.device, hubUrl: body.hubUrl, keyFile: keyPath, configPath: options.configPath };
}
