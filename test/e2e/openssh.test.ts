/**
 * Real OpenSSH through Drawbridge: a throwaway sshd is the device's target, and the
 * system ssh/scp reach it through `drawbridge proxy` as ProxyCommand and through
 * `drawbridge ssh`. Missing OpenSSH is a failure, never a skip: CI installs it.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CLI,
  addDeviceWithAgent,
  cleanup,
  hubRequest,
  runCli,
  runProgram,
  startHubProcess,
  startSshd,
  tempDir,
  type HubProcess,
  waitFor,
  type SshdProcess,
} from '../helpers.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
const DEVICE = 'sshd-dev';

describe('OpenSSH through drawbridge', () => {
  let hub: HubProcess;
  let sshd: SshdProcess;
  let sshOptions: string[];

  before(async () => {
    for (const tool of ['/usr/bin/ssh', '/usr/bin/scp']) {
      assert.ok(existsSync(tool), `${tool} is missing: install openssh-client (CI installs it in .ci/run)`);
    }
    sshd = await startSshd();
    hub = await startHubProcess();
    await addDeviceWithAgent(hub, DEVICE, `127.0.0.1:${sshd.port}`);
    sshOptions = [
      '-o', `ProxyCommand=${quote(process.execPath)} ${quote(CLI)} proxy %h`,
      '-i', sshd.clientKey,
      '-o', 'IdentitiesOnly=yes',
      '-o', 'StrictHostKeyChecking=no',
      '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'BatchMode=yes',
      '-o', 'LogLevel=ERROR',
      '-o', 'ConnectTimeout=20',
    ];
  });

  after(async () => {
    await cleanup();
  });

  it('runs a remote command with ssh -o ProxyCommand="drawbridge proxy %h", and the audit records an ordinary end', async () => {
    const result = await runProgram('ssh', [...sshOptions, `${sshd.user}@${DEVICE}`, 'echo hello-from-sshd; uname -s'], { env: hub.env });
    assert.equal(result.code, 0, `ssh failed: ${result.stderr}\nsshd: ${sshd.stderr()}`);
    assert.equal(result.stdout.toString(), 'hello-from-sshd\nLinux\n');
    // The session's close record says how it really ended: both sides finished.
    let reason: unknown;
    await waitFor(async () => {
      const res = await hubRequest(hub, 'GET', `/v1/audit?action=stream.close&device=${DEVICE}&order=desc&limit=1`);
      reason = (res.json as { records: { details: { reason: unknown } }[] }).records[0]?.details.reason;
      return reason !== undefined;
    }, 10_000, 'the close record');
    assert.equal(reason, 'closed');
  });

  it('copies a 5 MiB file with scp both ways, byte for byte', async () => {
    const work = tempDir('db-scp-');
    const upload = randomBytes(5 * 1024 * 1024 + 123);
    const download = randomBytes(5 * 1024 * 1024 + 321);
    writeFileSync(join(work, 'upload.bin'), upload);
    // The sshd runs on this machine, so its "remote" paths are local paths too.
    writeFileSync(join(sshd.dir, 'download.bin'), download);

    const up = await runProgram('scp', [...sshOptions, join(work, 'upload.bin'), `${sshd.user}@${DEVICE}:${join(sshd.dir, 'uploaded.bin')}`], { env: hub.env, timeoutMs: 40_000 });
    assert.equal(up.code, 0, `scp upload failed: ${up.stderr}`);
    assert.equal(sha(readFileSync(join(sshd.dir, 'uploaded.bin'))), sha(upload));

    const down = await runProgram('scp', [...sshOptions, `${sshd.user}@${DEVICE}:${join(sshd.dir, 'download.bin')}`, join(work, 'downloaded.bin')], { env: hub.env, timeoutMs: 40_000 });
    assert.equal(down.code, 0, `scp download failed: ${down.stderr}`);
    assert.equal(sha(readFileSync(join(work, 'downloaded.bin'))), sha(download));
  });

  it('runs a remote command with `drawbridge ssh user@DEVICE -- ssh-args command`', async () => {
    const sshArgs = ['-i', sshd.clientKey, '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR'];
    const result = await runCli(['ssh', `${sshd.user}@${DEVICE}`, '--', ...sshArgs, 'echo via-drawbridge-ssh; whoami'], { env: hub.env });
    assert.equal(result.code, 0, `drawbridge ssh failed: ${result.stderr}\nsshd: ${sshd.stderr()}`);
    assert.equal(result.stdout, `via-drawbridge-ssh\n${sshd.user}\n`);
  });

  it('passes the remote command\'s exit status through `drawbridge ssh`', async () => {
    const result = await runCli(
      ['ssh', DEVICE, '--', '-l', sshd.user, '-i', sshd.clientKey, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', 'exit 7'],
      { env: hub.env },
    );
    assert.equal(result.code, 7, result.stderr);
  });
});
