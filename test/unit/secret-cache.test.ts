/** The edge's encrypted secret cache: durable, sealed at rest, and refusing what was tampered with. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileCacheKeyStore } from '../../src/agent/vault/cache-key.js';
import { SecretCache } from '../../src/agent/vault/secret-cache.js';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/util/logger.js';

const dir = mkdtempSync(join(tmpdir(), 'db-cache-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function capture(): { logger: Logger; lines: () => string } {
  let text = '';
  const sink = new Writable({ write: (chunk: Buffer, _e, done) => ((text += chunk.toString()), done()) });
  return { logger: pino({ level: 'info' }, sink) as unknown as Logger, lines: () => text };
}

describe('secret cache', () => {
  const edge = 'e'.repeat(32);

  it('stores values sealed, at mode 0600, and reads them back after a reload', () => {
    const path = join(dir, 'a', 'cache.json');
    const keys = new FileCacheKeyStore(join(dir, 'a', 'cache.key'));
    const cache = new SecretCache(path, keys, edge, capture().logger);
    cache.load();
    cache.put('plant-3/db', 2, Buffer.from('hunter2-plaintext'), 1000);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'a', 'cache.key')).mode & 0o777, 0o600);
    assert.ok(!readFileSync(path).includes(Buffer.from('hunter2-plaintext')));
    const again = new SecretCache(path, keys, edge, capture().logger);
    assert.equal(again.load(), 0);
    assert.equal(again.get('plant-3/db')?.value.toString(), 'hunter2-plaintext');
    assert.deepEqual(again.held(), [{ name: 'plant-3/db', version: 2 }]);
    again.remove('plant-3/db');
    assert.equal(new SecretCache(path, keys, edge, capture().logger).load(), 0);
    assert.equal(again.get('plant-3/db'), undefined);
  });

  it('refuses and logs a tampered entry, keeps the others, and no longer reports it as held', () => {
    const path = join(dir, 'b', 'cache.json');
    const keys = new FileCacheKeyStore(join(dir, 'b', 'cache.key'));
    const cache = new SecretCache(path, keys, edge, capture().logger);
    cache.load();
    cache.put('good', 1, Buffer.from('g'), 1);
    cache.put('bad', 1, Buffer.from('b'), 1);
    const file = JSON.parse(readFileSync(path, 'utf8')) as { entries: Record<string, { sealed: string; version: number }> };
    const sealed = Buffer.from(file.entries['bad']?.sealed as string, 'base64');
    sealed[sealed.length - 1] = (sealed[sealed.length - 1] as number) ^ 1;
    (file.entries['bad'] as { sealed: string }).sealed = sealed.toString('base64');
    // Also a version bumped without re-sealing: bound as associated data, so refused too.
    (file.entries['good'] as { version: number }).version = 1;
    writeFileSync(path, JSON.stringify(file));
    const log = capture();
    const loaded = new SecretCache(path, keys, edge, log.logger);
    assert.equal(loaded.load(), 1);
    assert.deepEqual(loaded.held(), [{ name: 'good', version: 1 }]);
    assert.match(log.lines(), /did not authenticate/);
    assert.match(log.lines(), /"secret":"bad"/);
    // The refusal is written back: the next start does not meet it again.
    assert.equal(new SecretCache(path, keys, edge, capture().logger).load(), 0);
  });

  it('refuses a cache file that does not parse, or another edge\'s, moving it aside', () => {
    const path = join(dir, 'c', 'cache.json');
    const keys = new FileCacheKeyStore(join(dir, 'c', 'cache.key'));
    const cache = new SecretCache(path, keys, edge, capture().logger);
    cache.load();
    cache.put('x', 1, Buffer.from('x'), 1);
    writeFileSync(path, '{"v":1,"edge":');
    const log = capture();
    const corrupt = new SecretCache(path, keys, edge, log.logger);
    assert.equal(corrupt.load(), -1);
    assert.deepEqual(corrupt.held(), []);
    assert.match(log.lines(), /corrupt or not ours/);
    assert.equal(existsSync(path), false);
    assert.equal(readdirSync(join(dir, 'c')).filter((f) => f.includes('refused')).length, 1);
    corrupt.put('x', 1, Buffer.from('x'), 1);
    assert.equal(new SecretCache(path, keys, 'f'.repeat(32), capture().logger).load(), -1);
  });

  it('refuses entries sealed with another cache key (a lost key file)', () => {
    const path = join(dir, 'd', 'cache.json');
    const cache = new SecretCache(path, new FileCacheKeyStore(join(dir, 'd', 'cache.key')), edge, capture().logger);
    cache.load();
    cache.put('x', 1, Buffer.from('x'), 1);
    rmSync(join(dir, 'd', 'cache.key'));
    const reopened = new SecretCache(path, new FileCacheKeyStore(join(dir, 'd', 'cache.key')), edge, capture().logger);
    assert.equal(reopened.load(), 1);
    assert.deepEqual(reopened.held(), []);
  });
});
