/**
 * Client tunnels: a local TCP listener where every accepted connection becomes its own
 * stream to the device (openTunnel), and a single stream on stdin/stdout (runProxy) for
 * ssh's ProxyCommand. All streams of a tunnel share the client's one link to the hub.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { DrawbridgeError } from '../errors.js';
import type { EndpointResult } from '../stream/endpoint.js';
import type { HubClient } from './hub-client.js';

export interface TunnelEvent {
  type: 'open' | 'close' | 'error';
  /** The hub's session id, once open */
  session?: string;
  remote?: string;
  error?: DrawbridgeError;
  result?: EndpointResult;
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

/** The error a finished stream reports, or undefined when it ended normally. */
export function streamError(result: EndpointResult): DrawbridgeError | undefined {
  if (result.clean || !result.errorCode) return undefined;
  return new DrawbridgeError(result.errorCode, result.message);
}

export async function openTunnel(options: TunnelOptions): Promise<TunnelHandle> {
  const { client, device } = options;
  const emit = options.onEvent ?? (() => undefined);
  const sockets = new Set<Socket>();
  const link = client.link();
  let connections = 0;

  const server: Server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const stream = link.open(device, { input: socket, output: socket, destroy: () => socket.resetAndDestroy(), role: 'client' });
    let session: string | undefined;
    stream.opened.then(
      (info) => {
        session = info.session;
        emit({ type: 'open', session, remote });
      },
      () => undefined,
    );
    void stream.result.then((result) => {
      const error = streamError(result);
      emit({ type: error ? 'error' : 'close', remote, result, ...(session ? { session } : {}), ...(error ? { error } : {}) });
    });
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

/**
 * One stream on stdin/stdout. Resolves with the error that ended it, if any. `stopping`
 * resolves when the local program is being stopped (ssh sends its ProxyCommand SIGHUP when a
 * session ends): the stream then ends in order (EOF, and the far end's finish) rather than
 * being cut, so the audit records an ordinary end.
 */
export async function runProxy(
  client: HubClient,
  device: string,
  input: Readable,
  output: Writable,
  stopping?: Promise<void>,
): Promise<DrawbridgeError | undefined> {
  const stream = client.link().open(device, { input, output, destroy: () => input.pause(), role: 'client' });
  void stopping?.then(() => {
    stream.endInput();
    // The far end gets a moment to finish; after that the stream is cut.
    setTimeout(() => stream.abort(new DrawbridgeError('CONNECTION_RESET', 'the client program was stopped')), 2000).unref();
  });
  await stream.opened;
  return streamError(await stream.result);
}
