/**
 * Following a real file on disk: appended lines, a partial line completed later, rotation
 * (rename and a new file: the rest of the old one is read first), copy-and-truncate, long and
 * binary lines skipped and counted, and resuming at a saved position.
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LogFollower, MAX_LINE_BYTES, type FollowPosition } from '../../../src/agent/collectors/log-follower.js';
import { ManualClock } from '../../../src/util/clock.js';
import { silentLogger } from '../../../src/util/logger.js';

const dir = mkdtempSync(join(tmpdir(), 'db-follow-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function follower(path: string, position?: FollowPosition) {
  const lines: string[] = [];
  const statuses: string[] = [];
  let saved: FollowPosition | undefined;
  const f = new LogFollower({
    path,
    pollMs: 60_000,
    clock: new ManualClock(),
    logger: silentLogger(),
    position,
    onLine: (line) => lines.push(line),
    onStatus: (state, message) => statuses.push(message ? `${state}: ${message}` : state),
    onPosition: (p) => (saved = p),
  });
  return { f, lines, statuses, saved: () => saved };
}

describe('log follower', () => {
  it('starts at the end of an existing file and reads what is appended, completing partial lines', async () => {
    const path = join(dir, 'a.log');
    writeFileSync(path, 'old line 1\nold line 2\n');
    const { f, lines } = follower(path);
    await f.poll();
    assert.deepEqual(lines, [], 'history before the collector started is skipped');
    appendFileSync(path, 'new 1\nnew 2\npart');
    await f.poll();
    assert.deepEqual(lines, ['new 1', 'new 2']);
    appendFileSync(path, 'ial\r\n');
    await f.poll();
    assert.deepEqual(lines, ['new 1', 'new 2', 'partial']);
    await f.stop();
  });

  it('follows rotation: the rest of the old file, then the new file from its start', async () => {
    const path = join(dir, 'b.log');
    writeFileSync(path, '');
    const { f, lines } = follower(path);
    await f.poll();
    appendFileSync(path, 'before rotation\n');
    await f.poll();
    appendFileSync(path, 'written just before the move\n');
    renameSync(path, `${path}.1`);
    writeFileSync(path, 'first in the new file\n');
    await f.poll();
    assert.deepEqual(lines, ['before rotation', 'written just before the move', 'first in the new file']);
    assert.equal(f.stats.rotations, 1);
    await f.stop();
  });

  it('follows copy-and-truncate: a file that shrank is read again from its start', async () => {
    const path = join(dir, 'c.log');
    writeFileSync(path, '');
    const { f, lines } = follower(path);
    await f.poll();
    appendFileSync(path, 'one\ntwo\n');
    await f.poll();
    truncateSync(path, 0);
    appendFileSync(path, 'after truncation\n');
    await f.poll();
    assert.deepEqual(lines, ['one', 'two', 'after truncation']);
    assert.equal(f.stats.truncations, 1);
    await f.stop();
  });

  it('skips lines over the limit and binary junk, counting them, and keeps going', async () => {
    const path = join(dir, 'd.log');
    writeFileSync(path, '');
    const { f, lines } = follower(path);
    await f.poll();
    appendFileSync(path, Buffer.concat([Buffer.from('x'.repeat(MAX_LINE_BYTES * 3)), Buffer.from('\nok 1\n'), Buffer.from([0, 1, 2, 0xff, 0xfe, 0, 0, 0, 0x0a]), Buffer.from('ok 2\n')]));
    await f.poll();
    assert.deepEqual(lines, ['ok 1', 'ok 2']);
    assert.equal(f.stats.longLines, 1);
    assert.equal(f.stats.binaryLines, 1);
    await f.stop();
  });

  it('says when the file cannot be read, and picks it up once it appears', async () => {
    const path = join(dir, 'e.log');
    const { f, lines, statuses } = follower(path);
    await f.poll();
    assert.match(statuses.at(-1) ?? '', /^error: cannot read .*ENOENT/);
    writeFileSync(path, 'appeared\n');
    await f.poll();
    assert.equal(statuses.at(-1), 'ok');
    assert.deepEqual(lines, ['appeared'], 'a file that appears later is read from its start');
    await f.stop();
  });

  it('resumes at a saved position (lines written while the agent was down are read)', async () => {
    const path = join(dir, 'f.log');
    writeFileSync(path, 'seen\n');
    const first = follower(path);
    await first.f.poll();
    appendFileSync(path, 'read by the first run\n');
    await first.f.poll();
    await first.f.stop();
    appendFileSync(path, 'written while stopped\n');
    const second = follower(path, first.saved());
    await second.f.poll();
    assert.deepEqual(second.lines, ['written while stopped']);
    await second.f.stop();
  });
});
