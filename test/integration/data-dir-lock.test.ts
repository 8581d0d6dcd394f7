/**
 * One hub per data directory: a second hub is refused while the first runs, naming it; the
 * directory is free again once the first stops, and a holder killed with SIGKILL leaves no
 * lock behind (the kernel releases it).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { DrawbridgeError } from '../../src/errors.js';
import { startHub, type HubHandle } from '../../src/hub/hub.js';
import { silentLogger } from '../../src/util/logger.js';

const LOCK_MODULE = fileURLToPath(new URL('../../src/hub/data-dir-lock.js', import.meta.url));

function start(dataDir: string): Promise<HubHandle> {
  return startHub({ dataDir, host: '127.0.0.1', port: 0, logger: silentLogger() });
}

async function refusal(dataDir: string): Promise<DrawbridgeError> {
  try {
    const hub = await start(dataDir);
    await hub.close();
  } catch (error) {
    return error as DrawbridgeError;
  }
  assert.fail('a second hub started on a data directory in use');
}

describe('the data directory lock', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'db-lock-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a second hub while the first runs, naming it; frees the directory when the first stops', async () => {
    const dataDir = join(dir, 'a');
    const first = await start(dataDir);
    try {
      const error = await refusal(dataDir);
      assert.equal(error.code, 'HUB_LOCKED');
      assert.ok(error.message.includes(`in use by another running hub (pid ${process.pid} on `), error.message);
      assert.ok(error.message.includes(`listening on ${first.url}`), error.message);
      // The refused hub touched nothing: the first one still serves.
      const health = await fetchHealth(first);
      assert.equal(health, 200);
    } finally {
      await first.close();
    }
    assert.equal(existsSync(join(dataDir, 'hub.pid')), false, 'hub.pid goes with the hub');
    const second = await start(dataDir);
    await second.close();
  });

  it('is not held by a holder that was killed: a restart after kill -9 works', async () => {
    const dataDir = join(dir, 'b');
    const first = await start(dataDir);
    await first.close();
    // Another process takes the lock and is killed without any chance to clean up.
    const holder = spawn(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(LOCK_MODULE)}); m.lockDataDir(${JSON.stringify(dataDir)}, 'test holder'); console.log('locked'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (c: Buffer) => c.toString().includes('locked') && resolve());
      holder.once('exit', (code) => reject(new Error(`the lock holder exited with ${code}`)));
    });
    const error = await refusal(dataDir);
    assert.equal(error.code, 'HUB_LOCKED');
    assert.ok(error.message.includes(`pid ${holder.pid} on `), error.message);
    const exited = new Promise((resolve) => holder.once('exit', resolve));
    holder.kill('SIGKILL');
    await exited;
    assert.equal(existsSync(join(dataDir, 'hub.pid')), true, 'the killed holder left its hub.pid behind');
    const restarted = await start(dataDir);
    await restarted.close();
  });
});

async function fetchHealth(hub: HubHandle): Promise<number> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    request(`${hub.url}/healthz`, { ca: hub.caPem, checkServerIdentity: () => undefined }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on('error', reject)
      .end();
  });
}
