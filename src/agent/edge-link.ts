/**
 * The agent's one outbound link to a hub: the edge authenticates by signing the hub's
 * nonce, then every virtual device hosted here attaches by signing it with its own key.
 * The link stays up with pings, is redialled with capped exponential backoff and full
 * jitter, and serves stream requests.
 *
 * Streams go only to a device's configured target: a request names a device, never a
 * destination, so a compromised hub cannot point the agent anywhere else on the edge
 * network. The target is dialled only when the hub asks, which it does only for a client
 * that has already joined.
 */
import { createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { connect, type Socket } from 'node:net';
import { DrawbridgeError, type ErrorCode } from '../errors.js';
import { BASE_CAPABILITY, PROTOCOL_VERSION } from '../protocol/control.js';
import { deviceAuthPayload, edgeAuthPayload } from '../protocol/identity.js';
import { DeviceAttach, DeviceAttachable, DeviceDetach, EdgeAuth, Hello, MAX_ATTACH_BATCH, StreamConnect, type LinkLimits } from '../protocol/messages/index.js';
import type { BodyOf } from '../protocol/control.js';
import { tlsOptions, type HubTrust } from '../client/trust.js';
import { EndpointTable, StreamEndpoint } from '../stream/endpoint.js';
import { Link, type LinkCloseInfo } from '../transport/link.js';
import { dialLink } from '../transport/upgrade.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { VERSION } from '../version.js';
import { parseTarget, type AgentConfig, type AgentDeviceConfig } from './config.js';
import { signWith, type EdgeIdentity } from './identity.js';

/** Capabilities the agent implements itself; features add theirs. */
export const AGENT_CAPABILITIES = [BASE_CAPABILITY, 'streams'];

/**
 * A feature that rides on the agent's link (secrets, telemetry): it announces its
 * capability, and is told when a link to a hub that offers the same capability is
 * authenticated (register handlers on the link, start sending) and when it is gone.
 */
export interface AgentFeature {
  readonly capability: string;
  online(link: Link, hub: { url: string; edge: { id: string; name: string } }): void;
  offline?(hubUrl: string): void;
}

/** Retry delay after the hub refused the edge itself (unknown, removed, disabled, replaced). */
const PERMANENT_FAILURE_RETRY_MS = 60_000;
/** Retry delay for a device the hub refused (disabled or wrong key) when no invitation comes. */
const DEVICE_RETRY_MS = 60_000;

export type DeviceState = 'offline' | 'attaching' | 'online' | 'refused';

export interface DeviceStatus {
  name: string;
  state: DeviceState;
  activeStreams: number;
  lastError: string | null;
  /** Times the device attached */
  connects: number;
}

interface HostedDevice {
  config: AgentDeviceConfig;
  /**
   * The device key file. Keys are read when the device signs (at each attach), not held:
   * an agent hosting a thousand devices would otherwise keep a thousand key objects.
   */
  keyPath: string;
  target: { host: string; port: number };
  state: DeviceState;
  lastError: string | null;
  connects: number;
  streams: Set<StreamEndpoint>;
  /** Streams whose target is still connecting: they count against maxStreams too. */
  connecting: number;
  retryTimer?: TimerHandle;
}

export interface EdgeLinkStatus {
  hubUrl: string;
  state: 'connecting' | 'online' | 'offline' | 'stopped';
  lastError: string | null;
  connects: number;
  devices: DeviceStatus[];
}

export class EdgeLink {
  private link: Link | undefined;
  private endpoints: EndpointTable | undefined;
  private nonce: string | undefined;
  private state: EdgeLinkStatus['state'] = 'offline';
  private attempt = 0;
  private reconnectTimer: TimerHandle | undefined;
  private stopped = true;
  private lastError: string | null = null;
  private connects = 0;
  private limits: LinkLimits | undefined;
  private readonly devices = new Map<string, HostedDevice>();
  /** Stream ids the hub asked for whose target is still connecting. */
  private readonly connecting = new Map<number, { socket: Socket; cancelled: boolean }>();

  constructor(
    readonly hubUrl: string,
    private readonly caPin: string,
    deviceConfigs: AgentDeviceConfig[],
    private readonly edge: EdgeIdentity,
    private readonly trust: HubTrust,
    private readonly settings: AgentConfig['limits'],
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly keyPath: (device: AgentDeviceConfig) => string,
    private readonly features: readonly AgentFeature[] = [],
  ) {
    for (const config of deviceConfigs) {
      this.devices.set(config.name, {
        config,
        keyPath: checkedKeyPath(keyPath(config), config.name),
        target: parseTarget(config.target),
        state: 'offline',
        lastError: null,
        connects: 0,
        streams: new Set(),
        connecting: 0,
      });
    }
  }

  status(): EdgeLinkStatus {
    return {
      hubUrl: this.hubUrl,
      state: this.state,
      lastError: this.lastError,
      connects: this.connects,
      devices: [...this.devices.values()].map((d) => ({
        name: d.config.name,
        state: d.state,
        activeStreams: d.streams.size,
        lastError: d.lastError,
        connects: d.connects,
      })),
    };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.dial();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.state = 'stopped';
    this.clock.clearTimeout(this.reconnectTimer);
    for (const device of this.devices.values()) this.clock.clearTimeout(device.retryTimer);
    for (const pending of this.connecting.values()) pending.socket.destroy();
    this.connecting.clear();
    const link = this.link;
    if (link?.isOpen) {
      const closed = new Promise<void>((resolve) => this.onceClosed.push(resolve));
      link.close(1001, 'agent stopping');
      await closed;
    }
    for (const device of this.devices.values()) for (const endpoint of device.streams) endpoint.fail(new DrawbridgeError('LINK_LOST', 'the agent is stopping'));
  }

  private readonly onceClosed: (() => void)[] = [];

  private async dial(): Promise<void> {
    if (this.stopped) return;
    this.state = 'connecting';
    let dialed;
    try {
      dialed = await dialLink({ hubUrl: this.hubUrl, path: '/v1/link/agent', tls: tlsOptions(this.trust), timeoutMs: 15_000 });
    } catch (error) {
      const e = error instanceof DrawbridgeError ? error : new DrawbridgeError('HUB_UNREACHABLE', String(error));
      this.lastError = `${e.code}: ${e.message}`;
      this.logger.info({ hub: this.hubUrl, errorCode: e.code, err: e.message }, 'hub link failed; retrying');
      this.scheduleReconnect(e.code);
      return;
    }
    if (this.stopped) {
      dialed.socket.destroy();
      return;
    }
    const link = new Link({
      socket: dialed.socket,
      head: dialed.head,
      side: 'client',
      self: 'agent',
      peer: 'hub',
      clock: this.clock,
      logger: this.logger,
      pingIntervalMs: this.settings.pingInterval,
      onClose: (info) => this.onClose(link, info),
    });
    this.link = link;
    const endpoints = new EndpointTable(link, (id) => this.cancelConnecting(id));
    this.endpoints = endpoints;
    link.streams = endpoints;
    link.handle(Hello, (hello) => this.onHello(link, hello));
    if (dialed.via) this.logger.info({ hub: this.hubUrl, proxy: dialed.via }, 'link goes through an HTTP proxy');
  }

  private onHello(link: Link, hello: BodyOf<typeof Hello>): void {
    if (hello.protocol !== PROTOCOL_VERSION || !hello.nonce) {
      link.closeWithError(new DrawbridgeError('PROTOCOL_ERROR', `the hub speaks protocol ${hello.protocol}; this agent speaks ${PROTOCOL_VERSION}`));
      return;
    }
    this.nonce = hello.nonce;
    this.limits = hello.limits;
    const mine = [...AGENT_CAPABILITIES, ...this.features.map((f) => f.capability)];
    link.peerCapabilities = new Set([BASE_CAPABILITY, ...hello.capabilities.filter((c) => mine.includes(c))]);
    link
      .request(EdgeAuth, {
        edge: this.edge.id,
        signature: signWith(this.edge.signingKey, edgeAuthPayload(this.edge.id, hello.nonce, this.caPin)),
        agentVersion: VERSION,
        hostname: hostname().slice(0, 253),
        capabilities: mine,
      })
      .then(
        (result) => {
          this.attempt = 0;
          this.connects++;
          this.state = 'online';
          this.lastError = null;
          this.logger.info({ hub: this.hubUrl, edge: result.edge.name }, 'edge online');
          link.handle(StreamConnect, (request) => this.connectStream(link, request));
          link.handle(DeviceDetach, (detach) => this.onDetach(detach));
          link.handle(DeviceAttachable, ({ device }) => {
            const hosted = this.devices.get(device);
            if (hosted && hosted.state !== 'online') this.attach(link, [hosted]);
          });
          this.attach(link, [...this.devices.values()]);
          for (const feature of this.features) {
            if (!link.peerCapabilities.has(feature.capability)) continue;
            try {
              feature.online(link, { url: this.hubUrl, edge: result.edge });
            } catch (error) {
              this.logger.error({ err: error, capability: feature.capability }, 'agent feature failed to start on the link');
            }
          }
        },
        (error: DrawbridgeError) => {
          this.lastError = `${error.code}: ${error.message}`;
          this.logger.error({ hub: this.hubUrl, errorCode: error.code, err: error.message }, 'the hub refused this edge');
        },
      );
  }

  /** Attaches devices in batches, each signing the link's nonce with its own key. */
  private attach(link: Link, devices: HostedDevice[]): void {
    const nonce = this.nonce;
    if (!nonce) return;
    // Batches well under the protocol's maximum keep the agent's peak memory low.
    const size = Math.min(MAX_ATTACH_BATCH, 100);
    const signed: { device: HostedDevice; signature: string }[] = [];
    for (const device of devices) {
      this.clock.clearTimeout(device.retryTimer);
      try {
        signed.push({ device, signature: signWith(createPrivateKey(readFileSync(device.keyPath)), deviceAuthPayload(device.config.name, this.edge.id, nonce, this.caPin)) });
        device.state = 'attaching';
      } catch (error) {
        device.state = 'refused';
        device.lastError = `CONFIG_INVALID: cannot use the key ${device.keyPath}: ${(error as Error).message}`;
        this.logger.error({ device: device.config.name, keyFile: device.keyPath, err: (error as Error).message }, 'cannot use the device key; re-enroll the device');
      }
    }
    for (let i = 0; i < signed.length; i += size) {
      const batch = signed.slice(i, i + size).map((s) => s.device);
      const signatures = signed.slice(i, i + size).map((s) => s.signature);
      link
        .request(
          DeviceAttach,
          {
            devices: batch.map((d, j) => ({
              name: d.config.name,
              signature: signatures[j] as string,
              target: d.config.target,
              maxStreams: d.config.maxStreams,
            })),
          },
          120_000,
        )
        .then(
          (result) => {
            let online = 0;
            // A line per device for a handful; for a fleet, one line per batch.
            const verbose = result.devices.length <= 10;
            for (const outcome of result.devices) {
              const device = this.devices.get(outcome.name);
              if (!device || link !== this.link) continue;
              if (outcome.ok) {
                device.state = 'online';
                device.connects++;
                device.lastError = null;
                online++;
                this.logger[verbose ? 'info' : 'debug']({ device: device.config.name, hub: this.hubUrl }, 'device online');
              } else {
                this.refuseDevice(link, device, outcome.code as ErrorCode, outcome.message);
              }
            }
            if (!verbose) this.logger.info({ hub: this.hubUrl, online, refused: result.devices.length - online }, 'devices online');
          },
          (error: DrawbridgeError) => {
            for (const device of batch) if (device.state === 'attaching') device.state = 'offline';
            this.logger.warn({ hub: this.hubUrl, err: error.message }, 'attaching devices failed');
          },
        );
    }
  }

  private refuseDevice(link: Link, device: HostedDevice, code: ErrorCode, message: string): void {
    device.state = 'refused';
    device.lastError = `${code}: ${message}`;
    const hint =
      code === 'DEVICE_DISABLED'
        ? 'it attaches again by itself when enabled'
        : 'the hub refuses its key; re-enroll it (drawbridge devices enroll-token NAME, then drawbridge agent enroll)';
    this.logger.error({ device: device.config.name, errorCode: code, err: message }, `the hub refused device: ${hint}`);
    if (code === 'DEVICE_REMOVED') return;
    // An invitation (device enabled) attaches it at once; this retry is the fallback.
    device.retryTimer = this.clock.setTimeout(() => {
      if (this.link === link && link.isOpen && device.state === 'refused') this.attach(link, [device]);
    }, DEVICE_RETRY_MS);
    device.retryTimer.unref();
  }

  private onDetach(detach: BodyOf<typeof DeviceDetach>): void {
    const device = this.devices.get(detach.device);
    if (!device || !this.link) return;
    this.logger.warn({ device: detach.device, errorCode: detach.code, reason: detach.message }, 'the hub detached the device');
    const error = new DrawbridgeError(detach.code as ErrorCode, detach.message);
    for (const endpoint of [...device.streams]) endpoint.fail(error);
    if (detach.code === 'DEVICE_REPLACED') {
      // Our key lost to a newer enrollment or link: do not fight over the device.
      device.state = 'refused';
      device.lastError = `${detach.code}: ${detach.message}`;
      return;
    }
    this.refuseDevice(this.link, device, detach.code as ErrorCode, detach.message);
  }

  private connectStream(link: Link, request: BodyOf<typeof StreamConnect>): Promise<Record<string, never>> {
    const device = this.devices.get(request.device);
    const endpoints = this.endpoints;
    if (!device || device.state !== 'online' || !endpoints || link !== this.link) {
      return Promise.reject(new DrawbridgeError('DEVICE_OFFLINE', `device "${request.device}" is not hosted or not attached on this edge`));
    }
    if (endpoints.has(request.stream) || this.connecting.has(request.stream)) {
      return Promise.reject(new DrawbridgeError('PROTOCOL_ERROR', `stream ${request.stream} is already in use`));
    }
    if (device.streams.size + device.connecting >= device.config.maxStreams) {
      return Promise.reject(new DrawbridgeError('TOO_MANY_STREAMS', `device "${device.config.name}" is at its limit of ${device.config.maxStreams} concurrent streams`));
    }
    const window = this.limits?.streamWindowBytes ?? 256 * 1024;
    return new Promise((resolve, reject) => {
      const socket = connect({ host: device.target.host, port: device.target.port, allowHalfOpen: true, noDelay: true });
      const pending = { socket, cancelled: false };
      this.connecting.set(request.stream, pending);
      device.connecting++;
      let counted = true;
      const uncount = (): void => {
        if (counted) {
          counted = false;
          device.connecting--;
        }
      };
      socket.setTimeout(this.settings.connectTimeout);
      let connected = false;
      const giveUp = (error: DrawbridgeError): void => {
        uncount();
        this.connecting.delete(request.stream);
        socket.destroy();
        reject(error);
      };
      socket.once('timeout', () => {
        if (!connected) giveUp(new DrawbridgeError('TIMEOUT', `connecting to ${device.config.target} timed out at the edge`));
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        if (connected) return;
        const refused = error.code === 'ECONNREFUSED';
        giveUp(
          new DrawbridgeError(
            refused ? 'TARGET_REFUSED' : 'TARGET_UNREACHABLE',
            refused
              ? `the target ${device.config.target} refused the connection at the edge`
              : `the target ${device.config.target} is unreachable from the edge (${error.code ?? error.message})`,
          ),
        );
      });
      socket.once('connect', () => {
        connected = true;
        uncount();
        this.connecting.delete(request.stream);
        if (pending.cancelled || link !== this.link || !link.isOpen) {
          socket.destroy();
          reject(new DrawbridgeError('CLIENT_DISCONNECTED', 'the stream was cancelled while the target connected'));
          return;
        }
        socket.setTimeout(0);
        const endpoint = new StreamEndpoint({ input: socket, output: socket, destroy: () => socket.resetAndDestroy(), role: 'target' });
        endpoint.bind(link, request.stream, window, (done) => {
          endpoints.remove(done);
          device.streams.delete(done);
        });
        endpoints.add(endpoint);
        device.streams.add(endpoint);
        resolve({});
        // The reply is written before any data: start reading the target after it.
        queueMicrotask(() => endpoint.start());
      });
    });
  }

  /** A RESET for a stream whose target is still connecting cancels it. */
  private cancelConnecting(streamId: number): void {
    const pending = this.connecting.get(streamId);
    if (pending) pending.cancelled = true;
  }

  private onClose(link: Link, info: LinkCloseInfo): void {
    if (this.link !== link) return;
    this.link = undefined;
    this.nonce = undefined;
    const wasOnline = this.state === 'online';
    const error = new DrawbridgeError('LINK_LOST', `the link to the hub closed (${info.code}${info.reason ? `: ${info.reason}` : ''})`);
    this.endpoints?.failAll(error);
    this.endpoints = undefined;
    if (this.state === 'online') for (const feature of this.features) feature.offline?.(this.hubUrl);
    for (const pending of this.connecting.values()) pending.cancelled = true;
    for (const device of this.devices.values()) {
      this.clock.clearTimeout(device.retryTimer);
      device.state = 'offline';
    }
    for (const resolve of this.onceClosed.splice(0)) resolve();
    if (info.reason) this.lastError = info.reason;
    if (this.stopped) return;
    this.state = 'offline';
    this.logger[wasOnline ? 'warn' : 'info'](
      { hub: this.hubUrl, code: info.code, reason: info.reason || undefined, errorCode: info.errorCode },
      wasOnline ? 'hub link closed; reconnecting' : 'hub link failed; retrying',
    );
    this.scheduleReconnect(info.errorCode);
  }

  private scheduleReconnect(errorCode: ErrorCode | undefined): void {
    if (this.stopped) return;
    this.state = 'offline';
    // An edge the hub does not know, or whose key it rejects, will not fix itself in
    // seconds: retry slowly so it neither floods the hub nor trips its site's rate limit.
    // EDGE_REPLACED means another agent runs with this edge's key: back off too, or the two
    // would take the link from each other forever.
    const permanent = errorCode === 'EDGE_AUTH_FAILED' || errorCode === 'EDGE_REMOVED' || errorCode === 'EDGE_REPLACED' || errorCode === 'EDGE_DISABLED' || errorCode === 'TLS_PIN_MISMATCH';
    const delay = permanent ? Math.max(this.nextDelay(), PERMANENT_FAILURE_RETRY_MS) : this.nextDelay();
    if (permanent) {
      this.logger.error(
        { hub: this.hubUrl, errorCode, retryInMs: delay },
        errorCode === 'EDGE_REPLACED'
          ? 'another agent is connected with this edge key; stop one of them'
          : errorCode === 'EDGE_DISABLED'
            ? 'this edge is disabled on the hub (drawbridge edges enable NAME)'
            : 'the hub refuses this edge; re-enroll a device to register it again',
      );
    }
    // Not unref'd: this timer is what keeps `agent run` alive while the hub is away.
    this.reconnectTimer = this.clock.setTimeout(() => void this.dial(), delay);
  }

  /** Capped exponential backoff with full jitter: never a tight loop, never a thundering herd. */
  private nextDelay(): number {
    const step = Math.min(this.settings.reconnectMaxDelay, this.settings.reconnectMinDelay * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.max(100, Math.floor(Math.random() * step));
  }
}

/**
 * Fails at start, with the file named, when a device key file is missing. (Its content is
 * checked when the device signs; parsing a thousand keys here would only cost memory.)
 */
function checkedKeyPath(path: string, device: string): string {
  if (!existsSync(path)) throw new DrawbridgeError('CONFIG_INVALID', `the key of device "${device}" (${path}) does not exist; enroll the device again`);
  return path;
}
