/**
 * The young-generation pacer: a minor collection per so many bytes read, through V8's real
 * collector (seen by a PerformanceObserver), and none in between.
 */
import assert from 'node:assert/strict';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { YoungGcPacer } from '../../src/transport/young-gc.js';

describe('YoungGcPacer', () => {
  it('collects once per `everyBytes` read, whatever the chunk sizes, and asks for a minor collection', () => {
    const calls: unknown[] = [];
    const pacer = new YoungGcPacer(4096, (options) => void calls.push(options));
    pacer.read(1000);
    pacer.read(3000);
    assert.equal(calls.length, 0, '4,000 bytes: not yet');
    pacer.read(100);
    assert.deepEqual(calls, [{ type: 'minor' }]);
    pacer.read(4095);
    assert.equal(calls.length, 1, 'the count starts again after a collection');
    pacer.read(1);
    pacer.read(10_000);
    assert.equal(calls.length, 3);
    assert.equal(pacer.collections, 3);
  });

  it("reaches V8's own collector: a minor GC is observed", async () => {
    const seen: number[] = [];
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) seen.push((entry as unknown as { detail: { kind: number } }).detail.kind);
    });
    observer.observe({ entryTypes: ['gc'] });
    const pacer = new YoungGcPacer(1024);
    pacer.read(2048);
    assert.equal(pacer.collections, 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    observer.disconnect();
    assert.ok(seen.includes(constants.NODE_PERFORMANCE_GC_MINOR), `GC kinds seen: ${seen.join(', ') || 'none'}`);
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'no global gc function appears');
  });
});
