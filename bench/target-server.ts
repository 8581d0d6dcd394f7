/**
 * The benchmark's target: one TCP port, run as its own process so that the load
 * generator and the target never share an event loop. Each connection picks its mode by
 * its first byte:
 *  - "S" + 8-byte big-endian length: sink. Counts and discards that many bytes, then
 *    answers one byte "k" (so the sender knows every byte arrived).
 *  - "G" + 8-byte big-endian length: source. Sends that many bytes as fast as the
 *    connection takes them (honouring backpressure), then ends its side.
 *  - anything else: echo, byte for byte (the first byte included).
 * Prints {"port":N} on stdout once listening.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';

const SINK = 0x53; // "S"
const SOURCE = 0x47; // "G"
/** One random block sent over and over by the source mode. */
const BLOCK = randomBytes(256 * 1024);

function source(socket: Socket, total: number): void {
  let remaining = total;
  const pump = (): void => {
    while (remaining > 0 && !socket.destroyed) {
      const n = Math.min(BLOCK.length, remaining);
      remaining -= n;
      if (!socket.write(n === BLOCK.length ? BLOCK : BLOCK.subarray(0, n))) {
        socket.once('drain', pump);
        return;
      }
    }
    if (remaining === 0) socket.end();
  };
  pump();
}

function serve(socket: Socket): void {
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  socket.on('end', () => socket.end());
  let mode: 'first' | 'header' | 'sink' | 'source' | 'echo' = 'first';
  let header = Buffer.alloc(0);
  let remaining = 0;
  let sourcing = false;

  const echo = (chunk: Buffer): void => {
    if (!socket.write(chunk)) {
      socket.pause();
      socket.once('drain', () => socket.resume());
    }
  };

  socket.on('data', (data: Buffer) => {
    let chunk = data;
    if (mode === 'echo') return echo(chunk);
    if (mode === 'source') return; // whatever follows the request is ignored
    if (mode === 'first') {
      if (chunk[0] !== SINK && chunk[0] !== SOURCE) {
        mode = 'echo';
        return echo(chunk);
      }
      sourcing = chunk[0] === SOURCE;
      mode = 'header';
      chunk = chunk.subarray(1);
    }
    if (mode === 'header') {
      header = Buffer.concat([header, chunk]);
      if (header.length < 8) return;
      remaining = Number(header.readBigUInt64BE(0));
      chunk = header.subarray(8);
      if (sourcing) {
        mode = 'source';
        return source(socket, remaining);
      }
      mode = 'sink';
      if (remaining === 0) socket.write('k');
    }
    if (remaining > 0) {
      remaining -= chunk.length;
      if (remaining <= 0) socket.write('k');
    }
  });
}

const server = createServer({ allowHalfOpen: true, noDelay: true }, serve);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
