/**
 * startAgent: hosts every virtual device of a config file in one process, one outbound
 * control link each. The agent never listens on a port.
 */
import { dirname, join } from 'node:path';
import { resolveTrust, type HubTrust } from '../client/trust.js';
import { DrawbridgeError } from '../errors.js';
import { createLogger, type Logger } from '../util/logger.js';
import { loadAgentConfig, resolveKeyPath, type AgentConfig } from './config.js';
import { DeviceLink, type DeviceLinkStatus } from './device-link.js';
import { DialGate } from './dial-gate.js';

/** Control links that may be dialling (TLS + challenge) at the same time. */
const MAX_CONCURRENT_DIALS = 64;

export interface AgentOptions {
  configPath: string;
  /** Parsed config; loaded from configPath when absent */
  config?: AgentConfig;
  logger?: Logger;
}

export interface AgentHandle {
  status(): DeviceLinkStatus[];
  /** Resolves once every device has been online at least once (or rejects after timeoutMs). */
  waitOnline(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startAgent(options: AgentOptions): Promise<AgentHandle> {
  const config = options.config ?? loadAgentConfig(options.configPath);
  const logger = options.logger ?? createLogger('agent');
  if (config.devices.length === 0) {
    throw new DrawbridgeError('CONFIG_INVALID', `${options.configPath} lists no devices; enroll one: drawbridge agent enroll TOKEN --target HOST:PORT`);
  }
  const caCache = join(dirname(options.configPath), 'ca');
  const links: DeviceLink[] = [];
  const gate = new DialGate(MAX_CONCURRENT_DIALS);
  const trustByHub = new Map<string, HubTrust>();
  for (const device of config.devices) {
    // Trust is resolved from the local cache written at enrollment; the pin is checked again.
    const trustKey = `${device.hubUrl} ${device.caPin}`;
    let trust = trustByHub.get(trustKey);
    if (!trust) {
      trust = await resolveTrust(device.hubUrl, device.caPin, caCache);
      trustByHub.set(trustKey, trust);
    }
    links.push(new DeviceLink(device, resolveKeyPath(options.configPath, device.keyFile), trust, config.limits, logger, gate));
  }
  for (const link of links) link.start();
  logger.info({ devices: config.devices.map((d) => d.name), config: options.configPath }, 'agent started');

  return {
    status: () => links.map((l) => l.status),
    waitOnline: async (timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!links.every((l) => l.status.connects > 0)) {
        if (Date.now() > deadline) {
          const offline = links.filter((l) => l.status.connects === 0).map((l) => `${l.status.name} (${l.status.lastError ?? 'no answer'})`);
          throw new DrawbridgeError('TIMEOUT', `devices not online after ${timeoutMs} ms: ${offline.join(', ')}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    close: async () => {
      await Promise.all(links.map((l) => l.stop()));
    },
  };
}
