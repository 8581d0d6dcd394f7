/**
 * Enrollment: the agent generates the device's Ed25519 key pair locally (and, the first
 * time, the edge's own signing and encryption keys), proves it holds a one-time enrollment
 * secret and the edge key, and registers only public keys. No private key leaves this
 * machine.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { DrawbridgeError } from '../errors.js';
import { enrollPayload } from '../protocol/identity.js';
import { decodeEnrollmentToken } from '../protocol/tokens.js';
import { HubClient } from '../client/hub-client.js';
import { writeFileAtomic } from '../util/files.js';
import { isValidName } from '../util/names.js';
import { AgentEdgeSchema, loadAgentConfig, parseTarget, resolveKeyPath, upsertAgentDevice } from './config.js';
import { loadOrGenerateEdgeIdentity, signWith } from './identity.js';

export interface EnrollOptions {
  token: string;
  target: string;
  configPath: string;
  maxStreams?: number;
  /** Name of this edge on the hub (first enrollment only; default: the host name). */
  edgeName?: string;
}

export interface EnrollResult {
  device: string;
  edge: { id: string; name: string; created: boolean };
  hubUrl: string;
  keyFile: string;
  configPath: string;
}

/** A host name made into an edge name: lower case, DNS-label characters, at most 63. */
export function defaultEdgeName(host = hostname()): string {
  const name = host.split('.')[0]?.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63).replace(/-+$/, '') ?? '';
  return isValidName(name) ? name : 'edge';
}

export async function enrollDevice(options: EnrollOptions): Promise<EnrollResult> {
  const body = decodeEnrollmentToken(options.token);
  parseTarget(options.target);
  if (options.edgeName !== undefined && !isValidName(options.edgeName)) {
    throw new DrawbridgeError('INVALID_NAME', `invalid edge name "${options.edgeName}": use 1-63 lower-case letters, digits and "-"`);
  }
  const configDirectory = dirname(options.configPath);
  const existing = existsSync(options.configPath) ? loadAgentConfig(options.configPath) : undefined;
  const edgeConfig = AgentEdgeSchema.parse(existing?.edge ?? { name: options.edgeName ?? defaultEdgeName() });
  if (existing?.edge && options.edgeName && options.edgeName !== existing.edge.name) {
    throw new DrawbridgeError('VALIDATION_FAILED', `this agent is already edge "${existing.edge.name}"; --edge-name only names a new edge`);
  }
  const edge = loadOrGenerateEdgeIdentity(resolveKeyPath(options.configPath, edgeConfig.keyFile), resolveKeyPath(options.configPath, edgeConfig.encryptionKeyFile));

  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const devicePublicKey = (publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
  const keyFileRelative = join('keys', `${body.device}.key`);
  const keyPath = resolveKeyPath(options.configPath, keyFileRelative);
  // Trust the hub (pin checked) before anything is written here.
  const client = await HubClient.connect({ hubUrl: body.hubUrl, token: '', caPin: body.caPin }, { cacheDir: join(configDirectory, 'ca') });
  const pendingKeyPath = `${keyPath}.pending`;
  let registered: { edge: { id: string; name: string } };
  try {
    writeFileAtomic(pendingKeyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    registered = await client.request('POST', '/v1/enroll', {
      id: body.id,
      secret: body.secret,
      device: body.device,
      publicKey: devicePublicKey,
      edge: {
        name: edgeConfig.name,
        nameChosen: options.edgeName !== undefined,
        hostname: hostname(),
        signingKey: edge.signingPublicKey,
        encryptionKey: edge.encryptionPublicKey,
        signature: signWith(edge.signingKey, enrollPayload(body.id, body.device, devicePublicKey, body.caPin)),
      },
    });
  } catch (error) {
    rmSync(pendingKeyPath, { force: true });
    throw error;
  } finally {
    client.close();
  }
  // The hub now holds the new public keys: install the matching private keys, then the config.
  edge.save();
  renameSync(pendingKeyPath, keyPath);
  upsertAgentDevice(
    options.configPath,
    {
      name: body.device,
      hubUrl: body.hubUrl,
      caPin: body.caPin,
      target: options.target,
      keyFile: keyFileRelative,
      ...(options.maxStreams ? { maxStreams: options.maxStreams } : {}),
    },
    // The hub keeps the name of an edge it already knows; record the name it uses.
    { ...edgeConfig, name: registered.edge.name },
  );
  return {
    device: body.device,
    edge: { id: registered.edge.id, name: registered.edge.name, created: edge.created },
    hubUrl: body.hubUrl,
    keyFile: keyPath,
    configPath: options.configPath,
  };
}
