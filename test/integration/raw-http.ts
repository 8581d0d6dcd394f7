/**
 * HTTP/1.1 by hand over a real TLS socket, for tests that need control a client library
 * hides: headers now and the body later, a connection that never sends a request,
 * forwarded-for headers.
 */
import { connect, type TLSSocket } from 'node:tls';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Opens a TLS connection to the hub that trusts its CA (and checks the host name), from `localAddress` if given. */
export function openTls(port: number, caPem: string, localAddress?: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca: caPem, ...(localAddress ? { localAddress } : {}) }, () => resolve(socket));
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed before the TLS handshake finished')));
  });
}

/** Resolves when the socket closes, with how long that took. */
export function closed(socket: TLSSocket): Promise<number> {
  const start = Date.now();
  return new Promise((resolve) => {
    if (socket.destroyed) resolve(0);
    socket.once('close', () => resolve(Date.now() - start));
  });
}

/** Resolves with the first response on the socket, or null if the hub closed it without one. */
export function readResponse(socket: TLSSocket): Promise<RawResponse | null> {
  return new Promise((resolve) => {
    let text = '';
    const done = (): void => {
      const head = text.indexOf('\r\n\r\n');
      if (head < 0) {
        resolve(null);
        return;
      }
      const [statusLine = '', ...lines] = text.slice(0, head).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: text.slice(head + 4) });
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const head = text.indexOf('\r\n\r\n');
      const length = head < 0 ? NaN : Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, head))?.[1]);
      if (head >= 0 && text.length - head - 4 >= length) {
        socket.removeAllListeners('close');
        done();
        socket.end();
      }
    });
    socket.on('error', () => undefined);
    socket.once('close', done);
  });
}

/** The request line and headers of a request; the body follows when the test says so. */
export function requestHead(method: string, path: string, headers: Record<string, string | number>): string {
  const lines = [`${method} ${path} HTTP/1.1`, 'host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  return lines.join('\r\n') + '\r\n\r\n';
}

/** One whole request on a fresh connection. */
export async function rawRequest(port: number, caPem: string, method: string, path: string, headers: Record<string, string | number> = {}, body = '', localAddress?: string): Promise<RawResponse | null> {
  const socket = await openTls(port, caPem, localAddress);
  const response = readResponse(socket);
  socket.write(requestHead(method, path, { ...headers, 'content-length': Buffer.byteLength(body), connection: 'close' }) + body);
  return response;
}
