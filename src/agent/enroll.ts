/**
 * Enrollment: the agent generates the device's Ed25519 key pair locally, proves it holds
 * a one-time enrollment secret, and registers only the public key. The private key never
 * leaves this machine.
 */
import { generateKeyPairSync } from 'node:crypto';
import { renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { decodeEnrollmentToken } from '../protocol/tokens.js';
import { HubClient } from '../client/hub-client.js';
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
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const keyFileRelative = join('keys', `${body.device}.key`);
  const keyPath = resolveKeyPath(options.configPath, keyFileRelative);
  // Trust the hub (pin checked) before anything is written here.
  const client = await HubClient.connect({ hubUrl: body.hubUrl, token: '', caPin: body.caPin }, { cacheDir: join(configDirectory, 'ca') });
  const pendingKeyPath = `${keyPath}.pending`;
  try {
    writeFileAtomic(pendingKeyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    await client.request('POST', '/v1/enroll', {
      id: body.id,
      secret: body.secret,
      device: body.device,
      publicKey: (publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64'),
    });
  } catch (error) {
    rmSync(pendingKeyPath, { force: true });
    throw error;
  } finally {
    client.close();
  }
  // The hub now holds the new public key: install the matching private key, then the config.
  renameSync(pendingKeyPath, keyPath);
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
