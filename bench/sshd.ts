/**
 * The two baselines that are not Drawbridge: OpenSSH local forwarding (`ssh -N -L`)
 * through a throwaway sshd on 127.0.0.1, and a plain socat relay. Both run with their
 * default ciphers and settings; only what a throwaway setup needs is configured.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { canConnect, freePort, logTail, onCleanup, startProcess, stopProcess, tempDir, waitFor, type Started } from './processes.js';

export const SSHD = '/usr/sbin/sshd';
/** sshd refuses to start without its privilege separation directory. */
const PRIVSEP_DIR = '/run/sshd';

export interface Forward {
  /** local port that leads to the target */
  port: number;
  processes: Started[];
  /** e.g. the negotiated cipher, for the record */
  details: Record<string, string>;
  stop(): Promise<void>;
}

export function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The version line a tool prints (the first line, or the first line matching `line`). */
export function toolVersion(command: string, args: string[], line?: RegExp): string {
  // Some tools (ssh -V) print their version on stderr.
  const result = spawnSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  const text = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  return (line ? line.exec(text)?.[0] : text.trim().split('\n')[0]) ?? '';
}

/** `ssh -N -L PORT:127.0.0.1:TARGET` through a fresh sshd. */
export async function startSshForward(targetPort: number, logDir: string): Promise<Forward> {
  const dir = tempDir('db-bench-ssh-');
  if (!existsSync(PRIVSEP_DIR)) {
    mkdirSync(PRIVSEP_DIR, { mode: 0o755 });
    onCleanup(() => rmdirSync(PRIVSEP_DIR));
  }
  const hostKey = join(dir, 'host_ed25519');
  const clientKey = join(dir, 'client_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', clientKey]);
  const authorizedKeys = join(dir, 'authorized_keys');
  execFileSync('cp', [`${clientKey}.pub`, authorizedKeys]);
  const sshdPort = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${sshdPort}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      'PidFile none',
      'StrictModes no',
      'UsePAM no',
      `AuthorizedKeysFile ${authorizedKeys}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'AllowTcpForwarding yes',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  const sshd = await startProcess('sshd', SSHD, ['-D', '-e', '-f', config], { logDir });
  await waitFor(() => canConnect(sshdPort), 10_000, 'sshd listening');
  const localPort = await freePort();
  const ssh = await startProcess(
    'ssh',
    'ssh',
    [
      '-N',
      '-L', `127.0.0.1:${localPort}:127.0.0.1:${targetPort}`,
      '-i', clientKey,
      '-p', String(sshdPort),
      '-o', 'StrictHostKeyChecking=no',
      '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'BatchMode=yes',
      '-o', 'ExitOnForwardFailure=yes',
      `${userInfo().username}@127.0.0.1`,
    ],
    { logDir },
  );
  try {
    await waitFor(() => canConnect(localPort), 15_000, 'ssh -L forward listening');
  } catch (error) {
    throw new Error(`${(error as Error).message}\n--- ssh ---\n${logTail(ssh)}\n--- sshd ---\n${logTail(sshd)}`);
  }
  // sshd accepts every default cipher, so the client's first preference is the one in use.
  const cipher = /^ciphers (\S+)/m.exec(execFileSync('ssh', ['-G', '127.0.0.1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))?.[1]?.split(',')[0] ?? 'unknown';
  return {
    port: localPort,
    processes: [ssh, sshd],
    details: { cipher },
    stop: async () => {
      await stopProcess(ssh);
      await stopProcess(sshd);
    },
  };
}

/** `socat TCP-LISTEN -> TCP`, one forked relay per connection. */
export async function startSocat(targetPort: number, logDir: string): Promise<Forward> {
  const localPort = await freePort();
  const socat = await startProcess(
    'socat',
    'socat',
    [`TCP-LISTEN:${localPort},bind=127.0.0.1,reuseaddr,fork,nodelay`, `TCP:127.0.0.1:${targetPort},nodelay`],
    { logDir },
  );
  await waitFor(() => canConnect(localPort), 10_000, 'socat listening');
  return { port: localPort, processes: [socat], details: {}, stop: () => stopProcess(socat) };
}
