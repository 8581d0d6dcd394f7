/**
 * Set-up on a machine that reaches only the npm registry: when better-sqlite3 must be
 * compiled, the project's node-gyp (scripts/node-gyp-headers, first on the install scripts'
 * PATH) points node-gyp at the installed Node's own headers instead of downloading them,
 * and only when their version is exactly this Node's. (The whole `npm ci` with a clean HOME
 * takes minutes of compiling; it was verified by hand, see the README.)
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const WRAPPER = join(ROOT, 'scripts', 'node-gyp-headers', 'node-gyp.cjs');

/** npm's own CLI script, as npm passes it to install scripts in npm_execpath. */
function npmExecPath(): string {
  const npm = realpathSync(execFileSync('sh', ['-c', 'command -v npm']).toString().trim());
  return join(dirname(dirname(npm)), 'bin', 'npm-cli.js');
}

describe('node-gyp with the installed Node headers', () => {
  it('is the node-gyp npm puts first on the PATH of install scripts (a dev dependency installed as a copy)', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    assert.equal(pkg.devDependencies['drawbridge-node-gyp-headers'], 'file:scripts/node-gyp-headers');
    assert.match(readFileSync(join(ROOT, '.npmrc'), 'utf8'), /^install-links=true$/m);
    const bin = JSON.parse(readFileSync(join(ROOT, 'scripts', 'node-gyp-headers', 'package.json'), 'utf8')) as { bin: Record<string, string> };
    assert.equal(bin.bin['node-gyp'], 'node-gyp.cjs');
  });

  it("points node-gyp at PREFIX/include/node when it holds this Node's headers, and runs npm's node-gyp", () => {
    const prefix = dirname(dirname(process.execPath));
    const headers = existsSync(join(prefix, 'include', 'node', 'node_version.h'));
    const run = spawnSync(process.execPath, [WRAPPER, '--version'], { env: { ...process.env, npm_execpath: npmExecPath(), npm_config_nodedir: '' }, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^v\d+\.\d+\.\d+/, 'the real node-gyp answered');
    if (headers) assert.ok(run.stderr.includes(`compiling against the Node.js ${process.versions.node} headers installed in ${prefix}/include/node`), run.stderr);
    else assert.equal(run.stderr, '', 'without installed headers nothing changes');
  });

  it('leaves an explicit nodedir alone', () => {
    const run = spawnSync(process.execPath, [WRAPPER, '--version'], { env: { ...process.env, npm_execpath: npmExecPath(), npm_config_nodedir: '/somewhere/else' }, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stderr, '');
  });
});
