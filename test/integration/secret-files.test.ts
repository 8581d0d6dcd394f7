/**
 * files: a secret rendered through a template to a path with its mode and owner, atomically,
 * on every change, with a reload command run without a shell; removed when the secret is.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AgentHandle } from '../../src/agent/agent.js';
import { secretPath, startVaultWorld, until, type VaultWorld } from './vault-harness.js';

describe('secret files', { timeout: 60_000 }, () => {
  let w: VaultWorld;
  let agent: AgentHandle;
  let target: string;
  let marker: string;
  const root = process.getuid?.() === 0;

  before(async () => {
    w = await startVaultWorld();
    const config = await w.enroll('web-1', { edgeName: 'web' });
    target = join(w.dir, 'app', 'conf', 'db.conf');
    marker = join(w.dir, 'app', 'reloads.txt');
    agent = await w.startAgent(config, {
      overrides: {
        files: [
          {
            path: target,
            template: 'user=app\npassword={{ secret "web/db" }}\ntoken={{ secret "web/token" }}\n',
            mode: '0640',
            ...(root ? { owner: '1234:4321' } : {}),
            // Arguments reach the program as they are: no shell, so "$(id)" stays text.
            reload: [process.execPath, '-e', "require('fs').appendFileSync(process.argv[1], process.argv[2] + '\\n')", marker, '$(id)'],
          },
        ],
      },
    });
    await agent.waitOnline();
  });
  after(async () => w?.close());

  const reloads = (): number => (existsSync(marker) ? readFileSync(marker, 'utf8').split('\n').filter(Boolean).length : 0);

  it('waits until every secret of the template is held, then writes the file with its mode and owner and reloads', async () => {
    await w.put('web/db', 'db-pass-1');
    await w.call('POST', secretPath('web/db', '/allow'), { edge: 'web' });
    await until(() => agent.secrets.get('web/db') !== undefined, 'web/db held');
    await agent.files.idle();
    assert.equal(existsSync(target), false, 'half a template is never written');
    await w.put('web/token', 'tok-1');
    await w.call('POST', secretPath('web/token', '/allow'), { edge: 'web' });
    await until(() => existsSync(target), 'the file rendered', 5000);
    assert.equal(readFileSync(target, 'utf8'), 'user=app\npassword=db-pass-1\ntoken=tok-1\n');
    const stat = statSync(target);
    assert.equal(stat.mode & 0o777, 0o640);
    if (root) assert.deepEqual([stat.uid, stat.gid], [1234, 4321]);
    await until(() => reloads() === 1, 'the reload command ran');
    assert.equal(readFileSync(marker, 'utf8'), '$(id)\n');
  });

  it('re-renders on a new version (atomically: no temp file left) and reloads again', async () => {
    await w.put('web/db', 'db-pass-2');
    await until(() => existsSync(target) && readFileSync(target, 'utf8').includes('db-pass-2'), 'the new version rendered', 5000);
    await until(() => reloads() === 2, 'reloaded again');
    assert.deepEqual(readdirSync(join(w.dir, 'app', 'conf')), ['db.conf']);
  });

  it('removes the file when a secret it uses is denied', async () => {
    await w.call('POST', secretPath('web/token', '/deny'), { edge: 'web' });
    await until(() => !existsSync(target), 'the file removed', 5000);
    await until(() => reloads() === 3, 'reloaded after the removal');
  });
});
