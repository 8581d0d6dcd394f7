/**
 * One virtual device's outbound control link: authenticate by signing the hub's
 * challenge, stay alive with pings, reconnect with capped exponential backoff and full
 * jitter, and serve stream requests. Streams go only to the configured target: the
 * request names a stream, never a destination, so a compromised hub cannot point the
 * agent anywhere else on the edge network.
 */
import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { closeWithError, parseCloseReason, type ErrorCode } from '../errors.js';
import {
  authPayload,
  CONTROL_MAX_PAYLOAD_BYTES,
  DATA_MAX_PAYLOAD_BYTES,
  decodeHubMessage,
  type AgentMessage,
  type HubMessage,
} from '../protocol/messages.js';
import { zeroMask } from '../client/hub-client.js';
import { tlsOptions, type HubTrust } from '../client/trust.js';
import { bridge } from '../stream/bridge.js';
import type { Logger } from '../util/logger.js';
import { VERSION } from '../version.js';
import { parseTarget, type AgentConfig, type AgentDeviceConfig } from './config.js';
import { DialGate } from './dial-gate.js';

/** Retry delay after the hub said the device is unknown, removed or has the wrong key. */
const PERMANENT_FAILURE_RETRY_MS = 60_000;

export type LinkState = 'connecting' | 'online' | 'offline' | 'stopped';

export interface DeviceLinkStatus {
  name: string;
  state: LinkState;
  activeStreams: number;
  lastError: string | null;
  connects: number;
}

export class DeviceLink {
  private ws: WebSocket | undefined;
  private state: LinkState = 'offline';
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private missedPongs = 0;
  private stopped = false;
  private lastError: string | null = null;
  private connects = 0;
  private readonly streams = new Set<Socket>();
  private readonly key: KeyObject;
  private readonly target: { host: string; port: number };
  private readonly hubOrigin: string;
  /** Created on the first stream: TLS session resumption for rendezvous dials. */
  private streamAgent: Agent | undefined;

  constructor(
    private readonly device: AgentDeviceConfig,
    keyPath: string,
    private readonly trust: HubTrust,
    private readonly limits: AgentConfig['limits'],
    private readonly logger: Logger,
    private readonly gate: DialGate = new DialGate(1),
  ) {
    this.key = createPrivateKey(readFileSync(keyPath));
    this.target = parseTarget(device.target);
    this.hubOrigin = new URL(device.hubUrl).host;
  }

