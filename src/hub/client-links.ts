/**
 * Client links: one per `drawbridge connect`, `proxy` or `ssh`, authenticated by the
 * principal's bearer token at the upgrade, carrying every stream that client opens. Each
 * stream request is authorised when it runs (the principal is looked up again, so a removed
 * user or a rotated token opens nothing), and refusals get a precise error reply.
 */
import type { Socket } from 'node:net';
import { DrawbridgeError } from '../errors.js';
import { BASE_CAPABILITY, PROTOCOL_VERSION, type ResultOf } from '../protocol/control.js';
import { Hello, StreamOpen } from '../protocol/messages/index.js';
import type { Store } from '../store/store.js';
import { Link } from '../transport/link.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { isValidName } from '../util/names.js';
import type { AccessService } from './access.js';
import type { AuditAggregator } from './audit-aggregator.js';
import type { HubConfig } from './config.js';
import type { DeviceBus } from './bus.js';
import type { EdgeRegistry } from './edge-registry.js';
import type { HubMetrics } from './metrics.js';
import type { Principal } from './principals.js';
import type { Relay } from './relay.js';

/** Refusals of streams that had a session (and so their own audit records). */
const sessionErrors = new WeakSet<DrawbridgeError>();

export const HUB_CLIENT_CAPABILITIES = [BASE_CAPABILITY, 'streams'];

interface ClientConnection {
  link: Link;
  principal: Principal;
  source: string;
}

export class ClientLinks {
  private readonly byPrincipal = new Map<string, Set<ClientConnection>>();
  private count = 0;

  constructor(
    private readonly store: Store,
    private readonly config: HubConfig,
    private readonly registry: EdgeRegistry,
    private readonly bus: DeviceBus,
    private readonly relay: Relay,
    private readonly access: AccessService,
    private readonly metrics: HubMetrics,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly version: string,
    /** Refused stream attempts are audited aggregated: one record per user, device and reason per window. */
    private readonly refusals?: AuditAggregator,
  ) {}

  get size(): number {
    return this.count;
  }

  /** Serves a client link whose upgrade request carried a valid token for `principal`. */
  accept(socket: Socket, head: Buffer, principal: Principal, source: string): void {
    const link = new Link({
      socket,
      head,
      side: 'server',
      self: 'hub',
      peer: 'client',
      clock: this.clock,
      logger: this.logger,
      pingIntervalMs: this.config.limits.pingInterval,
      onClose: () => this.onClose(connection),
    });
    const connection: ClientConnection = { link, principal, source };
    let set = this.byPrincipal.get(principal.name);
    if (!set) this.byPrincipal.set(principal.name, (set = new Set()));
    set.add(connection);
    this.count++;
    this.metrics.clientLinks.set(this.count);
    link.peerCapabilities = new Set(HUB_CLIENT_CAPABILITIES);
    this.relay.adopt(link);
    link.handle(StreamOpen, (body) =>
      this.openStream(connection, body.stream, body.device).catch((error: unknown) => {
        this.auditRefusal(connection, body.device, error);
        throw error;
      }),
    );
    link.send(Hello, {
      protocol: PROTOCOL_VERSION,
      hubVersion: this.version,
      capabilities: HUB_CLIENT_CAPABILITIES,
      limits: this.registry.limits(),
      principal: { name: principal.name, role: principal.role },
    });
  }

  private onClose(connection: ClientConnection): void {
    const set = this.byPrincipal.get(connection.principal.name);
    if (set?.delete(connection)) {
      this.count--;
      this.metrics.clientLinks.set(this.count);
      if (set.size === 0) this.byPrincipal.delete(connection.principal.name);
    }
    this.relay.linkClosed(connection.link, new DrawbridgeError('CLIENT_DISCONNECTED', 'the client disconnected'));
  }

