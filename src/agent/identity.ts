/**
 * The edge's own identity: an Ed25519 signing key (authenticates the agent's link) and an
 * X25519 encryption key (secrets are encrypted to it), generated here at the first
 * enrollment. Private keys stay in files at mode 0600 beside the agent config and never
 * leave this machine; the hub only ever sees the public halves.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { DrawbridgeError } from '../errors.js';
import { edgeIdOf } from '../protocol/identity.js';
import { writeFileAtomic } from '../util/files.js';

export interface EdgeIdentity {
  /** Derived from the signing key: the same on every hub. */
  id: string;
  signingKey: KeyObject;
  encryptionKey: KeyObject;
  /** SPKI DER, base64 */
  signingPublicKey: string;
  encryptionPublicKey: string;
}

function publicDer(key: KeyObject): Buffer {
  return createPublicKey(key).export({ type: 'spki', format: 'der' });
}

function loadKey(path: string, type: 'ed25519' | 'x25519'): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(path));
  } catch (cause) {
    throw new DrawbridgeError('CONFIG_INVALID', `cannot read the edge key ${path}: ${(cause as Error).message}`, { cause });
  }
  if (key.asymmetricKeyType !== type) throw new DrawbridgeError('CONFIG_INVALID', `${path} is not an ${type} private key`);
  return key;
}

function identityOf(signingKey: KeyObject, encryptionKey: KeyObject): EdgeIdentity {
  const signingDer = publicDer(signingKey);
  return {
    id: edgeIdOf(signingDer),
    signingKey,
    encryptionKey,
    signingPublicKey: signingDer.toString('base64'),
    encryptionPublicKey: publicDer(encryptionKey).toString('base64'),
  };
}

export function loadEdgeIdentity(signingKeyPath: string, encryptionKeyPath: string): EdgeIdentity {
  return identityOf(loadKey(signingKeyPath, 'ed25519'), loadKey(encryptionKeyPath, 'x25519'));
}

/**
 * Loads the edge's keys, or makes new ones in memory when neither file exists. New keys are
 * written only by `save()`, once the hub has accepted them, so a failed first enrollment
 * leaves nothing behind.
 */
export function loadOrGenerateEdgeIdentity(signingKeyPath: string, encryptionKeyPath: string): EdgeIdentity & { created: boolean; save(): void } {
  const haveSigning = existsSync(signingKeyPath);
  const haveEncryption = existsSync(encryptionKeyPath);
  if (haveSigning !== haveEncryption) {
    throw new DrawbridgeError('CONFIG_INVALID', `only one of the edge keys exists (${haveSigning ? signingKeyPath : encryptionKeyPath}); restore the other or remove both to make a new edge identity`);
  }
  if (haveSigning) return { ...loadEdgeIdentity(signingKeyPath, encryptionKeyPath), created: false, save: () => undefined };
  const signingKey = generateKeyPairSync('ed25519').privateKey;
  const encryptionKey = generateKeyPairSync('x25519').privateKey;
  const pem = (key: KeyObject): string => key.export({ type: 'pkcs8', format: 'pem' }) as string;
  return {
    ...identityOf(signingKey, encryptionKey),
    created: true,
    save: () => {
      writeFileAtomic(signingKeyPath, pem(signingKey), 0o600);
      writeFileAtomic(encryptionKeyPath, pem(encryptionKey), 0o600);
    },
  };
}

export function signWith(key: KeyObject, payload: Buffer): string {
  return sign(null, payload, key).toString('base64');
}
