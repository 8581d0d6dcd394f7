/**
 * The CLI loads a command's code only when that command runs: `--version`, `--help` and
 * argument errors load no schema library, no client, hub or agent code. Checked with a
 * module resolve hook that refuses those modules, so loading one fails the run.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from '../helpers.js';

const HOOKS = `
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (/\\/node_modules\\/zod\\/|\\/dist\\/src\\/(client|hub|agent|transport|store\\/sqlite)\\//.test(resolved.url)) {
    throw new Error('loaded at start: ' + resolved.url);
  }
  return resolved;
}`;
const REGISTER = `import { register } from 'node:module'; register(${JSON.stringify('data:text/javascript,' + encodeURIComponent(HOOKS))});`;
const NODE_OPTIONS = `--import ${JSON.stringify('data:text/javascript,' + encodeURIComponent(REGISTER))}`;

describe('the CLI loads command code lazily', { timeout: 60_000 }, () => {
  it('--version, --help and a usage error load no zod, client, hub, agent, transport or SQLite code', async () => {
    const cases = [['--version'], ['--help'], ['secrets', '--help'], ['alerts', 'list', '--bogus']];
    const results = await Promise.all(cases.map((args) => runCli(args, { env: { NODE_OPTIONS } })));
    results.forEach((result, i) => {
      const args = (cases[i] as string[]).join(' ');
      assert.doesNotMatch(result.stderr, /loaded at start/, args);
      assert.equal(result.code, args.includes('--bogus') ? 1 : 0, `${args}: ${result.stderr}`);
    });
  });

  it('the hook does catch a command that needs those modules (the check can fail)', async () => {
    const result = await runCli(['devices', 'list', '--hub', 'https://127.0.0.1:1', '--token', 'dbp_x_y'], { env: { NODE_OPTIONS } });
    assert.match(result.stderr, /loaded at start/);
  });
});
