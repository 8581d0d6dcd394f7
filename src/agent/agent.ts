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
  const features = [...(options.features ?? []), ...(telemetry ? [telemetry] : [])];
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
    close: async () => {
      await Promise.all(links.map((l) => l.stop()));
      await telemetry?.stop();
    },
  };
}
