/**
 * The benchmark's target: one TCP port, run as its own process so that the load
 * generator and the target never share an event loop. Each connection picks its mode by
 * its first byte:
 *  - "S" + 8-byte big-endian length: sink. Counts and discards that many bytes, then
 *    answers one byte "k" (so the sender knows every byte arrived).
 *  - anything else: echo, byte for byte (the first byte included).
 * Prints {"port":N} on stdout once listening.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';

const SINK = 0x53; // "S"

function serve(socket: Socket): void {
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  socket.on('end', () => socket.end());
  let mode: 'first' | 'header' | 'sink' | 'echo' = 'first';
  let header = Buffer.alloc(0);
  let remaining = 0;

  const echo = (chunk: Buffer): void => {
    if (!socket.write(chunk)) {
      socket.pause();
      socket.once('drain', () => socket.resume());
    }
  };

  socket.on('data', (data: Buffer) => {
    let chunk = data;
    if (mode === 'echo') return echo(chunk);
    if (mode === 'first') {
      if (chunk[0] !== SINK) {
        mode = 'echo';
        return echo(chunk);
      }
      mode = 'header';
      chunk = chunk.subarray(1);
    }
    if (mode === 'header') {
      header = Buffer.concat([header, chunk]);
      if (header.length < 8) return;
      remaining = Number(header.readBigUInt64BE(0));
      chunk = header.subarray(8);
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
