/**
 * Control connections of virtual devices. Owns the challenge-response handshake, the
 * one-link-per-device rule, liveness (pings with a cap on missed pongs) and the
 * messages an agent may send.
 */
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type WebSocket from 'ws';
import { closeReason, closeWithError, DrawbridgeError, type ErrorCode } from '../errors.js';
import {
  authPayload,
  decodeAgentMessage,
  PROTOCOL_VERSION,
  type AgentMessage,
  type HubMessage,
} from '../protocol/messages.js';
import type { Logger } from '../util/logger.js';
import type { Store } from '../store/store.js';
import type { HubConfig } from './config.js';
import { clientAddress } from './http.js';
import type { HubMetrics } from './metrics.js';

export interface DeviceLink {
  readonly device: string;
  readonly ws: WebSocket;
  readonly remoteAddress: string;
  readonly agentVersion: string;
  readonly target: string | null;
  readonly connectedAt: number;
  send(message: HubMessage): void;
}

export interface RegistryEvents {
  onStreamReject(device: string, streamId: string, code: ErrorCode, message: string): void;
  onLinkClosed(device: string): void;
  onAuthFailure(source: string, kind: string, device: string | undefined, reason: string): void;
}

interface LinkState extends DeviceLink {
  missedPongs: number;
}

export class DeviceRegistry {
  private readonly links = new Map<string, LinkState>();
  private pendingHandshakes = 0;
  private readonly pingTimer: NodeJS.Timeout;

  constructor(
    private readonly store: Store,
    private readonly config: HubConfig,
    private readonly caPin: string,
    private readonly metrics: HubMetrics,
    private readonly logger: Logger,
    private readonly events: RegistryEvents,
    private readonly now: () => number = Date.now,
  ) {
    this.pingTimer = setInterval(() => this.pingAll(), config.limits.pingInterval);
    this.pingTimer.unref();
  }

  get(device: string): DeviceLink | undefined {
    return this.links.get(device);
  }

  isOnline(device: string): boolean {
    return this.links.has(device);
  }

  get size(): number {
    return this.links.size;
  }

  /** Closes a device's link (disable, remove), with the error that explains why. */
  disconnect(device: string, code: ErrorCode, message?: string): void {
    const link = this.links.get(device);
    if (!link) return;
    const error = new DrawbridgeError(code, message);
    link.ws.close(error.closeCode, closeReason(code, error.message));
    // Do not wait for the agent's close frame: the link is gone from the hub's view now.
    setTimeout(() => link.ws.terminate(), 1000).unref();
    this.remove(link);
  }

  closeAll(code: number, reason: string): void {
    for (const link of this.links.values()) link.ws.close(code, reason);
  }

  stop(): void {
    clearInterval(this.pingTimer);
  }

  private remove(link: LinkState): void {
    if (this.links.get(link.device) === link) {
      this.links.delete(link.device);
      this.metrics.connectedDevices.set(this.links.size);
      this.events.onLinkClosed(link.device);
    }
  }

  private pingAll(): void {
    for (const link of this.links.values()) {
      if (link.missedPongs >= 2) {
        this.logger.warn({ device: link.device }, 'control link stale (two pings unanswered); closing');
        link.ws.terminate();
        continue;
      }
      link.missedPongs++;
      link.ws.ping();
    }
  }

  /** Rejects an upgrade early when too many handshakes are in flight. */
  canAcceptHandshake(): boolean {
    return this.pendingHandshakes < this.config.limits.maxPendingControl;
  }

