/**
 * The least a Node process can do in one of Drawbridge's three places, for bench/ceiling.ts:
 * accept a connection, dial the next hop for it, and pipe the bytes both ways. No framing, no
 * multiplexing, no credit, no authorisation, no audit: one TLS connection per stream where
 * Drawbridge has one link for all of them. A chain of three of these shows what a Node relay
 * with TLS on both legs reaches on this machine before it does any work of its own.
 *
 * usage: node dist/bench/pipe-relay.js --in tcp|tls --out tcp|tls --to PORT --pki DIR
 * DIR holds server.pem, server.key and ca.pem (made by ensureHubPki). Prints {"port":N}.
 */
import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, connect as connectTcp, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as connectTls, createServer as createTlsServer } from 'node:tls';
import { parseArgs } from 'node:util';
import { serverContextOptions } from '../src/hub/certificates.js';

function fail(message: string): never {
  process.stderr.write(`pipe-relay: ${message}\n`);
  process.exit(2);
}
function options(): { in?: string; out?: string; to?: string; pki?: string } {
  try {
    return parseArgs({ options: { in: { type: 'string' }, out: { type: 'string' }, to: { type: 'string' }, pki: { type: 'string' } } }).values;
  } catch (error) {
    fail((error as Error).message);
  }
}
const values = options();
const side = (value: string | undefined, flag: string): 'tcp' | 'tls' => {
  if (value !== 'tcp' && value !== 'tls') fail(`--${flag} must be tcp or tls`);
  return value;
};
const inbound = side(values.in, 'in');
const outbound = side(values.out, 'out');
const to = Number(values.to);
if (!Number.isInteger(to) || to < 1 || to > 65535) fail('--to must be a port (1-65535)');
const pki = values.pki ?? '';
const needsPki = inbound === 'tls' || outbound === 'tls';
if (needsPki && !pki) fail('--pki DIR is needed for a TLS side');
const read = (name: string): string => readFileSync(join(pki, name), 'utf8');
const serverTls = inbound === 'tls' ? serverContextOptions({ cert: read('server.pem'), key: read('server.key') }) : undefined;
const ca = outbound === 'tls' ? read('ca.pem') : undefined;

function dial(): Socket {
  if (outbound === 'tcp') return connectTcp({ host: '127.0.0.1', port: to, noDelay: true, allowHalfOpen: true });
  const socket = connectTls({ host: '127.0.0.1', port: to, ca, servername: 'localhost' });
  socket.setNoDelay(true);
  return socket;
}

/** Both directions piped; half-close passed on; either side's error ends both. */
function carry(accepted: Socket): void {
  accepted.setNoDelay(true);
  const next = dial();
  const end = (): void => {
    accepted.destroy();
    next.destroy();
  };
  accepted.on('error', end);
  next.on('error', end);
  accepted.pipe(next);
  next.pipe(accepted);
}

const server = inbound === 'tls' ? createTlsServer({ ...serverTls, allowHalfOpen: true }, carry) : createTcpServer({ allowHalfOpen: true }, carry);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
