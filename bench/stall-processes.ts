/**
 * The two child processes of the event-loop stall benchmark (bench/stalls.ts), each driven
 * by one-line commands on stdin and answering one JSON line on stdout:
 *
 *   node dist/bench/stall-processes.js hub DATA_DIR PORT
 *     runs a hub on DATA_DIR (127.0.0.1:PORT, the port the agent was enrolled with) and watches its own event loop with
 *     perf_hooks.monitorEventLoopDelay (1 ms resolution);
 *   node dist/bench/stall-processes.js probe AGENT_CONFIG HUB_URL TOKEN PIN DEVICE
 *     runs the device's agent, an echo target and a client tunnel, and sends a 1-byte
 *     ping-pong through hub and agent every 10 ms: an interactive session beside the load.
 *
 * Commands: `reset` (start a new measurement window) and `report` (the window's figures).
 */
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { load as parseYaml } from 'js-yaml';
import { readFileSync, writeFileSync } from 'node:fs';
import { startAgent } from '../src/agent/agent.js';
import { HubClient } from '../src/client/hub-client.js';
import { openTunnel } from '../src/client/tunnel.js';
import { startHub } from '../src/hub/hub.js';
import { silentLogger } from '../src/util/logger.js';

const reply = (value: unknown): void => void process.stdout.write(JSON.stringify(value) + '\n');

function commands(handlers: Record<string, () => unknown | Promise<unknown>>): void {
  createInterface({ input: process.stdin }).on('line', (line) => {
    const handler = handlers[line.trim()];
    if (!handler) return reply({ error: `unknown command "${line.trim()}"` });
    void Promise.resolve(handler()).then(reply, (error: unknown) => reply({ error: String(error) }));
  });
}

async function runHub(dataDir: string, port: number): Promise<void> {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const hub = await startHub({ dataDir, host: '127.0.0.1', port, logger: silentLogger() });
  commands({
    reset: () => {
      delay.reset();
      return { ok: true };
    },
    // monitorEventLoopDelay reports how late its 1 ms timer fired: a stall of the loop.
    report: () => ({ maxMs: delay.max / 1e6, p99Ms: delay.percentile(99) / 1e6, meanMs: delay.mean / 1e6, rssMiB: process.memoryUsage().rss / 2 ** 20 }),
    stop: async () => {
      await hub.close();
      setImmediate(() => process.exit(0));
      return { ok: true };
    },
  });
  reply({ url: hub.url, port: hub.port, caPin: hub.caPin });
}

async function runProbe(configPath: string, hubUrl: string, token: string, caPin: string, device: string): Promise<void> {
  const echo = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  // The device's target is this process's echo server.
  const config = parseYaml(readFileSync(configPath, 'utf8')) as { devices: { name: string; target: string }[] };
  for (const d of config.devices) if (d.name === device) d.target = `127.0.0.1:${(echo.address() as AddressInfo).port}`;
  const { dump } = await import('js-yaml');
  writeFileSync(configPath, dump(config));
  const agent = await startAgent({ configPath, logger: silentLogger() });
  await agent.waitOnline(60_000);
  const client = await HubClient.connect({ hubUrl, token, caPin });
  const tunnel = await openTunnel({ client, device });
  const socket: Socket = connect({ host: '127.0.0.1', port: tunnel.port });
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.on('error', () => undefined);
  let samples: number[] = [];
  let sentAt = 0;
  let outstanding = false;
  socket.on('data', () => {
    samples.push(performance.now() - sentAt);
    outstanding = false;
  });
  const timer = setInterval(() => {
    if (outstanding) return; // the previous ping is still on its way: its RTT grows until it lands
    outstanding = true;
    sentAt = performance.now();
    socket.write('x');
  }, 10);
  commands({
    reset: () => {
      samples = [];
      return { ok: true };
    },
    report: () => {
      // A ping still in flight counts with the time it has waited so far.
      const all = [...samples, ...(outstanding ? [performance.now() - sentAt] : [])].sort((a, b) => a - b);
      return { count: all.length, maxMs: all[all.length - 1] ?? 0, p99Ms: all[Math.floor(all.length * 0.99)] ?? 0, p50Ms: all[Math.floor(all.length / 2)] ?? 0 };
    },
    stop: async () => {
      clearInterval(timer);
      socket.destroy();
      await tunnel.close();
      client.close();
      await agent.close();
      echo.close();
      setImmediate(() => process.exit(0));
      return { ok: true };
    },
  });
  reply({ ready: true, port: tunnel.port });
}

const [role, ...args] = process.argv.slice(2);
if (role === 'hub') await runHub(args[0] as string, Number(args[1] ?? 0));
else if (role === 'probe') await runProbe(args[0] as string, args[1] as string, args[2] as string, args[3] as string, args[4] as string);
else {
  process.stderr.write('usage: stall-processes.js hub DATA_DIR PORT | probe AGENT_CONFIG HUB_URL TOKEN PIN DEVICE\n');
  process.exit(2);
}