  /** Runs the challenge-response handshake on a freshly upgraded control socket. */
  accept(ws: WebSocket, req: IncomingMessage): void {
    const source = clientAddress(req);
    const nonce = randomBytes(32).toString('base64url');
    this.pendingHandshakes++;
    let settled = false;
    const settle = (): void => {
      if (!settled) {
        settled = true;
        this.pendingHandshakes--;
        clearTimeout(timer);
      }
    };
    const fail = (code: ErrorCode, message: string, kind?: string, device?: string): void => {
      settle();
      if (kind) this.events.onAuthFailure(source, kind, device, message);
      const error = new DrawbridgeError(code, message);
      ws.close(error.closeCode, closeReason(code, message));
      setTimeout(() => ws.terminate(), 1000).unref();
    };
    const timer = setTimeout(() => fail('TIMEOUT', 'no authentication within the time limit'), this.config.limits.authTimeout);
    ws.once('close', settle);
    ws.on('error', () => undefined);

    ws.once('message', (data, isBinary) => {
      let message: AgentMessage;
      try {
        message = decodeAgentMessage(data, isBinary);
      } catch (error) {
        fail('PROTOCOL_ERROR', (error as Error).message);
        return;
      }
      if (message.type !== 'auth') {
        fail('PROTOCOL_ERROR', `expected "auth", got "${message.type}"`);
        return;
      }
      this.authenticate(message, nonce).then(
        (result) => {
          if (settled) return; // timed out or closed meanwhile
          if ('error' in result) {
            // A disabled device proved its key: refusing it is not an authentication failure,
            // and must not count against its site's source address.
            fail(result.error, result.message, result.error === 'DEVICE_DISABLED' ? undefined : 'device', message.device);
            return;
          }
          settle();
          this.register(ws, message, source);
        },
        (error: unknown) => {
          this.logger.error({ err: error }, 'device authentication failed unexpectedly');
          fail('INTERNAL', 'internal error during authentication');
        },
      );
    });
    ws.send(JSON.stringify({ type: 'challenge', nonce, protocol: PROTOCOL_VERSION } satisfies HubMessage));
  }

  private async authenticate(
    message: Extract<AgentMessage, { type: 'auth' }>,
    nonce: string,
  ): Promise<{ ok: true } | { error: ErrorCode; message: string }> {
    const device = await this.store.getDevice(message.device);
    if (!device) return { error: 'UNKNOWN_DEVICE', message: `unknown device "${message.device}"` };
    if (!device.publicKey) return { error: 'DEVICE_KEY_INVALID', message: `device "${device.name}" is not enrolled` };
    let valid = false;
    try {
      const key = createPublicKey({ key: Buffer.from(device.publicKey, 'base64'), format: 'der', type: 'spki' });
      valid = verify(null, authPayload(device.name, nonce, this.caPin), key, Buffer.from(message.signature, 'base64'));
    } catch {
      valid = false;
    }
    if (!valid) return { error: 'DEVICE_KEY_INVALID', message: `the signature for device "${device.name}" did not verify` };
    // Checked after the signature so that an unauthenticated party learns nothing about state.
    if (!device.enabled) return { error: 'DEVICE_DISABLED', message: `device "${device.name}" is disabled` };
    return { ok: true };
  }

  private register(ws: WebSocket, auth: Extract<AgentMessage, { type: 'auth' }>, source: string): void {
    const previous = this.links.get(auth.device);
    if (previous) {
      closeWithError(previous.ws, 'DEVICE_REPLACED', 'a newer connection for this device took over');
      this.remove(previous);
    }
    const link: LinkState = {
      device: auth.device,
      ws,
      remoteAddress: source,
      agentVersion: auth.agentVersion,
      target: auth.target ?? null,
      connectedAt: this.now(),
      missedPongs: 0,
      send: (message) => {
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
      },
    };
    this.links.set(auth.device, link);
    this.metrics.connectedDevices.set(this.links.size);
    ws.on('pong', () => {
      link.missedPongs = 0;
    });
    ws.on('message', (data, isBinary) => {
      let message: AgentMessage;
      try {
        message = decodeAgentMessage(data, isBinary);
      } catch (error) {
        this.logger.warn({ device: auth.device, err: (error as Error).message }, 'protocol error on control link');
        closeWithError(ws, 'PROTOCOL_ERROR', (error as Error).message);
        return;
      }
      if (message.type === 'stream.reject') {
        const code = (message.code in { TARGET_REFUSED: 1, TARGET_UNREACHABLE: 1, TOO_MANY_STREAMS: 1, TIMEOUT: 1, RENDEZVOUS_INVALID: 1 }
          ? message.code
          : 'INTERNAL') as ErrorCode;
        this.events.onStreamReject(auth.device, message.streamId, code, message.message);
      } else {
        closeWithError(ws, 'PROTOCOL_ERROR', 'already authenticated');
      }
    });
    ws.once('close', () => this.remove(link));
    link.send({ type: 'ready', device: auth.device, maxStreams: this.config.limits.maxStreamsPerDevice });
    void this.store
      .touchDevice(auth.device, { lastSeenAt: this.now(), agentVersion: auth.agentVersion, remoteAddress: source })
      .catch((error: unknown) => this.logger.error({ err: error }, 'could not record device connection'));
    this.logger.info({ device: auth.device, remoteAddress: source, agentVersion: auth.agentVersion }, 'device online');
  }
}