  get status(): DeviceLinkStatus {
    return { name: this.device.name, state: this.state, activeStreams: this.streams.size, lastError: this.lastError, connects: this.connects };
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.state = 'stopped';
    clearTimeout(this.reconnectTimer);
    clearInterval(this.pingTimer);
    const ws = this.ws;
    if (ws && ws.readyState !== ws.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close(1001, 'agent stopping');
        setTimeout(() => {
          ws.terminate();
          resolve();
        }, 1000).unref();
      });
    }
    for (const socket of this.streams) socket.destroy();
    this.streamAgent?.destroy();
  }

  private connect(): void {
    if (this.stopped) return;
    this.state = 'connecting';
    void this.gate.acquire().then((release) => {
      if (this.stopped) release();
      else this.dial(release);
    });
  }

  /** One dial attempt; `release` frees the dial slot once authenticated or closed. */
  private dial(release: () => void): void {
    const url = `${this.device.hubUrl.replace(/^http/, 'ws').replace(/\/+$/, '')}/v1/agent/connect`;
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      maxPayload: CONTROL_MAX_PAYLOAD_BYTES,
      handshakeTimeout: 10_000,
      ...tlsOptions(this.trust),
    });
    this.ws = ws;
    let authenticated = false;

    ws.on('open', () => {
      this.missedPongs = 0;
      clearInterval(this.pingTimer);
      // Stale-link detection: a link that misses two pings in a row is cut and redialled.
      this.pingTimer = setInterval(() => {
        if (this.missedPongs >= 2) {
          this.logger.warn({ device: this.device.name }, 'hub link stale (no pong); reconnecting');
          ws.terminate();
          return;
        }
        this.missedPongs++;
        ws.ping();
      }, this.limits.pingInterval);
      this.pingTimer.unref();
    });
    ws.on('pong', () => {
      this.missedPongs = 0;
    });
    ws.on('message', (data, isBinary) => {
      this.missedPongs = 0;
      let message: HubMessage;
      try {
        message = decodeHubMessage(data, isBinary);
      } catch (error) {
        this.logger.warn({ device: this.device.name, err: (error as Error).message }, 'invalid message from hub');
        closeWithError(ws, 'PROTOCOL_ERROR', (error as Error).message);
        return;
      }
      switch (message.type) {
        case 'challenge': {
          const signature = sign(null, authPayload(this.device.name, message.nonce, this.device.caPin), this.key).toString('base64');
          this.send({ type: 'auth', device: this.device.name, signature, agentVersion: VERSION, target: this.device.target });
          break;
        }
        case 'ready':
          release();
          authenticated = true;
          this.attempt = 0;
          this.connects++;
          this.state = 'online';
          this.lastError = null;
          this.logger.info({ device: this.device.name, hub: this.device.hubUrl }, 'device online');
          break;
        case 'stream.open':
          if (!authenticated) {
            closeWithError(ws, 'PROTOCOL_ERROR', 'stream request before authentication');
            return;
          }
          this.openStream(message);
          break;
      }
    });
    ws.on('unexpected-response', (_req, res) => {
      this.lastError = `hub refused the control connection (HTTP ${res.statusCode})`;
      res.resume();
      ws.terminate();
    });
    ws.on('error', (error) => {
      this.lastError = error.message;
    });
    ws.on('close', (code, reasonBuffer) => {
      release();
      clearInterval(this.pingTimer);
      const reason = reasonBuffer.toString();
      const parsed = parseCloseReason(reason);
      if (reason) this.lastError = reason;
      const wasOnline = this.state === 'online';
      if (this.stopped) return;
      this.state = 'offline';
      // A device the hub does not know, or whose key it rejects, will not fix itself in
      // seconds: retry slowly so it neither floods the hub nor trips its site's rate limit.
      // DEVICE_REPLACED means another agent runs with this device's key: back off too, or the
      // two would take the link from each other forever.
      const permanent = parsed.code === 'UNKNOWN_DEVICE' || parsed.code === 'DEVICE_KEY_INVALID' || parsed.code === 'DEVICE_REMOVED' || parsed.code === 'DEVICE_REPLACED';
      const delay = permanent ? Math.max(this.nextDelay(), PERMANENT_FAILURE_RETRY_MS) : this.nextDelay();
      if (permanent) {
        this.logger.error(
          { device: this.device.name, errorCode: parsed.code, retryInMs: delay },
          parsed.code === 'DEVICE_REPLACED'
            ? 'another agent is connected with this device key; stop one of them'
            : 'the hub refuses this device; re-enroll it (drawbridge devices enroll-token NAME, then drawbridge agent enroll)',
        );
      }
      this.logger[wasOnline ? 'warn' : 'info'](
        { device: this.device.name, code, reason: parsed.message || undefined, errorCode: parsed.code, retryInMs: delay, lastError: this.lastError },
        wasOnline ? 'hub link closed; reconnecting' : 'hub link failed; retrying',
      );
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    });
  }

  /** Capped exponential backoff with full jitter: never a tight loop, never a thundering herd. */
  private nextDelay(): number {
    const step = Math.min(this.limits.reconnectMaxDelay, this.limits.reconnectMinDelay * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.max(100, Math.floor(Math.random() * step));
  }

  private send(message: AgentMessage): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private reject(streamId: string, code: ErrorCode, message: string): void {
    this.logger.info({ device: this.device.name, stream: streamId, code, message }, 'stream refused');
    this.send({ type: 'stream.reject', streamId, code, message });
  }

  private openStream(request: Extract<HubMessage, { type: 'stream.open' }>): void {
    const { streamId } = request;
    if (this.streams.size >= this.device.maxStreams) {
      this.reject(streamId, 'TOO_MANY_STREAMS', `device "${this.device.name}" is at its limit of ${this.device.maxStreams} concurrent streams`);
      return;
    }
    let rendezvous: URL;
    try {
      rendezvous = new URL(request.rendezvousUrl);
    } catch {
      this.reject(streamId, 'RENDEZVOUS_INVALID', 'the rendezvous URL is malformed');
      return;
    }
    // The agent dials only its own hub, whatever the request says.
    if (rendezvous.host !== this.hubOrigin || rendezvous.protocol !== 'wss:') {
      this.logger.warn({ device: this.device.name, rendezvous: rendezvous.host }, 'refused a rendezvous outside the configured hub');
      this.reject(streamId, 'RENDEZVOUS_INVALID', 'the rendezvous URL is not on the configured hub');
      return;
    }
    const socket = connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true, noDelay: true });
    this.streams.add(socket);
    socket.once('close', () => this.streams.delete(socket));
    socket.setTimeout(this.limits.connectTimeout);
    let connected = false;
    socket.once('timeout', () => {
      if (!connected) {
        this.reject(streamId, 'TIMEOUT', `connecting to ${this.device.target} timed out at the edge`);
        socket.destroy();
      }
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (connected) return;
      const refused = error.code === 'ECONNREFUSED';
      this.reject(
        streamId,
        refused ? 'TARGET_REFUSED' : 'TARGET_UNREACHABLE',
        refused
          ? `the target ${this.device.target} refused the connection at the edge`
          : `the target ${this.device.target} is unreachable from the edge (${error.code ?? error.message})`,
      );
    });
    socket.once('connect', () => {
      connected = true;
      socket.setTimeout(0);
      socket.on('error', () => undefined);
      socket.pause();
      const ws = new WebSocket(rendezvous, {
        headers: { authorization: `Bearer ${request.token}` },
        perMessageDeflate: false,
        maxPayload: DATA_MAX_PAYLOAD_BYTES,
        skipUTF8Validation: true,
        generateMask: zeroMask,
        handshakeTimeout: 10_000,
        // Resuming the TLS session skips the hub's certificate signature and our chain
        // check on every stream after the first (bench/: setup time and streams per second).
        agent: (this.streamAgent ??= new Agent({ keepAlive: false, maxCachedSessions: 16, ...tlsOptions(this.trust) })),
        ...tlsOptions(this.trust),
      });
      ws.once('open', () => {
        socket.resume();
        void bridge({ ws, input: socket, output: socket, destroyLocal: () => socket.destroy() });
      });
      let opened = false;
      ws.once('open', () => {
        opened = true;
      });
      // If our side of the rendezvous fails, say so on the control link: the client then
      // hears at once instead of waiting out the rendezvous timeout.
      let reported = false;
      ws.once('unexpected-response', (_req, res) => {
        res.resume();
        reported = true;
        this.reject(streamId, 'RENDEZVOUS_INVALID', `the hub refused the device side of the stream (HTTP ${res.statusCode})`);
        socket.destroy();
        ws.terminate();
      });
      ws.on('error', (error) => {
        if (!opened && !reported) {
          reported = true;
          this.reject(streamId, 'TARGET_UNREACHABLE', `the device side could not reach the rendezvous: ${error.message}`);
        }
        socket.destroy();
      });
    });
  }
}
