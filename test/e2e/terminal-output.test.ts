/**
 * Terminal injection, at the output of the real binary: values that reached the hub anyway
 * (stored before input was checked, or reported by a peer) are printed escaped in tables,
 * key/value output, audit lines (tail --follow too) and error lines; --json is exact.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AccessView, AuditView, DeviceView } from '../../src/protocol/api-types.js';
import { cleanup, RAW_CONTROL, runCli, spawnCli, tempDir, waitFor, type CliResult } from '../helpers.js';
import { startHarness, type Harness } from '../integration/stream-harness.js';

/** Erase the line, clear the screen, 8-bit CSI, a right-to-left override and a forged row. */
const HOSTILE = 'x\u001b[2K\u001b[2J\u009b31m\u202eevil\nFAKE  ROW';
const SHOWN = 'x\\x1b[2K\\x1b[2J\\x9b31m\\u202eevil\\nFAKE  ROW';

function assertSafe(result: CliResult, what: string): void {
  assert.equal(result.code, 0, `${what}: ${result.stderr}`);
  assert.doesNotMatch(result.stdout, RAW_CONTROL, `${what} printed a raw control character`);
  assert.ok(result.stdout.includes(SHOWN), `${what} should show the value escaped:\n${result.stdout}`);
}

describe('human-readable CLI output escapes control characters', { timeout: 60_000 }, () => {
  let h: Harness;
  let env: Record<string, string>;
  let requestId: string;

  before(async () => {
    h = await startHarness();
    const { store, access } = h.hub.services;
    await h.admin.request('POST', '/v1/devices', { name: 'plc-1', tags: { site: 'plant-3' } });
    // What a peer could have left before input was checked: a tag, an agent-reported version,
    // a request reason, a review note and an audit detail.
    await store.touchDevice('plc-1', { lastSeenAt: Date.now(), agentVersion: HOSTILE });
    const operator = { name: 'olga', role: 'operator' as const, tokenId: 'none' };
    await h.user('olga', 'operator');
    requestId = (await access.request(operator, 'plc-1', 60_000, HOSTILE)).id;
    await store.appendAudit({ actor: 'hub', action: 'test.injection', device: 'plc-1', details: { note: HOSTILE } });
    env = {
      DRAWBRIDGE_HUB: h.hub.url,
      DRAWBRIDGE_TOKEN: h.hub.bootstrapAdminToken as string,
      DRAWBRIDGE_CA_PIN: h.hub.caPin,
      DRAWBRIDGE_CONFIG_DIR: tempDir('db-cfg-'),
    };
  });

  after(async () => {
    await cleanup();
    await h?.close();
  });

  it('in tables, show output and audit lines', async () => {
    const commands = [
      ['access', 'list'],
      ['access', 'show', requestId],
      ['devices', 'list'],
      ['devices', 'show', 'plc-1'],
      ['audit', 'list', '--action', 'test.injection'],
      ['audit', 'tail', '-n', '5'],
    ];
    const results = await Promise.all(commands.map((args) => runCli(args, { env })));
    results.forEach((result, i) => assertSafe(result, (commands[i] as string[]).join(' ')));
    // Rows stay rows: the forged line break did not make a line of its own.
    assert.doesNotMatch((results[0] as CliResult).stdout, /^FAKE/m);
  });

  it('in audit tail --follow, for records that arrive while it runs', async () => {
    const follow = await spawnCli(['audit', 'tail', '--follow', '-n', '1'], { env, ready: /\n/ });
    await h.hub.services.store.appendAudit({ actor: 'hub', action: 'test.follow', device: 'plc-1', details: { note: HOSTILE } });
    await waitFor(() => follow.stdout().includes('test.follow'), 15_000, 'the followed record');
    follow.child.kill();
    assert.doesNotMatch(follow.stdout(), RAW_CONTROL);
    assert.ok(follow.stdout().includes(SHOWN));
  });

  it('--json prints the exact stored values', async () => {
    const [access, devices, audit] = await Promise.all([
      runCli(['access', 'show', requestId, '--json'], { env }),
      runCli(['devices', 'list', '--json'], { env }),
      runCli(['audit', 'tail', '-n', '5', '--json'], { env }),
    ]);
    assert.equal((JSON.parse(access.stdout) as AccessView).reason, HOSTILE);
    assert.equal((JSON.parse(devices.stdout) as DeviceView[])[0]?.agentVersion, HOSTILE);
    const records = audit.stdout.trim().split('\n').map((line) => JSON.parse(line) as AuditView);
    assert.equal(records.find((r) => r.action === 'test.injection')?.details['note'], HOSTILE);
    for (const result of [access, devices, audit]) assert.doesNotMatch(result.stdout, RAW_CONTROL);
  });

  it('in error lines: one line, escaped', async () => {
    const result = await runCli(['access', 'show', 'ar_\u001b[2J\u001b]0;owned\u0007'], { env });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, 'drawbridge: invalid access request id "ar_\\x1b[2J\\x1b]0;owned\\x07" (it looks like ar_0123456789abcdef) [VALIDATION_FAILED]\n');
  });
});
