/**
 * startAgent: hosts every virtual device of a config file in one process, over one
 * outbound link per hub (normally one). The agent never listens on a port.
 */
import { dirname, join } from 'node:path';
import { resolveTrust } from '../client/trust.js';
import { DrawbridgeError } from '../errors.js';
import { systemClock, type Clock } from '../util/clock.js';
import { createLogger, type Logger } from '../util/logger.js';
import { loadAgentConfig, resolveKeyPath, type AgentConfig, type AgentDeviceConfig } from './config.js';
import { EdgeLink, type AgentFeature, type DeviceStatus, type EdgeLinkStatus } from './edge-link.js';
import { loadEdgeIdentity } from './identity.js';
import { FileCacheKeyStore } from './vault/cache-key.js';
import { EdgeSecrets } from './vault/edge-secrets.js';
import { SecretCache } from './vault/secret-cache.js';
import { AppTokenStore } from './vault/app-tokens.js';
import { FileRenderer } from './vault/file-renderer.js';
import { startLocalApi, type LocalApiHandle } from './vault/local-api.js';

/** The agent CLI's own local API token, beside the config (mode 0600). */
export const LOCAL_ADMIN_TOKEN_FILE = 'local-admin.token';
import { inventorySources } from './collectors/index.js';
import { TelemetryAgent } from './telemetry/telemetry-agent.js';

export interface AgentOptions {
  configPath: string;
  /** Parsed config; loaded from configPath when absent */
  config?: AgentConfig;
  logger?: Logger;
  clock?: Clock;
  /** Features riding on the hub link (secrets, telemetry), in addition to streams. */
  features?: AgentFeature[];
}

export interface AgentHandle {
  /** The security collector, when monitoring is on */
  telemetry: TelemetryAgent | undefined;
  /** Every hosted device, across hubs */
  status(): DeviceStatus[];
  links(): EdgeLinkStatus[];
  /** Secrets held on this edge (the encrypted cache). */
  secrets: EdgeSecrets;
  /** The local API for apps (Unix domain socket). */
  localApi: LocalApiHandle;
  /** Files rendered from secrets (`files:` in the config). */
  files: FileRenderer;
  /** Resolves once every device has been online at least once (or rejects after timeoutMs). */
  waitOnline(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startAgent(options: AgentOptions): Promise<AgentHandle> {
  const config = options.config ?? loadAgentConfig(options.configPath);
  const logger = options.logger ?? createLogger('agent');
  const clock = options.clock ?? systemClock;
  if (config.devices.length === 0 || !config.edge) {
    throw new DrawbridgeError('CONFIG_INVALID', `${options.configPath} lists no devices; enroll one: drawbridge agent enroll TOKEN --target HOST:PORT`);
  }
  const edge = loadEdgeIdentity(resolveKeyPath(options.configPath, config.edge.keyFile), resolveKeyPath(options.configPath, config.edge.encryptionKeyFile));
  const caCache = join(dirname(options.configPath), 'ca');
  const local = (file: string): string => resolveKeyPath(options.configPath, file);
  const secrets = new EdgeSecrets(
    edge,
    new SecretCache(local(config.secrets.cacheFile), new FileCacheKeyStore(local(config.secrets.cacheKeyFile)), edge.id, logger),
    clock,
    logger,
    config.secrets.readReportInterval,
  );
  secrets.start();
  // Files rendered from the cache at once: a restart with no hub still renders them.
  const files = new FileRenderer(config.files, secrets, local, logger);
  await files.start();
  const tokens = new AppTokenStore(local(config.localApi.tokensFile));
  const localApi = await startLocalApi({
    socketPath: local(config.localApi.socket),
    mode: Number.parseInt(config.localApi.mode, 8),
    tokens,
    secrets,
    adminTokenFile: local(LOCAL_ADMIN_TOKEN_FILE),
    logger,
  });
  // The security collector: one per edge (not per device), on unless the config says otherwise.
  const telemetry = config.monitoring.enabled
    ? new TelemetryAgent({
        config: config.monitoring,
        stateDir: resolveKeyPath(options.configPath, config.monitoring.stateDir),
        sources: inventorySources(config.monitoring),
        clock,
        logger,
      })
    : undefined;
  await telemetry?.start();
  const features = [secrets, ...(options.features ?? []), ...(telemetry ? [telemetry] : [])];
  // One link per hub: devices enrolled with the same hub (URL and pin) share it.
  const groups = new Map<string, AgentDeviceConfig[]>();
  for (const device of config.devices) {
    const key = `${device.hubUrl} ${device.caPin}`;
    groups.set(key, [...(groups.get(key) ?? []), device]);
  }
  const links: EdgeLink[] = [];
  for (const devices of groups.values()) {
    const first = devices[0] as AgentDeviceConfig;
    // Trust is resolved from the local cache written at enrollment; the pin is checked again.
    const trust = await resolveTrust(first.hubUrl, first.caPin, caCache);
    links.push(new EdgeLink(first.hubUrl, first.caPin, devices, edge, trust, config.limits, logger, clock, (d) => resolveKeyPath(options.configPath, d.keyFile), features));
  }
  for (const link of links) link.start();
  logger.info({ edge: config.edge.name, devices: config.devices.map((d) => d.name), config: options.configPath }, 'agent started');

  const status = (): DeviceStatus[] => links.flatMap((l) => l.status().devices);
  return {
    telemetry,
    status,
    links: () => links.map((l) => l.status()),
    waitOnline: async (timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!status().every((d) => d.connects > 0)) {
        if (Date.now() > deadline) {
          const offline = status().filter((d) => d.connects === 0).map((d) => `${d.name} (${d.lastError ?? links.find((l) => l.status().devices.some((x) => x.name === d.name))?.status().lastError ?? 'no answer'})`);
          throw new DrawbridgeError('TIMEOUT', `devices not online after ${timeoutMs} ms: ${offline.join(', ')}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    secrets,
    localApi,
    files,
    close: async () => {
      await localApi.close();
      await secrets.stop();
      await Promise.all(links.map((l) => l.stop()));
      await telemetry?.stop();
    },
  };
}
