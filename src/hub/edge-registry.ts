/**
 * Edge links, and which virtual devices are online through them. Owns the edge's
 * challenge-response handshake, the one-link-per-edge rule, devices attaching (each proves
 * its own key over the edge's link) and detaching, and the messages an agent may send.
 *
 * An unauthenticated caller learns nothing about what exists: an unknown edge and a wrong
 * signature get the same error, and so do an unknown device, one that is not enrolled, one
 * enrolled on another edge, and a wrong device signature. Whether a device is disabled is
 * said only after its key was proven.
 */
import { createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { closeReason, DrawbridgeError, type ErrorCode } from '../errors.js';
import { BASE_CAPABILITY, PROTOCOL_VERSION } from '../protocol/control.js';
import { deviceAuthPayload, edgeAuthPayload } from '../protocol/identity.js';
import { DeviceAttach, DeviceAttachable, DeviceDetach, EdgeAuth, Hello, type LinkLimits } from '../protocol/messages/index.js';
import type { BodyOf, ResultOf } from '../protocol/control.js';
import type { EdgeRecord, Store } from '../store/store.js';
import { Link, type LinkCloseInfo } from '../transport/link.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { HubConfig } from './config.js';
import type { HubMetrics } from './metrics.js';
import type { Relay } from './relay.js';

/** Capabilities the hub implements on agent links itself; features add theirs. */
export const HUB_AGENT_CAPABILITIES = [BASE_CAPABILITY, 'streams'];

/**
 * A feature that rides on edge links (secret delivery, telemetry): it announces its
 * capability, and is told when an edge that announced the same capability comes online
 * (register handlers on `connection.link`, push state) and when its link is gone.
 */
export interface EdgeFeature {
  readonly capability: string;
  online(connection: EdgeConnection): void;
  offline?(connection: EdgeConnection): void;
}

export interface AttachedDevice {
  readonly device: string;
  readonly edge: EdgeConnection;
  readonly target: string;
  readonly maxStreams: number;
  readonly attachedAt: number;
}

export interface EdgeConnection {
  readonly edge: EdgeRecord;
  readonly link: Link;
  readonly remoteAddress: string;
  readonly agentVersion: string;
  readonly connectedAt: number;
  readonly devices: Set<string>;
}

export interface EdgeRegistryEvents {
  /** Counts a failed authentication; returns the error to answer with (429 once the source is over its budget). */
  onAuthFailure(source: string, kind: string, subject: string | undefined, reason: string, error: DrawbridgeError): DrawbridgeError;
}

const DEVICE_AUTH_FAILED = (name: string): DrawbridgeError =>
  new DrawbridgeError('DEVICE_KEY_INVALID', `device "${name}" could not be authenticated (unknown, not enrolled on this edge, or wrong key)`);

export class EdgeRegistry {
  private readonly edges = new Map<string, EdgeConnection>();
  private readonly devices = new Map<string, AttachedDevice>();
  private readonly features: EdgeFeature[] = [];
  private pendingHandshakes = 0;

  constructor(
    private readonly store: Store,
    private readonly config: HubConfig,
    private readonly caPin: string,
    private readonly relay: Relay,
    private readonly metrics: HubMetrics,
    private readonly logger: Logger,
    private readonly events: EdgeRegistryEvents,
    private readonly clock: Clock,
    private readonly version: string,
  ) {}

  /** Adds a feature; edges that come online from now on get it. */
  use(feature: EdgeFeature): void {
    this.features.push(feature);
  }

  /** Every capability the hub offers agents. */
  capabilities(): string[] {
    return [...HUB_AGENT_CAPABILITIES, ...this.features.map((f) => f.capability)];
  }

  /** Edges online now (for features that push to them). */
  connections(): EdgeConnection[] {
    return [...this.edges.values()];
  }

  get(device: string): AttachedDevice | undefined {
    return this.devices.get(device);
  }

  isOnline(device: string): boolean {
    return this.devices.has(device);
  }

  /** Online devices */
  get size(): number {
    return this.devices.size;
  }

  getEdge(edgeId: string): EdgeConnection | undefined {
    return this.edges.get(edgeId);
  }

  get edgeCount(): number {
    return this.edges.size;
  }

  canAcceptHandshake(): boolean {
    return this.pendingHandshakes < this.config.limits.maxPendingLinks;
  }

  limits(): LinkLimits {
    const l = this.config.limits;
    return { streamWindowBytes: l.streamWindow, pingIntervalMs: l.pingInterval, maxStreams: l.maxStreamsPerLink };
  }

  /** Runs the handshake on a freshly upgraded agent link. */
  accept(socket: Socket, head: Buffer, req: IncomingMessage, source: string): void {
    const nonce = randomBytes(32).toString('base64url');
    this.pendingHandshakes++;
    let authenticated = false;
    let settled = false;
    let connection: EdgeConnection | undefined;
    const settle = (): void => {
      if (!settled) {
        settled = true;
        this.pendingHandshakes--;
        this.clock.clearTimeout(timer);
      }
    };
    const link = new Link({
      socket,
      head,
      side: 'server',
      self: 'hub',
      peer: 'agent',
      clock: this.clock,
      logger: this.logger,
      pingIntervalMs: this.config.limits.pingInterval,
      onClose: (info) => {
        settle();
        if (connection) this.onLinkClosed(connection, info);
      },
    });
    const refuse = (error: DrawbridgeError, kind: string | undefined, subject: string | undefined): never => {
      if (kind) error = this.events.onAuthFailure(source, kind, subject, error.message, error);
      // Let the error reply go out first, then close with the same reason.
      setImmediate(() => link.closeWithError(error));
      throw error;
    };
    // A handshake that does not finish in time is a failure like a bad signature: a flood of
    // idle handshakes must cost the flooder its budget, not lock agents out.
    const timer = this.clock.setTimeout(() => {
      if (authenticated) return;
      settle();
      link.closeWithError(this.events.onAuthFailure(source, 'edge', undefined, 'no edge authentication within the time limit', new DrawbridgeError('TIMEOUT', 'no authentication within the time limit')));
    }, this.config.limits.authTimeout);
    timer.unref();

    link.handle(EdgeAuth, async (body) => {
      if (authenticated || settled) throw new DrawbridgeError('PROTOCOL_ERROR', 'already authenticated');
      const edge = await this.store.getEdge(body.edge);
      if (settled) throw new DrawbridgeError('TIMEOUT', 'no authentication within the time limit');
      if (!edge || !verifySignature(edge.signingKey, edgeAuthPayload(body.edge, nonce, this.caPin), body.signature)) {
        return refuse(new DrawbridgeError('EDGE_AUTH_FAILED', 'edge authentication failed (unknown edge or wrong key); re-enroll a device on this edge'), 'edge', body.edge);
      }
      if (!edge.enabled) return refuse(new DrawbridgeError('EDGE_DISABLED', `edge "${edge.name}" is disabled`), undefined, edge.name);
      authenticated = true;
      settle();
      connection = this.register(link, edge, body, source);
      link.handle(DeviceAttach, (attach) => this.attach(connection as EdgeConnection, attach, nonce));
      return { edge: { id: edge.id, name: edge.name } } satisfies ResultOf<typeof EdgeAuth>;
    });
    link.send(Hello, {
      protocol: PROTOCOL_VERSION,
      hubVersion: this.version,
      capabilities: this.capabilities(),
      limits: this.limits(),
      nonce,
    });
    void req;
  }

  private register(link: Link, edge: EdgeRecord, auth: BodyOf<typeof EdgeAuth>, source: string): EdgeConnection {
    const previous = this.edges.get(edge.id);
    if (previous) {
      this.logger.warn({ edge: edge.name, remoteAddress: source, previous: previous.remoteAddress }, 'a second link for this edge took over');
      previous.link.closeWithError(new DrawbridgeError('EDGE_REPLACED', 'a newer link for this edge took over'));
      this.dropConnection(previous, new DrawbridgeError('EDGE_DISCONNECTED', `edge "${edge.name}" reconnected`));
    }
    const offered = this.capabilities();
    link.peerCapabilities = new Set([BASE_CAPABILITY, ...auth.capabilities.filter((c) => offered.includes(c))]);
    const connection: EdgeConnection = {
      edge,
      link,
      remoteAddress: source,
      agentVersion: auth.agentVersion,
      connectedAt: this.clock.now(),
      devices: new Set(),
    };
    this.edges.set(edge.id, connection);
    this.relay.adopt(link);
    this.metrics.connectedEdges.set(this.edges.size);
    void this.store
      .touchEdge(edge.id, { lastSeenAt: this.clock.now(), agentVersion: auth.agentVersion, remoteAddress: source, hostname: auth.hostname })
      .catch((error: unknown) => this.logger.error({ err: error }, 'could not record the edge connection'));
    this.logger.info({ edge: edge.name, remoteAddress: source, agentVersion: auth.agentVersion }, 'edge online');
    // After the reply to edge.auth is on its way: features may send at once.
    queueMicrotask(() => {
      for (const feature of this.features) {
        if (this.edges.get(edge.id) === connection && link.peerCapabilities.has(feature.capability)) this.runFeature(feature, 'online', connection);
      }
    });
    return connection;
  }

  private async attach(connection: EdgeConnection, body: BodyOf<typeof DeviceAttach>, nonce: string): Promise<ResultOf<typeof DeviceAttach>> {
    const results: ResultOf<typeof DeviceAttach>['devices'] = [];
    const now = this.clock.now();
    for (const entry of body.devices) {
      const outcome = await this.attachOne(connection, entry, nonce, now);
      if (outcome) {
        const answer = outcome.code === 'DEVICE_KEY_INVALID' ? this.events.onAuthFailure(connection.remoteAddress, 'device', entry.name, outcome.message, outcome) : outcome;
        results.push({ name: entry.name, ok: false, code: answer.code, message: answer.message });
      } else {
        results.push({ name: entry.name, ok: true });
      }
    }
    return { devices: results };
  }

  private async attachOne(connection: EdgeConnection, entry: BodyOf<typeof DeviceAttach>['devices'][number], nonce: string, now: number): Promise<DrawbridgeError | undefined> {
    const device = await this.store.getDevice(entry.name).catch(() => undefined);
    if (!connection.link.isOpen) return new DrawbridgeError('LINK_LOST');
    const valid =
      device !== undefined &&
      device.publicKey !== null &&
      device.edgeId === connection.edge.id &&
      verifySignature(device.publicKey, deviceAuthPayload(entry.name, connection.edge.id, nonce, this.caPin), entry.signature);
    if (!device || !valid) return DEVICE_AUTH_FAILED(entry.name.slice(0, 63));
    if (!device.enabled) return new DrawbridgeError('DEVICE_DISABLED', `device "${device.name}" is disabled`);
    const existing = this.devices.get(device.name);
    if (existing && existing.edge !== connection) this.detach(device.name, 'DEVICE_REPLACED', 'the device attached on a newer link');
    this.devices.set(device.name, { device: device.name, edge: connection, target: entry.target, maxStreams: entry.maxStreams, attachedAt: now });
    connection.devices.add(device.name);
    this.metrics.connectedDevices.set(this.devices.size);
    void this.store
      .touchDevice(device.name, { lastSeenAt: now, agentVersion: connection.agentVersion, remoteAddress: connection.remoteAddress })
      .catch((error: unknown) => this.logger.error({ err: error }, 'could not record the device connection'));
    this.logger.debug({ device: device.name, edge: connection.edge.name }, 'device online');
    return undefined;
  }

  /**
   * Detaches a device (disabled, removed, re-enrolled with a new key): tells its agent, and
   * ends its streams with the same reason.
   */
  detach(device: string, code: ErrorCode, message?: string): void {
    const attached = this.devices.get(device);
    if (!attached) return;
    const error = new DrawbridgeError(code, message);
    this.devices.delete(device);
    attached.edge.devices.delete(device);
    this.metrics.connectedDevices.set(this.devices.size);
    this.relay.endWhere((s) => s.device === device, error);
    attached.edge.link.send(DeviceDetach, { device, code, message: error.message });
    void this.store.touchDevice(device, { lastSeenAt: this.clock.now() }).catch(() => undefined);
  }

  /** A device was enabled: invite its edge, if connected, to attach it now. */
  invite(device: string, edgeId: string | null): void {
    const connection = edgeId ? this.edges.get(edgeId) : undefined;
    connection?.link.send(DeviceAttachable, { device });
  }

  /** Ends an edge's link (disabled, removed) with the error that explains why. */
  disconnectEdge(edgeId: string, code: ErrorCode, message?: string): void {
    const connection = this.edges.get(edgeId);
    if (!connection) return;
    const error = new DrawbridgeError(code, message);
    connection.link.closeWithError(error);
    this.dropConnection(connection, error);
  }

  private onLinkClosed(connection: EdgeConnection, info: LinkCloseInfo): void {
    if (this.edges.get(connection.edge.id) !== connection) return;
    this.logger.info({ edge: connection.edge.name, code: info.code, reason: info.reason || undefined }, 'edge offline');
    this.dropConnection(connection, new DrawbridgeError('EDGE_DISCONNECTED', `the agent of edge "${connection.edge.name}" disconnected`));
  }

  private runFeature(feature: EdgeFeature, event: 'online' | 'offline', connection: EdgeConnection): void {
    try {
      feature[event]?.(connection);
    } catch (error) {
      this.logger.error({ err: error, capability: feature.capability, edge: connection.edge.name }, `edge feature failed on ${event}`);
    }
  }

  private dropConnection(connection: EdgeConnection, error: DrawbridgeError): void {
    if (this.edges.get(connection.edge.id) !== connection) return;
    this.edges.delete(connection.edge.id);
    for (const feature of this.features) if (connection.link.peerCapabilities.has(feature.capability)) this.runFeature(feature, 'offline', connection);
    const now = this.clock.now();
    for (const device of connection.devices) {
      if (this.devices.get(device)?.edge === connection) this.devices.delete(device);
      void this.store.touchDevice(device, { lastSeenAt: now }).catch(() => undefined);
    }
    connection.devices.clear();
    this.relay.linkClosed(connection.link, error);
    this.metrics.connectedDevices.set(this.devices.size);
    this.metrics.connectedEdges.set(this.edges.size);
    void this.store.touchEdge(connection.edge.id, { lastSeenAt: now }).catch(() => undefined);
  }

  closeAll(error: DrawbridgeError): void {
    for (const connection of [...this.edges.values()]) {
      connection.link.close(error.closeCode, closeReason(error.code, error.message));
      this.dropConnection(connection, error);
    }
  }
}

/** The fixed 12 bytes before the raw key in every Ed25519 SubjectPublicKeyInfo (RFC 8410). */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * An Ed25519 public key from its SPKI DER, which has one layout: 12 fixed bytes, then the raw
 * 32-byte key. The raw key is imported as a JWK: OpenSSL 3's DER decoder costs about 0.2 ms a
 * key, ten times the raw import, and the hub checks a key for every edge and every device
 * that links (10,000 at once after a restart). Anything else (another algorithm, trailing
 * bytes, which the DER decoder would let pass) is not an Ed25519 key: undefined.
 */
function ed25519PublicKey(der: Buffer): KeyObject | undefined {
  if (der.length !== ED25519_SPKI_PREFIX.length + 32 || !der.subarray(0, ED25519_SPKI_PREFIX.length).equals(ED25519_SPKI_PREFIX)) return undefined;
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: der.subarray(ED25519_SPKI_PREFIX.length).toString('base64url') }, format: 'jwk' });
}

/** Verifies an Ed25519 signature against an SPKI DER base64 public key; false on any malformed input. */
export function verifySignature(publicKeyBase64: string, payload: Buffer, signatureBase64: string): boolean {
  try {
    const key = ed25519PublicKey(Buffer.from(publicKeyBase64, 'base64'));
    if (!key) return false;
    return verify(null, payload, key, Buffer.from(signatureBase64, 'base64'));
  } catch {
    return false;
  }
}
