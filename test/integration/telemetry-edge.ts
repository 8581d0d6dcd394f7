/**
 * A hand-driven edge for telemetry tests: the real link (TLS, WebSocket, the edge's own key
 * signing the hub's nonce) with the `telemetry` capability, and nothing else running, so a
 * test sends exactly the messages it means to (good, stale, malformed) and reads the replies.
 */
import { readFileSync } from 'node:fs';
import { load as parseYaml } from 'js-yaml';
import { AgentConfigSchema, resolveKeyPath } from '../../src/agent/config.js';
import { loadEdgeIdentity } from '../../src/agent/identity.js';
import type { Link } from '../../src/transport/link.js';
import { dialTelemetryEdge } from '../../bench/telemetry-edge-link.js';
import { resolveTrust } from '../../src/client/trust.js';
import { portRowKey } from '../../src/agent/collectors/ports.js';
import { TelemetryEvents, TelemetryInventory, TelemetryState, type InventoryName, type InventoryRow, type TelemetryEvent } from '../../src/protocol/messages/index.js';
import type { BodyOf, ResultOf } from '../../src/protocol/control.js';
import { encodePayload, stateHash } from '../../src/protocol/telemetry-codec.js';

export interface TelemetryEdge {
  link: Link;
  edgeId: string;
  state(body?: Partial<BodyOf<typeof TelemetryState>>): Promise<ResultOf<typeof TelemetryState>>;
  /** Sends a full inventory with the correct hash. */
  full(inventory: InventoryName, seq: number, rows: InventoryRow[]): Promise<ResultOf<typeof TelemetryInventory>>;
  /** Sends a delta; `after` is the state it leads to (for the hash). */
  delta(inventory: InventoryName, seq: number, set: InventoryRow[], removed: string[], after: InventoryRow[]): Promise<ResultOf<typeof TelemetryInventory>>;
  events(batch: number, events: TelemetryEvent[], queueId?: string): Promise<ResultOf<typeof TelemetryEvents>>;
  close(): void;
}

export const QUEUE_ID = '0123456789abcdef';

export async function connectTelemetryEdge(hubUrl: string, configPath: string): Promise<TelemetryEdge> {
  const config = AgentConfigSchema.parse(parseYaml(readFileSync(configPath, 'utf8')));
  const edgeConfig = config.edge;
  const device = config.devices[0];
  if (!edgeConfig || !device) throw new Error('the agent config has no edge');
  const identity = loadEdgeIdentity(resolveKeyPath(configPath, edgeConfig.keyFile), resolveKeyPath(configPath, edgeConfig.encryptionKeyFile));
  const trust = await resolveTrust(hubUrl, device.caPin, undefined);
  const link = await dialTelemetryEdge(hubUrl, trust, device.caPin, { id: identity.id, key: identity.signingKey }, 10_000);
  return {
    link,
    edgeId: identity.id,
    state: (body = {}) => {
      const { inventories, ...rest } = { checkpointIntervalMs: 300_000, inventories: {}, queueId: QUEUE_ID, queued: 0, dropped: 0, ...body };
      return link.request(TelemetryState, inventories === undefined ? rest : { ...rest, inventories });
    },
    full: async (inventory, seq, rows) => link.request(TelemetryInventory, { inventory, seq, full: true, payload: await encodePayload({ rows, hash: stateHash(rows) }) }),
    delta: async (inventory, seq, set, removed, after) =>
      link.request(TelemetryInventory, { inventory, seq, full: false, payload: await encodePayload({ set, removed, hash: stateHash(after) }) }),
    events: async (batch, events, queueId = QUEUE_ID) => link.request(TelemetryEvents, { queueId, batch, payload: await encodePayload({ events }) }),
    close: () => link.close(1000, 'test done'),
  };
}

/** A port row as the ports collector reports it. */
export function portRow(proto: 'tcp' | 'udp', addr: string, port: number, proc: string | null = null): InventoryRow {
  return { k: portRowKey(proto, addr, port), proto, addr, port, proc };
}

export function sshdRow(settings: { permitRootLogin?: string; passwordAuthentication?: string; permitEmptyPasswords?: string } = {}): InventoryRow {
  return {
    k: 'sshd',
    permitRootLogin: settings.permitRootLogin ?? 'no',
    passwordAuthentication: settings.passwordAuthentication ?? 'no',
    permitEmptyPasswords: settings.permitEmptyPasswords ?? 'no',
    kbdInteractiveAuthentication: 'no',
    ports: '22',
    listen: '0.0.0.0:22',
    from: 'file',
  };
}

export function failure(src: string, user: string, t: number, n = 1, kind: TelemetryEvent['kind'] = 'ssh.failure'): TelemetryEvent {
  return { kind, t, n, src, user, method: 'password', line: `Failed password for ${user} from ${src} port 22 ssh2` };
}
