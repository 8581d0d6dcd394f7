/**
 * The `drawbridge secrets` commands through the real binary, against an in-process hub:
 * the ones the end-to-end delivery test does not run (put --from-file, get, list, versions,
 * delete, undelete, destroy, rekey), and bad input answered with one coded line.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startHub, type HubHandle } from '../../src/hub/hub.js';
import { silentLogger } from '../../src/util/logger.js';
import { cleanup, runCli, tempDir } from '../helpers.js';

const NAME = 'plant-3/tls-key';

describe('drawbridge secrets (real binary)', { timeout: 60_000 }, () => {
  let hub: HubHandle;
  let env: Record<string, string>;

  before(async () => {
    hub = await startHub({ dataDir: tempDir('db-hub-seccli-'), host: '127.0.0.1', port: 0, logger: silentLogger(), shutdownGraceMs: 0 });
    env = { DRAWBRIDGE_HUB: hub.url, DRAWBRIDGE_TOKEN: hub.bootstrapAdminToken as string, DRAWBRIDGE_CA_PIN: hub.caPin, DRAWBRIDGE_CONFIG_DIR: tempDir() };
  });
  after(async () => {
    await hub?.close();
    await cleanup();
  });

  const ok = async (args: string[], input?: string): Promise<string> => {
    const result = await runCli(['secrets', ...args], { env, ...(input !== undefined ? { input } : {}) });
    assert.equal(result.code, 0, `secrets ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  };
  /** A failure: non-zero exit and exactly one line, `drawbridge: message [CODE]`. */
  const fails = async (code: string, args: string[], input?: string): Promise<void> => {
    const result = await runCli(['secrets', ...args], { env, ...(input !== undefined ? { input } : {}) });
    assert.notEqual(result.code, 0, `secrets ${args.join(' ')} should fail`);
    assert.match(result.stderr, new RegExp(`^drawbridge: [^\\n]+ \\[${code}\\]\\n$`), result.stderr);
  };

  it('puts from a file and reads the value back byte for byte; refuses oversized values and stale check-and-set with one coded line', async () => {
    const file = join(tempDir(), 'key.pem');
    const pem = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VuBCIEIA==\n-----END PRIVATE KEY-----\n';
    writeFileSync(file, pem, { mode: 0o600 });
    assert.deepEqual(JSON.parse(await ok(['put', NAME, '--from-file', file, '--json'])), { name: NAME, version: 1 });
    assert.equal(await ok(['get', NAME]), pem);
    await fails('PAYLOAD_TOO_LARGE', ['put', NAME, '--value-stdin'], 'x'.repeat(64 * 1024 + 1));
    await fails('CAS_MISMATCH', ['put', NAME, '--value-stdin', '--cas', '5'], 'stale');
    await fails('UNKNOWN_SECRET', ['get', 'plant-3/no-such-secret']);
    const [listed] = JSON.parse(await ok(['list', '--json'])) as { name: string; currentVersion: number; live: boolean }[];
    assert.deepEqual([listed?.name, listed?.currentVersion, listed?.live], [NAME, 1, true]);
  });

  it('deletes softly, undeletes, destroys a version for good, and rekeys with every value still readable', async () => {
    await ok(['delete', NAME]);
    await fails('SECRET_DELETED', ['get', NAME]);
    await ok(['undelete', NAME]);
    assert.match(await ok(['get', NAME]), /BEGIN PRIVATE KEY/);
    assert.equal((JSON.parse(await ok(['put', NAME, '--value-stdin', '--json', '--cas', '1'], 'second')) as { version: number }).version, 2);
    await ok(['destroy', NAME, '--version', '1']);
    await fails('SECRET_DESTROYED', ['get', NAME, '--version', '1']);
    const versions = JSON.parse(await ok(['versions', NAME, '--json'])) as { versions: { version: number; destroyedAt: string | null }[] };
    assert.deepEqual(versions.versions.map((v) => [v.version, v.destroyedAt !== null]), [[2, false], [1, true]]);
    const rekeyed = JSON.parse(await ok(['rekey', '--json'])) as { rewrapped: number };
    assert.equal(rekeyed.rewrapped, 1, 'the one sealed version left');
    assert.equal(await ok(['get', NAME]), 'second');
  });
});
