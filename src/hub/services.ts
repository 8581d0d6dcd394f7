/** The hub's parts, wired once in startHub and handed to the API and upgrade handlers. */
import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { AuditAnchor } from '../audit/anchor.js';
import type { AccessService } from './access.js';
import type { DeviceBus } from './bus.js';
import type { HubConfig } from './config.js';
import type { ClientLinks } from './client-links.js';
import type { EdgeRegistry } from './edge-registry.js';
import type { HubMetrics } from './metrics.js';
import type { PrincipalAuth } from './principals.js';
import type { Relay } from './relay.js';
import type { VaultService } from '../vault/vault-service.js';
import type { SecretDelivery } from '../vault/delivery.js';
import type { MonitorService } from '../monitor/monitor-service.js';

export interface HubServices {
  store: Store;
  config: HubConfig;
  logger: Logger;
  metrics: HubMetrics;
  registry: EdgeRegistry;
  clientLinks: ClientLinks;
  anchor: AuditAnchor;
  bus: DeviceBus;
  relay: Relay;
  access: AccessService;
  auth: PrincipalAuth;
  /** Secrets: the vault and its delivery to edges */
  vault?: VaultService;
  secretDelivery?: SecretDelivery;
  /** Edge security monitoring: alerts, findings, posture */
  monitor: MonitorService;
  publicUrl: string;
  caPin: string;
  caPem: string;
  version: string;
  now: () => number;
  clock: Clock;
}
