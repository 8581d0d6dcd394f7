/** Two Links joined by a real TCP connection on 127.0.0.1: a hub end and a client end. */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import type { Party } from '../../src/protocol/control.js';
import { Link } from '../../src/transport/link.js';
import { systemClock, type Clock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';

export interface LinkPair {
  hub: Link;
  peer: Link;
  sockets: Socket[];
}

export async function linkPair(peer: Exclude<Party, 'hub'>, clock: Clock = systemClock): Promise<LinkPair> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const peerSocket = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1' });
  const hubSocket = await accepted;
  server.close();
  const common = { clock, logger: silentLogger(), pingIntervalMs: 600_000 };
  return {
    hub: new Link({ ...common, socket: hubSocket, side: 'server', self: 'hub', peer }),
    peer: new Link({ ...common, socket: peerSocket, side: 'client', self: peer, peer: 'hub' }),
    sockets: [hubSocket, peerSocket],
  };
}

export async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
