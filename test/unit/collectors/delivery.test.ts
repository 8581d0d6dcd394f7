/**
 * Delivery pieces on their own: deltas against what the hub confirmed (and resync), event
 * aggregation, the bounded on-disk queue (oldest dropped first, counted, kept across
 * restarts), and the journal reader on a real child process.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { JournalFollower, parseJournalLine, type JournalEntry } from '../../../src/agent/collectors/journald.js';
import { EventAggregator } from '../../../src/agent/telemetry/event-aggregator.js';
import { EventQueue } from '../../../src/agent/telemetry/event-queue.js';
import { InventoryTracker } from '../../../src/agent/telemetry/inventory-tracker.js';
import type { TelemetryEvent } from '../../../src/protocol/messages/telemetry.js';
import { stateHash } from '../../../src/protocol/telemetry-codec.js';
import { systemClock } from '../../../src/util/clock.js';
import { silentLogger } from '../../../src/util/logger.js';

const dir = mkdtempSync(join(tmpdir(), 'db-delivery-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const row = (k: string, v = 1) => ({ k, v });

describe('inventory tracker', () => {
  it('sends the full state first, then deltas against what the hub confirmed', () => {
    const t = new InventoryTracker('ports');
    assert.equal(t.pending(), undefined, 'nothing read yet');
    assert.equal(t.update([row('a'), row('b')]), true);
    assert.equal(t.update([row('b'), row('a')]), false, 'the same rows in another order are no change');
    const first = t.pending();
    assert.ok(first?.full && first.seq === 1 && first.content.hash === stateHash([row('a'), row('b')]));
    t.confirm(first);
    assert.equal(t.pending(), undefined);
    t.update([row('a', 2), row('c')]);
    const delta = t.pending();
    assert.deepEqual(delta, { full: false, seq: 2, content: { set: [row('a', 2), row('c')], removed: ['b'], hash: stateHash([row('a', 2), row('c')]) } });
    // A second change before the first is confirmed: the next delta still starts from the confirmed state.
    t.update([row('c')]);
    const next = t.pending();
    assert.ok(next && !next.full);
    assert.deepEqual({ ...next.content, removed: [...next.content.removed].sort() }, { set: [row('c')], removed: ['a', 'b'], hash: stateHash([row('c')]) });
  });

  it('continues from the hub\'s sequence number when its hash matches, and sends in full when asked', () => {
    const t = new InventoryTracker('users');
    t.update([row('root')]);
    const checkpoint = t.checkpoint();
    assert.deepEqual(checkpoint, { seq: 0, hash: stateHash([row('root')]) });
    t.adopt({ seq: 41, hash: checkpoint.hash }, false);
    assert.equal(t.pending(), undefined, 'after a restart, nothing to resend');
    t.update([row('root'), row('mallory')]);
    assert.equal(t.pending()?.seq, 42);
    t.adopt({ seq: 41, hash: 'x'.repeat(16) }, true);
    const full = t.pending();
    assert.ok(full?.full && full.seq === 42);
  });
});

describe('event aggregator', () => {
  it('merges identical events with a count and their time span, keeping the first line', () => {
    const a = new EventAggregator();
    const e = (t: number, user = 'root', line = `line ${t}`): TelemetryEvent => ({ kind: 'ssh.failure', t, n: 1, src: '192.0.2.1', user, method: 'password', line });
    for (let i = 0; i < 100; i++) a.add(e(1000 + i));
    a.add(e(1005, 'admin'));
    const events = a.take();
    assert.equal(events.length, 2);
    assert.deepEqual(events[0], { kind: 'ssh.failure', t: 1000, last: 1099, n: 100, src: '192.0.2.1', user: 'root', method: 'password', line: 'line 1000' });
    assert.equal(a.size, 0);
  });
});

describe('event queue', () => {
  const events = (n: number): TelemetryEvent[] => [{ kind: 'ssh.failure', t: 1, n, src: '192.0.2.1', line: 'x'.repeat(400) }];

  it('keeps batches on disk in order across a restart, and drops the oldest over its bound, counting their events', async () => {
    const qdir = join(dir, 'queue');
    const q = new EventQueue(qdir, 64 * 1024, silentLogger());
    await q.open();
    for (let i = 1; i <= 200; i++) await q.push(events(i));
    assert.ok(q.sizeBytes <= 64 * 1024);
    assert.ok(q.dropped > 0, 'some were dropped');
    const kept = q.length;
    const oldest = await q.peek();
    assert.ok(oldest && oldest.batch === 200 - kept + 1, 'the newest are kept');
    // The events dropped are exactly those of the batches that went.
    const droppedBatches = 200 - kept;
    assert.equal(q.dropped, (droppedBatches * (droppedBatches + 1)) / 2);

    const again = new EventQueue(qdir, 64 * 1024, silentLogger());
    await again.open();
    assert.equal(again.queueId, q.queueId);
    assert.equal(again.length, kept);
    assert.equal(again.dropped, q.dropped);
    await again.remove(oldest.batch);
    assert.equal((await again.peek())?.batch, oldest.batch + 1);
    await again.push(events(1));
    const files = readdirSync(qdir).filter((f) => f.endsWith('.json') && f !== 'state.json');
    assert.equal(files.length, kept);
    assert.ok(files.includes('0000000000000201-1.json'), 'numbers go on after a restart');
  });

  it('drops an unreadable batch file (counted) instead of stalling', async () => {
    const qdir = join(dir, 'queue-bad');
    const q = new EventQueue(qdir, 1024 * 1024, silentLogger());
    await q.open();
    await q.push(events(3));
    await q.push(events(4));
    writeFileSync(join(qdir, '0000000000000001-3.json'), '{garbage');
    const next = await q.peek();
    assert.equal(next?.batch, 2);
    assert.equal(q.dropped, 3);
  });
});

describe('journal reader', () => {
  it('parses journalctl JSON lines (string and byte-array messages) and skips junk', () => {
    assert.deepEqual(parseJournalLine('{"MESSAGE":"Failed password for root from 192.0.2.1 port 1 ssh2","__REALTIME_TIMESTAMP":"1767225600123456"}'), { message: 'Failed password for root from 192.0.2.1 port 1 ssh2', t: 1767225600123 });
    assert.equal(parseJournalLine(JSON.stringify({ MESSAGE: [...Buffer.from('Invalid user \xff from 192.0.2.1', 'latin1')] }))?.message.startsWith('Invalid user'), true);
    assert.equal(parseJournalLine('not json'), undefined);
    assert.equal(parseJournalLine('{"MESSAGE":{"a":1}}'), undefined);
  });

  it('runs the configured command, reads its entries, and restarts it when it ends', async () => {
    const script = join(dir, 'fake-journal.sh');
    writeFileSync(script, `#!/bin/sh\necho '{"MESSAGE":"Invalid user a from 192.0.2.7 port 1","__REALTIME_TIMESTAMP":"1767225600000000"}'\necho 'junk'\nexit 3\n`, { mode: 0o755 });
    const entries: JournalEntry[] = [];
    const statuses: string[] = [];
    const follower = new JournalFollower({ command: [script], clock: systemClock, logger: silentLogger(), onEntry: (e) => entries.push(e), onStatus: (s, m) => statuses.push(`${s}${m ? `: ${m}` : ''}`) });
    follower.start();
    for (let i = 0; i < 200 && !statuses.some((s) => s.startsWith('error')); i++) await new Promise((r) => setTimeout(r, 10));
    await follower.stop();
    assert.deepEqual(entries, [{ message: 'Invalid user a from 192.0.2.7 port 1', t: 1767225600000 }]);
    assert.ok(statuses.some((s) => /^error: .*exited \(status 3\)/.test(s)), statuses.join(' | '));
    const missing = new JournalFollower({ command: ['/nonexistent/journalctl'], clock: systemClock, logger: silentLogger(), onEntry: () => undefined, onStatus: (s, m) => statuses.push(`${s}: ${m}`) });
    missing.start();
    for (let i = 0; i < 200 && !statuses.some((s) => s.includes('could not run')); i++) await new Promise((r) => setTimeout(r, 10));
    await missing.stop();
    assert.ok(statuses.some((s) => s.includes('could not run (ENOENT)')));
  });
});
