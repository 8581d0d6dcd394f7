/**
 * A bare edge link for benchmarks and tests: the real link (TLS, WebSocket, the edge's own
 * key signing the hub's nonce) announcing only the `telemetry` capability, with nothing
 * else running on it, so the caller sends exactly the telemetry it means to.
 */
import type { KeyObject } from 'node:crypto';
import { signWith } from '../src/agent/identity.js';
import { tlsOptions, type HubTrust } from '../src/client/trust.js';
import { BASE_CAPABILITY } from '../src/protocol/control.js';
import { edgeAuthPayload } from '../src/protocol/identity.js';
import { EdgeAuth, Hello, TELEMETRY_CAPABILITY } from '../src/protocol/messages/index.js';
import { Link } from '../src/transport/link.js';
import { dialLink } from '../src/transport/upgrade.js';
import { systemClock } from '../src/util/clock.js';
import { silentLogger } from '../src/util/logger.js';

export async function dialTelemetryEdge(hubUrl: string, trust: HubTrust, caPin: string, edge: { id: string; key: KeyObject }, timeoutMs = 60_000): Promise<Link> {
  const dialed = await dialLink({ hubUrl, path: '/v1/link/agent', tls: tlsOptions(trust), timeoutMs });
  const link = new Link({ socket: dialed.socket, head: dialed.head, side: 'client', self: 'agent', peer: 'hub', clock: systemClock, logger: silentLogger(), pingIntervalMs: 10_000 });
  await new Promise<void>((resolve, reject) => {
    link.handle(Hello, (hello) => {
      link.peerCapabilities = new Set([BASE_CAPABILITY, ...hello.capabilities.filter((c) => c === TELEMETRY_CAPABILITY)]);
      link
        .request(
          EdgeAuth,
          {
            edge: edge.id,
            signature: signWith(edge.key, edgeAuthPayload(edge.id, hello.nonce as string, caPin)),
            agentVersion: 'simulated',
            hostname: 'simulated-edge',
            capabilities: [BASE_CAPABILITY, TELEMETRY_CAPABILITY],
          },
          timeoutMs,
        )
        .then(() => resolve(), reject);
    });
  });
  return link;
}
