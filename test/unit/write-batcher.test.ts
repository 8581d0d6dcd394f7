import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WriteBatcher } from '../../src/util/write-batcher.js';

describe('WriteBatcher', () => {
  it('writes the items added in one turn in one call, in order, and settles each after its write', async () => {
    const calls: number[][] = [];
    const batcher = new WriteBatcher<number>(async (items) => {
      calls.push(items);
    });
    const settled: number[] = [];
    const all = [1, 2, 3].map((n) => batcher.add(n).then(() => settled.push(n)));
    assert.deepEqual(calls, [], 'nothing written before the turn ends');
    await Promise.all(all);
    assert.deepEqual(calls, [[1, 2, 3]]);
    assert.deepEqual(settled, [1, 2, 3]);
    await batcher.add(4);
    assert.deepEqual(calls, [[1, 2, 3], [4]]);
  });

  it('splits a large turn into batches of at most maxBatch', async () => {
    const calls: number[][] = [];
    const batcher = new WriteBatcher<number>(async (items) => {
      calls.push(items);
    }, 2);
    await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.add(n)));
    assert.deepEqual(calls, [[1, 2], [3, 4], [5]]);
  });

  it('a failed batch fails its own items only; items added while a batch is written go into the next one', async () => {
    let release: () => void = () => undefined;
    const calls: string[][] = [];
    const batcher = new WriteBatcher<string>(async (items) => {
      calls.push(items);
      if (items.includes('bad')) throw new Error('write failed');
      if (items.includes('slow')) await new Promise<void>((resolve) => (release = resolve));
    });
    const bad = batcher.add('bad');
    const alsoBad = batcher.add('x');
    await assert.rejects(bad, /write failed/);
    await assert.rejects(alsoBad, /write failed/);
    const slow = batcher.add('slow');
    while (calls.length < 2) await new Promise((r) => setImmediate(r));
    const later = batcher.add('later');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(calls, [['bad', 'x'], ['slow']], 'the next batch waits for the one being written');
    release();
    await Promise.all([slow, later]);
    assert.deepEqual(calls, [['bad', 'x'], ['slow'], ['later']]);
  });
});
