/**
 * In-process harness for secrets: a real hub (restartable on the same port and data
 * directory), agents on real sockets, and helpers to wait for what an edge holds.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { load as parseYaml } from 'js-yaml';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type AgentHandle } from '../../src/agent/agent.js';
import { AgentConfigSchema } from '../../src/agent/config.js';
import { enrollDevice } from '../../src/agent/enroll.js';
import { HubClient } from '../../src/client/hub-client.js';
import { parseHubConfig } from '../../src/hub/config.js';
import { readAdminToken, startHub, type HubHandle } from '../../src/hub/hub.js';
import type { EdgeConnection } from '../../src/hub/edge-registry.js';
import type { SecretStatusView } from '../../src/protocol/api-types.js';
import { silentLogger, type Logger } from '../../src/util/logger.js';

export interface VaultWorld {
  dir: string;
  hub: HubHandle;
  admin: HubClient;
  restartHub(): Promise<void>;
  stopHub(): Promise<void>;
  enroll(device: string, options?: { configPath?: string; tags?: Record<string, string>; edgeName?: string }): Promise<string>;
  /** Enrolls a registered device again (a new token) into the agent config given (its edge). */
  enrollAgain(device: string, configPath: string): Promise<void>;
  /** The hub's live connection of an edge, by name (the same object while its link lasts). */
  connectionOf(edgeName: string): EdgeConnection | undefined;
  startAgent(configPath: string, options?: { logger?: Logger; overrides?: Record<string, unknown> }): Promise<AgentHandle>;
  put(name: string, value: string): Promise<number>;
  call<T>(method: string, path: string, body?: unknown): Promise<T>;
  status(name: string): Promise<SecretStatusView>;
  close(): Promise<void>;
}

export const secretPath = (name: string, suffix = ''): string => `/v1/secrets/${encodeURIComponent(name)}${suffix}`;

export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves once the agent holds `version` of `name` (undefined: holds nothing). */
export function holds(agent: AgentHandle, name: string, version: number | undefined, ms = 10_000): Promise<void> {
  return until(() => {
    const held = agent.secrets.get(name);
    held?.value.fill(0);
    return held?.version === version;
  }, `the edge to hold ${name}@${version ?? 'nothing'}`, ms);
}

export async function startVaultWorld(options: { config?: unknown } = {}): Promise<VaultWorld> {
  const dir = mkdtempSync(join(tmpdir(), 'db-vault-'));
  const config = parseHubConfig(options.config ?? {}, 'test config');
  const agents: AgentHandle[] = [];
  const start = (port: number): Promise<HubHandle> => startHub({ dataDir: join(dir, 'hub'), host: '127.0.0.1', port, logger: silentLogger(), config, shutdownGraceMs: 0 });
  let hub = await start(0);
  let hubOpen = true;
  const connect = (): Promise<HubClient> =>
    HubClient.connect({ hubUrl: hub.url, token: hub.bootstrapAdminToken ?? readAdminToken(hub.dataDir), caPin: hub.caPin }, { cacheDir: join(dir, 'client-ca') });
  let admin = await connect();
  let edges = 0;
  const world: VaultWorld = {
    dir,
    get hub() {
      return hub;
    },
    get admin() {
      return admin;
    },
    stopHub: async () => {
      admin.close();
      if (hubOpen) await hub.close();
      hubOpen = false;
    },
    restartHub: async () => {
      await world.stopHub();
      hub = await start(hub.port);
      hubOpen = true;
      admin = await connect();
    },
    enroll: async (device, opts = {}) => {
      const added = await admin.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name: device, tags: opts.tags ?? {} });
      const configPath = opts.configPath ?? join(dir, `agent-${++edges}`, 'agent.yaml');
      const edgeName = opts.edgeName ?? (opts.configPath ? undefined : `edge-${edges}`);
      await enrollDevice({ token: added.enrollmentToken, target: '127.0.0.1:9', configPath, ...(edgeName ? { edgeName } : {}) });
      return configPath;
    },
    enrollAgain: async (device, configPath) => {
      const issued = await admin.request<{ enrollmentToken: string }>('POST', `/v1/devices/${device}/enrollments`, {});
      await enrollDevice({ token: issued.enrollmentToken, target: '127.0.0.1:9', configPath });
    },
    connectionOf: (edgeName) => hub.services.registry.connections().find((c) => c.edge.name === edgeName),
    startAgent: async (configPath, opts = {}) => {
      const raw = parseYaml(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
      const config = AgentConfigSchema.parse({ ...raw, ...opts.overrides });
      const agent = await startAgent({ configPath, config, logger: opts.logger ?? silentLogger() });
      agents.push(agent);
      return agent;
    },
    put: async (name, value) => (await admin.request<{ version: number }>('POST', secretPath(name), { valueBase64: Buffer.from(value).toString('base64') })).version,
    call: (method, path, body) => admin.request(method, path, body),
    status: (name) => admin.request<SecretStatusView>('GET', secretPath(name, '/status')),
    close: async () => {
      for (const agent of agents) await agent.close();
      await world.stopHub();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return world;
}
