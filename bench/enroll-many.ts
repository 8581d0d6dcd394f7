/**
 * Enrolls many virtual devices onto one edge without `enrollDevice` (which rewrites the
 * agent config once per device): one edge identity, then POST /v1/enroll per device with
 * the edge part signed as src/agent/enroll.ts signs it, and the config written once.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { dump as stringifyYaml } from 'js-yaml';
import { loadOrGenerateEdgeIdentity, signWith, type EdgeIdentity } from '../src/agent/identity.js';
import { resolveTrust } from '../src/client/trust.js';
import { enrollPayload } from '../src/protocol/identity.js';
import { decodeEnrollmentToken } from '../src/protocol/tokens.js';
import type { HubProcess } from './drawbridge.js';
import { tempDir } from './processes.js';

/** Runs `count` async jobs with at most `parallel` in flight. */
async function pool(count: number, parallel: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await job(next++);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, () => worker()));
}

const EDGE_KEY = join('keys', 'edge.key');
const EDGE_ENCRYPTION_KEY = join('keys', 'edge-x25519.key');

/** Registers and enrolls one device for `edge`; returns its agent config entry. */
async function enrollOne(hub: HubProcess, edge: EdgeIdentity, edgeName: string, device: string, target: string, dir: string): Promise<Record<string, unknown>> {
  const body = decodeEnrollmentToken(await hub.addDevice(device));
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const devicePublicKey = (publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
  await hub.client.request('POST', '/v1/enroll', {
    id: body.id,
    secret: body.secret,
    device: body.device,
    publicKey: devicePublicKey,
    edge: {
      name: edgeName,
      nameChosen: true,
      hostname: hostname(),
      signingKey: edge.signingPublicKey,
      encryptionKey: edge.encryptionPublicKey,
      signature: signWith(edge.signingKey, enrollPayload(body.id, body.device, devicePublicKey, body.caPin)),
    },
  });
  const keyFile = join('keys', `${device}.key`);
  writeFileSync(join(dir, keyFile), privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  return { name: device, hubUrl: body.hubUrl, caPin: body.caPin, target, keyFile };
}

/**
 * A new edge called `edgeName` with `count` devices named PREFIX-0.. forwarding to `target`;
 * returns the path of its agent config, ready for `agent run`.
 */
export async function enrollEdge(
  hub: HubProcess,
  options: { edgeName: string; devicePrefix: string; count: number; target: string; log: (line: string) => void },
): Promise<string> {
  const dir = tempDir('db-bench-edge-');
  mkdirSync(join(dir, 'keys'), { mode: 0o700 });
  const edge = loadOrGenerateEdgeIdentity(join(dir, EDGE_KEY), join(dir, EDGE_ENCRYPTION_KEY));
  const entries: Record<string, unknown>[] = new Array(options.count);
  const enroll = async (i: number): Promise<void> => {
    entries[i] = await enrollOne(hub, edge, options.edgeName, `${options.devicePrefix}-${i}`, options.target, dir);
    if ((i + 1) % 1000 === 0) options.log(`  ${options.edgeName}: enrolled ${i + 1}/${options.count} devices`);
  };
  // The first enrollment creates the edge on the hub; concurrent first enrollments would race.
  await enroll(0);
  edge.save();
  await pool(options.count - 1, 8, (i) => enroll(i + 1));
  const configPath = join(dir, 'agent.yaml');
  writeFileSync(
    configPath,
    stringifyYaml({ edge: { name: options.edgeName, keyFile: EDGE_KEY, encryptionKeyFile: EDGE_ENCRYPTION_KEY }, devices: entries }),
    { mode: 0o600 },
  );
  // The pinned CA cache that `agent enroll` would have written beside the config.
  await resolveTrust(hub.url, hub.caPin, join(dir, 'ca'));
  return configPath;
}
