/**
 * The benchmark's own arithmetic and probes: ratios come from measurements of the same
 * round, targets are judged on the medians, and the TCP connection count read from /proc
 * (the "one connection per agent" figure) counts exactly the sockets a process holds.
 */
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import type { Percentiles } from '../../bench/measure.js';
import { tcpConnections } from '../../bench/processes.js';
import { evaluateTargets, median, ratios, summarize, type Round } from '../../bench/report.js';

const p50 = (value: number): Percentiles => ({ count: 1, p50: value, p90: value, p99: value, min: value, max: value, mean: value });
const throughput = (megabytesPerSecond: number) => ({ bytes: 1, seconds: 1, megabytesPerSecond, cpuSecondsPerGiB: {}, cpuSecondsPerGiBTotal: 0 });

/** Three rounds in which drawbridge does 80, 90 and 60 MB/s against ssh's 100, 100 and 50. */
const rounds: Round[] = [
  { round: 1, order: ['ssh', 'drawbridge'], paths: { ssh: { throughput: throughput(100), latencyMicros: p50(100) }, drawbridge: { throughput: throughput(80), latencyMicros: p50(150) } } },
  { round: 2, order: ['drawbridge', 'ssh'], paths: { ssh: { throughput: throughput(100), latencyMicros: p50(100) }, drawbridge: { throughput: throughput(90), latencyMicros: p50(250) } } },
  { round: 3, order: ['ssh', 'drawbridge'], paths: { ssh: { throughput: throughput(50), latencyMicros: p50(100) }, drawbridge: { throughput: throughput(60), latencyMicros: p50(190) } } },
];

describe('bench report', () => {
  it('takes medians over the rounds, the ratio of the medians and the range of same-round ratios', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([]), undefined);
    const summary = summarize(rounds);
    assert.equal(summary.drawbridge?.metrics['throughputMBps']?.median, 80);
    assert.equal(summary.ssh?.metrics['throughputMBps']?.median, 100);
    const versusSsh = ratios(rounds, summary, 'ssh');
    assert.equal(versusSsh['throughputMBps']?.ofMedians, 0.8);
    assert.equal(versusSsh['throughputMBps']?.roundMin, 0.8);
    assert.equal(versusSsh['throughputMBps']?.roundMax, 1.2);
    assert.equal(versusSsh['rttP50Micros']?.ofMedians, 1.9);
    assert.deepEqual(ratios(rounds, summary, 'bastion'), {}, 'no ratio to a path that did not run');
  });

  it('judges the targets on the medians and leaves unmeasured ones open', () => {
    const summary = summarize(rounds);
    const targets = evaluateTargets({ summary, versusSsh: ratios(rounds, summary, 'ssh'), versusBastion: {}, frozenReader: undefined, scale: undefined });
    const byName = new Map(targets.map((t) => [t.metric, t]));
    assert.equal(byName.get('throughput vs ssh -L')?.met, true);
    assert.equal(byName.get('RTT p50 vs ssh -L')?.met, true);
    assert.equal(byName.get('throughput vs bastion chain')?.met, null);
    assert.equal(byName.get('hub per idle device')?.met, null);
  });
});

describe('bench TCP connection count', () => {
  it('counts the established connections this process holds, and those to one port', async () => {
    const accepted: Socket[] = [];
    let bothAccepted: () => void = () => undefined;
    const accepting = new Promise<void>((resolve) => (bothAccepted = resolve));
    const server = createServer((s) => {
      if (accepted.push(s) === 2) bothAccepted();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const before = tcpConnections(process.pid, port);
    assert.equal(before.toPort, 0);
    const clients = await Promise.all(
      [1, 2].map(() => new Promise<Socket>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket));
      })),
    );
    await accepting;
    try {
      const during = tcpConnections(process.pid, port);
      assert.equal(during.toPort, 2, 'two client sockets lead to the port');
      // Both ends live in this process: two clients and the two sockets the server accepted.
      assert.equal(during.established - before.established, 4);
    } finally {
      for (const c of clients) c.destroy();
      for (const s of accepted) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
