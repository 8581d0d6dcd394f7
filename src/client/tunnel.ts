/**
 * Client tunnels: a local TCP listener where every accepted connection becomes its own
 * stream to the device (openTunnel), and a single stream on stdin/stdout (runProxy) for
 * ssh's ProxyCommand.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { DrawbridgeError } from '../errors.js';
import { bridge, type BridgeResult } from '../stream/bridge.js';
import type { HubClient } from './hub-client.js';
import { errorFromClose } from './hub-client.js';

export interface TunnelEvent {
  type: 'open' | 'close' | 'error';
  streamId?: string;
  remote?: string;
  error?: DrawbridgeError;
  result?: BridgeResult;
}

export interface TunnelOptions {
  client: HubClient;
  device: string;
  host?: string;
  port?: number;
  onEvent?: (event: TunnelEvent) => void;
}

export interface TunnelHandle {
  host: string;
  port: number;
  /** Connections carried so far (open and closed) */
  readonly connections: number;
  close(): Promise<void>;
}

export async function openTunnel(options: TunnelOptions): Promise<TunnelHandle> {
  const { client, device } = options;
  const emit = options.onEvent ?? (() => undefined);
  const sockets = new Set<Socket>();
  let connections = 0;

  const server: Server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    // Hold local bytes until the stream exists; they wait in the kernel, not in memory.
    socket.pause();
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    client.openStream(device).then(
      async ({ ws, ticket }) => {
        emit({ type: 'open', streamId: ticket.streamId, remote });
        socket.resume();
        const result = await bridge({ ws, input: socket, output: socket, destroyLocal: () => socket.destroy() });
        const error = errorFromClose(result.closeCode, result.errorCode ? `${result.errorCode}: ${result.message}` : result.message);
        emit({ type: error ? 'error' : 'close', streamId: ticket.streamId, remote, result, ...(error ? { error } : {}) });
      },
      (error: unknown) => {
        socket.destroy();
        emit({ type: 'error', remote, error: error instanceof DrawbridgeError ? error : new DrawbridgeError('INTERNAL', String(error)) });
      },
    );
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    host: address.address,
    port: address.port,
    get connections() {
      return connections;
    },
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

/** One stream on stdin/stdout. Resolves with the error that ended it, if any. */
export async function runProxy(client: HubClient, device: string, input: Readable, output: Writable): Promise<DrawbridgeError | undefined> {
  const { ws } = await client.openStream(device);
  const result = await bridge({ ws, input, output, destroyLocal: () => input.pause() });
  return errorFromClose(result.closeCode, result.errorCode ? `${result.errorCode}: ${result.message}` : result.message);
}
