/**
 * How the real binary ends when something is wrong: a mistyped command or option is one
 * line, `drawbridge: message [USAGE]`; a listing piped into `head` ends quietly; a second
 * hub on a data directory in use is refused in one line.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CLI, cleanup, runCli, runProgram, tempDir } from '../helpers.js';
import { startHarness, type Harness } from '../integration/stream-harness.js';

const ONE_LINE = /^drawbridge: [^\n]+ \[[A-Z_]+\]\n$/;

describe('usage errors are one line', { timeout: 60_000 }, () => {
  after(cleanup);

  it('a mistyped command, an unknown option, a missing argument or option', async () => {
    const cases: [string[], string][] = [
      [['devics', 'list'], "drawbridge: unknown command 'devics' (did you mean devices?) (see drawbridge --help) [USAGE]\n"],
      [['devices', 'lst'], "drawbridge: unknown command 'lst' (did you mean list?) (see drawbridge devices --help) [USAGE]\n"],
      [['devices', 'list', '--bogus'], "drawbridge: unknown option '--bogus' (see drawbridge devices list --help) [USAGE]\n"],
      [['devices', 'show'], "drawbridge: missing required argument 'name' (see drawbridge devices show --help) [USAGE]\n"],
      [['users', 'add', 'bob'], "drawbridge: required option '--role <role>' not specified (see drawbridge users add --help) [USAGE]\n"],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((result, i) => {
      const [args, expected] = cases[i] as [string[], string];
      assert.equal(result.stderr, expected, args.join(' '));
      assert.equal(result.stdout, '');
      assert.equal(result.code, 1);
    });
  });
});

describe('with a hub', { timeout: 60_000 }, () => {
  let h: Harness;
  let env: Record<string, string>;

  before(async () => {
    h = await startHarness();
    // Enough records that a listing is larger than a pipe's buffer.
    await Promise.all(Array.from({ length: 1500 }, (_, i) => h.hub.services.store.appendAudit({ actor: 'hub', action: 'test.filler', device: null, details: { i, text: 'x'.repeat(40) } })));
    env = { DRAWBRIDGE_HUB: h.hub.url, DRAWBRIDGE_TOKEN: h.hub.bootstrapAdminToken as string, DRAWBRIDGE_CA_PIN: h.hub.caPin, DRAWBRIDGE_CONFIG_DIR: tempDir('db-cfg-') };
  });

  after(async () => {
    await cleanup();
    await h?.close();
  });

  it('a listing piped into head ends quietly: no stack trace, exit 0', async () => {
    const script = `"${process.execPath}" "${CLI}" audit list --limit 1000 | head -n 2; echo "status \${PIPESTATUS[0]}" >&2`;
    const result = await runProgram('bash', ['-c', script], { env });
    assert.equal(result.stdout.toString().split('\n').length, 3, result.stdout.toString());
    assert.match(result.stdout.toString(), /^SEQ\s+TIME\s+ACTOR/);
    // Exit 0, and nothing on stderr but the listing's own paging hint: no EPIPE, no stack trace.
    assert.match(result.stderr, /^(more: drawbridge audit list --after \d+\n)?status 0\n$/);
  });

  it('a second hub on a data directory in use is refused in one line naming the holder', async () => {
    const result = await runCli(['hub', '--data-dir', h.hub.dataDir, '--listen', '127.0.0.1:0']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, ONE_LINE);
    assert.ok(result.stderr.includes(`is in use by another running hub (pid ${process.pid} on `), result.stderr);
    assert.ok(result.stderr.endsWith('[HUB_LOCKED]\n'));
    assert.equal(result.stdout, '');
  });
});
