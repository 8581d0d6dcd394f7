/** The audit aggregator: one record per (action, key) per window with a count, bounded keys, nothing lost at close. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuditAggregator } from '../../src/hub/audit-aggregator.js';
import type { AuditEntry } from '../../src/store/store.js';
import { ManualClock } from '../../src/util/clock.js';

function aggregator(options: { windowMs?: number; maxKeys?: number } = {}): { clock: ManualClock; written: AuditEntry[]; agg: AuditAggregator } {
  const clock = new ManualClock();
  const written: AuditEntry[] = [];
  const agg = new AuditAggregator({
    windowMs: options.windowMs ?? 60_000,
    maxKeys: options.maxKeys ?? 100,
    clock,
    write: async (entry) => {
      written.push(entry);
    },
  });
  return { clock, written, agg };
}

const failure = (source: string): { actor: string; details: Record<string, unknown> } => ({ actor: `anonymous@${source}`, details: { source, kind: 'api' } });

describe('AuditAggregator', () => {
  it('writes one record per key when its window ends, with the count and the tallies', async () => {
    const { clock, written, agg } = aggregator();
    assert.equal(agg.record('auth.failure', 'api 192.0.2.1', failure('192.0.2.1'), 'invalid token'), true, 'the first event of a window');
    for (let i = 0; i < 999; i++) assert.equal(agg.record('auth.failure', 'api 192.0.2.1', failure('192.0.2.1'), i % 2 ? 'invalid token' : 'no bearer token'), false);
    await clock.advance(59_000);
    assert.equal(written.length, 0, 'nothing before the window ends');
    await clock.advance(1_000);
    assert.equal(written.length, 1);
    const [entry] = written;
    assert.equal(entry?.action, 'auth.failure');
    assert.equal(entry?.actor, 'anonymous@192.0.2.1');
    assert.equal(entry?.details?.['count'], 1000);
    assert.deepEqual(entry?.details?.['counts'], { 'invalid token': 500, 'no bearer token': 500 });
    assert.equal(entry?.details?.['windowSeconds'], 60);
    // The next event opens a new window.
    assert.equal(agg.record('auth.failure', 'api 192.0.2.1', failure('192.0.2.1')), true);
    await agg.close();
  });

  it('keeps (action, key) pairs apart', async () => {
    const { written, agg } = aggregator();
    agg.record('auth.failure', 'api 192.0.2.1', failure('192.0.2.1'));
    agg.record('auth.failure', 'enrollment 192.0.2.1', failure('192.0.2.1'));
    agg.record('stream.refused', 'api 192.0.2.1', failure('192.0.2.1'));
    await agg.close();
    assert.equal(written.length, 3);
  });

  it('bounds the records of a flood from rotating keys: maxKeys, then one overflow record per action', async () => {
    const { clock, written, agg } = aggregator({ maxKeys: 50 });
    for (let i = 0; i < 10_000; i++) agg.record('auth.failure', `api 10.${i >> 8}.${i & 255}.1`, failure(`10.${i >> 8}.${i & 255}.1`));
    await clock.advance(60_000);
    assert.equal(written.length, 51);
    const overflow = written.find((e) => e.details?.['otherKeys'] === true);
    assert.equal(overflow?.actor, 'anonymous');
    assert.equal(overflow?.details?.['count'], 10_000 - 50);
    assert.equal(written.reduce((sum, e) => sum + Number(e.details?.['count']), 0), 10_000, 'every event is counted');
    await agg.close();
  });

  it('keeps at most 8 tallies per record', async () => {
    const { written, agg } = aggregator();
    for (let i = 0; i < 20; i++) agg.record('auth.failure', 'k', failure('192.0.2.9'), `reason ${i}`);
    await agg.close();
    assert.equal(Object.keys(written[0]?.details?.['counts'] as object).length, 8);
    assert.equal(written[0]?.details?.['count'], 20);
  });

  it('writes what it counted at close, and stops its timer', async () => {
    const { clock, written, agg } = aggregator();
    agg.record('auth.failure', 'k', failure('192.0.2.3'));
    const timers = clock.pending;
    await agg.close();
    assert.equal(written.length, 1);
    assert.equal(clock.pending, timers - 1);
  });

  it('reports a failed write and goes on with the others', async () => {
    const clock = new ManualClock();
    const errors: unknown[] = [];
    const written: AuditEntry[] = [];
    const agg = new AuditAggregator({
      windowMs: 1000,
      maxKeys: 10,
      clock,
      write: async (entry) => {
        if (entry.actor === 'anonymous@bad') throw new Error('disk full');
        written.push(entry);
      },
      onError: (error) => errors.push(error),
    });
    agg.record('auth.failure', 'a', failure('bad'));
    agg.record('auth.failure', 'b', failure('good'));
    await clock.advance(1000);
    assert.equal(errors.length, 1);
    assert.equal(written.length, 1);
    await agg.close();
  });
});