  /** Closes every link of a principal (removed, token rotated): their streams end with `error`. */
  closePrincipal(name: string, error: DrawbridgeError): void {
    for (const connection of [...(this.byPrincipal.get(name) ?? [])]) {
      this.relay.linkClosed(connection.link, error);
      connection.link.closeWithError(error);
    }
  }

  closeAll(error: DrawbridgeError): void {
    for (const set of [...this.byPrincipal.values()]) {
      for (const connection of [...set]) connection.link.closeWithError(error);
    }
  }

  /**
   * A stream refused before it existed (no grant, offline, limits, the edge's refusal) leaves
   * an aggregated audit record; streams that opened have their own open and close records.
   */
  private auditRefusal(connection: ClientConnection, device: string, error: unknown): void {
    if (!this.refusals || !(error instanceof DrawbridgeError) || error.code === 'CLIENT_DISCONNECTED' || sessionErrors.has(error)) return;
    const name = isValidName(device) ? device : null;
    this.refusals.record(
      'stream.refused',
      `${connection.principal.name} ${name ?? '-'} ${error.code}`,
      { actor: connection.principal.name, device: name, details: { code: error.code, clientAddress: connection.source } },
      error.code,
    );
  }

  private async openStream(connection: ClientConnection, streamId: number, deviceName: string): Promise<ResultOf<typeof StreamOpen>> {
    // Authorised now, not when the link opened: the user may have been removed or the
    // token rotated since.
    const current = await this.store.getPrincipalByTokenId(connection.principal.tokenId);
    if (!current || current.name !== connection.principal.name) {
      const error = new DrawbridgeError('PRINCIPAL_REMOVED', 'the user was removed or the token rotated');
      setImmediate(() => this.closePrincipal(connection.principal.name, error));
      throw error;
    }
    const principal: Principal = { name: current.name, role: current.role, tokenId: current.tokenId };
    if (principal.role === 'auditor') throw new DrawbridgeError('FORBIDDEN', `auditors cannot open streams; "${principal.name}" is auditor`);
    if (!isValidName(deviceName)) throw new DrawbridgeError('INVALID_NAME', `invalid device name ${JSON.stringify(deviceName.slice(0, 80))}`);
    const device = await this.store.getDevice(deviceName);
    if (!device) throw new DrawbridgeError('UNKNOWN_DEVICE', `unknown device "${deviceName}"`);
    let grant: { id: string; grantEndsAt: number | null } | undefined;
    if (principal.role !== 'admin') {
      grant = await this.access.activeGrant(current, device);
      if (!grant) {
        throw new DrawbridgeError('NOT_AUTHORIZED', `"${principal.name}" has no active grant for device "${device.name}"; request one: drawbridge access request ${device.name} --for 1h --reason "..."`);
      }
    }
    if (!device.enabled) throw new DrawbridgeError('DEVICE_DISABLED', `device "${device.name}" is disabled`);
    const located = this.bus.locate(device.name);
    if (!located) throw new DrawbridgeError('DEVICE_OFFLINE', `device "${device.name}" is offline (its agent is not connected)`);
    if (!connection.link.isOpen) throw new DrawbridgeError('CLIENT_DISCONNECTED');
    return new Promise((resolve, reject) => {
      this.relay
        .open(
          {
            clientLink: connection.link,
            clientStreamId: streamId,
            principal: principal.name,
            device: device.name,
            target: located.target,
            clientAddress: connection.source,
            grantId: grant?.id ?? null,
            grantEndsAt: grant?.grantEndsAt ?? null,
            agentLink: located.link,
          },
          (error, session) => {
            if (error || !session) {
              // The session existed: its open and close records tell this refusal already.
              const refusal = error ?? new DrawbridgeError('INTERNAL');
              sessionErrors.add(refusal);
              return reject(refusal);
            }
            resolve({
              session: session.id,
              device: session.device,
              target: session.target,
              grantEndsAt: session.grantEndsAt === null ? null : new Date(session.grantEndsAt).toISOString(),
            });
          },
        )
        .catch(reject);
    });
  }
}
