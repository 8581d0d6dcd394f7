/**
 * Scale: how one agent holds many virtual devices, and what idle devices cost the hub.
 *  1. A fresh hub; RSS after warm-up.
 *  2. Edge A with `agentDevices` devices and edge B with the rest of `devices`, enrolled
 *     through the REST API (see enroll-many.ts).
 *  3. The hub restarts over the same data dir and port, so the garbage of 2 x `devices`
 *     API requests does not blur what follows; RSS after the same warm-up ("registered").
 *  4. Agent A runs alone: once its devices are online, its TCP connections (from /proc)
 *     and its RSS.
 *  5. Agent B joins: once all `devices` are online and the hub has settled, hub RSS again.
 * Hub memory per idle device = (all online - warm) / devices. RSS includes garbage not yet
 * collected, so the figures are upper bounds.
 */
import { performance } from 'node:perf_hooks';
import { startAgentProcess, startHubProcess, type HubProcess } from './drawbridge.js';
import { enrollEdge } from './enroll-many.js';
import { rssKiB, stopProcess, tcpConnections, waitFor, type Started } from './processes.js';

export interface ScaleResult {
  devices: number;
  agentDevices: number;
  /** agent A, hosting agentDevices devices */
  agent: { tcpToHub: number; tcpEstablished: number; rssKiB: number; rssAtStartKiB: number; onlineSeconds: number };
  /** hub RSS in KiB: after warm-up, with every device registered, with every device online */
  hubRssKiB: { warm: number; registered: number; online: number };
  /** (online - warm) / devices: the headline figure */
  hubKiBPerDevice: number;
  /** (online - registered) / devices: what being online costs, beyond the database rows */
  hubKiBPerOnlineDevice: number;
  /** agent B, hosting the other devices (when there are any) */
  secondAgentRssKiB: number | null;
  /** (agent B RSS - agent A RSS) / (B's devices - A's devices): what one more device costs an agent */
  agentKiBPerExtraDevice: number | null;
  enrollSeconds: number;
  allOnlineSeconds: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitOnline(hub: HubProcess, count: number, log: (line: string) => void): Promise<void> {
  let reported = 0;
  await waitFor(
    async () => {
      const online = (await hub.health()).devicesOnline;
      if (online - reported >= 2000) {
        reported = online;
        log(`  ${online}/${count} devices online`);
      }
      return online >= count;
    },
    60_000 + count * 20,
    `${count} devices online`,
    250,
  );
}

/**
 * The hub's RSS once it has served a few requests (code paths loaded, TLS up) and settled.
 * Nothing that lists devices: with thousands registered, that garbage would count as theirs.
 */
async function warmRss(hub: HubProcess): Promise<number> {
  for (let i = 0; i < 20; i++) await hub.health();
  await hub.client.request('GET', '/v1/whoami');
  await sleep(2000);
  return rssKiB(hub.process.pid);
}

export async function measureScale(devices: number, agentDevices: number, logDir: string, log: (line: string) => void): Promise<ScaleResult> {
  const onAgentA = Math.min(agentDevices, devices);
  let hub = await startHubProcess('hub-scale', logDir);
  const agents: Started[] = [];
  try {
    const warm = await warmRss(hub);

    const enrollStart = performance.now();
    const target = '127.0.0.1:9'; // never dialled: the devices stay idle
    const configA = await enrollEdge(hub, { edgeName: 'scale-a', devicePrefix: 'a', count: onAgentA, target, log });
    const configB = devices > onAgentA ? await enrollEdge(hub, { edgeName: 'scale-b', devicePrefix: 'b', count: devices - onAgentA, target, log }) : undefined;
    const enrollSeconds = (performance.now() - enrollStart) / 1000;
    await hub.stop();
    hub = await startHubProcess('hub-scale-registered', logDir, {}, { dataDir: hub.dataDir, port: hub.port });
    const registered = await warmRss(hub);

    const onlineStart = performance.now();
    const agentA = await startAgentProcess('agent-scale-a', configA, logDir);
    agents.push(agentA);
    await waitOnline(hub, onAgentA, log);
    const agentOnlineSeconds = (performance.now() - onlineStart) / 1000;
    await sleep(3000);
    const agentRssAtStart = rssKiB(agentA.pid);
    // An idle agent's RSS: V8's memory reducer gives back, after some seconds of quiet, the
    // young generation that start-up grew (about 10-15 MiB here).
    await sleep(Number(process.env['BENCH_SETTLE_MS'] ?? 30_000));
    const connections = tcpConnections(agentA.pid, hub.port);
    const agentRss = rssKiB(agentA.pid);
    log(`  agent A RSS ${(agentRssAtStart / 1024).toFixed(1)} MiB 3 s after start, ${(agentRss / 1024).toFixed(1)} MiB idle`);
    log(`  agent A: ${onAgentA} devices online in ${agentOnlineSeconds.toFixed(1)} s, ${connections.toPort} TCP connection(s) to the hub, RSS ${(agentRss / 1024).toFixed(1)} MiB`);

    let secondAgentRssKiB: number | null = null;
    if (configB) {
      agents.push(await startAgentProcess('agent-scale-b', configB, logDir));
      await waitOnline(hub, devices, log);
    }
    const allOnlineSeconds = (performance.now() - onlineStart) / 1000;
    await sleep(5000);
    const online = rssKiB(hub.process.pid);
    if (agents[1]) secondAgentRssKiB = rssKiB(agents[1].pid);
    const stillOnline = (await hub.health()).devicesOnline;
    if (stillOnline !== devices) throw new Error(`only ${stillOnline}/${devices} devices stayed online`);
    return {
      devices,
      agentDevices: onAgentA,
      agent: { tcpToHub: connections.toPort, tcpEstablished: connections.established, rssKiB: agentRss, rssAtStartKiB: agentRssAtStart, onlineSeconds: agentOnlineSeconds },
      hubRssKiB: { warm, registered, online },
      hubKiBPerDevice: (online - warm) / devices,
      hubKiBPerOnlineDevice: (online - registered) / devices,
      secondAgentRssKiB,
      agentKiBPerExtraDevice: secondAgentRssKiB !== null && devices - onAgentA !== onAgentA ? (secondAgentRssKiB - agentRss) / (devices - 2 * onAgentA) : null,
      enrollSeconds,
      allOnlineSeconds,
    };
  } finally {
    for (const agent of agents) await stopProcess(agent);
    await hub.stop();
  }
}
