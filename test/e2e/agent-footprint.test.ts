/**
 * The agent opens no listening port: every TCP socket it holds is an outbound connection.
 * Checked from the kernel's own tables (/proc/net/tcp{,6} and the process's descriptors),
 * while the agent hosts devices and carries a stream.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { addDeviceWithAgent, cleanup, exchange, startConnect, startEchoServer, startHubProcess, type HubProcess } from '../helpers.js';

const TCP_LISTEN = '0A';

/** socket inode -> TCP state, for every IPv4 and IPv6 TCP socket on the machine */
function tcpStates(): Map<string, string> {
  const states = new Map<string, string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length > 9) states.set(fields[9] as string, fields[3] as string);
    }
  }
  return states;
}

/** socket inode -> remote port, for every TCP socket on the machine */
function remotePorts(): Map<string, number> {
  const ports = new Map<string, number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const remote = fields[2]?.split(':')[1];
      if (fields.length > 9 && remote) ports.set(fields[9] as string, parseInt(remote, 16));
    }
  }
  return ports;
}

function socketInodes(pid: number): string[] {
  const inodes: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.push(m[1] as string);
    } catch {
      // the descriptor closed while we looked
    }
  }
  return inodes;
}

describe('agent network footprint', () => {
  let hub: HubProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;

  before(async () => {
    hub = await startHubProcess();
    echo = await startEchoServer();
  });

  after(async () => {
    await cleanup();
    await echo?.close();
  });

  it('holds one TCP connection to the hub for all its devices, plus targets, none listening', async () => {
    const { configPath } = await addDeviceWithAgent(hub, 'quiet-b', `127.0.0.1:${echo.port}`, { start: false });
    await addDeviceWithAgent(hub, 'quiet-c', `127.0.0.1:${echo.port}`, { configPath, start: false });
    const { agent } = await addDeviceWithAgent(hub, 'quiet-a', `127.0.0.1:${echo.port}`, { configPath });
    assert.ok(agent?.child.pid);
    const tunnel = await startConnect(hub.env, 'quiet-a');
    // Look while a stream is open too: a stream must not open a port either.
    const reply = exchange(tunnel.port, Buffer.alloc(8 * 1024 * 1024, 7));
    const states = tcpStates();
    // The detector itself must see a listener where there is one: the hub's.
    assert.ok(socketInodes(hub.child.pid as number).some((inode) => states.get(inode) === TCP_LISTEN), 'the hub listens');
    const tcp = socketInodes(agent.child.pid).filter((inode) => states.has(inode));
    assert.ok(tcp.length >= 1, 'the agent holds at least its control connection');
    const listening = tcp.filter((inode) => states.get(inode) === TCP_LISTEN);
    assert.deepEqual(listening, [], 'the agent must not listen on any TCP port');
    const toHub = tcp.filter((inode) => remotePorts().get(inode) === hub.port);
    assert.equal(toHub.length, 1, 'three devices, one connection to the hub');
    assert.equal((await reply).length, 8 * 1024 * 1024);
  });
});
