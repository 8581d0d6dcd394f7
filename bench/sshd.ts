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

interface SshServer {
  port: number;
  clientKey: string;
  process: Started;
}

/** A throwaway sshd on 127.0.0.1 with its own host key and one authorized client key. */
async function startSshServer(logDir: string): Promise<SshServer> {
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
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
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
  const sshd = await startProcess(`sshd-${port}`, SSHD, ['-D', '-e', '-f', config], { logDir });
  await waitFor(() => canConnect(port), 10_000, 'sshd listening');
  return { port, clientKey, process: sshd };
}

/** An `ssh -N` client to `server` with the given forwarding flags. */
function startSshClient(name: string, server: SshServer, forward: string[], logDir: string): Promise<Started> {
  return startProcess(
    name,
    'ssh',
    [
      '-N',
      ...forward,
      '-i', server.clientKey,
      '-p', String(server.port),
      '-o', 'StrictHostKeyChecking=no',
      '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'BatchMode=yes',
      '-o', 'ExitOnForwardFailure=yes',
      '-o', 'ServerAliveInterval=0',
      `${userInfo().username}@127.0.0.1`,
    ],
    { logDir },
  );
}

function defaultCipher(): string {
  // sshd accepts every default cipher, so the client's first preference is the one in use.
  return /^ciphers (\S+)/m.exec(execFileSync('ssh', ['-G', '127.0.0.1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))?.[1]?.split(',')[0] ?? 'unknown';
}

/** `ssh -N -L PORT:127.0.0.1:TARGET` through a fresh sshd. */
export async function startSshForward(targetPort: number, logDir: string): Promise<Forward> {
  const server = await startSshServer(logDir);
  const localPort = await freePort();
  const ssh = await startSshClient('ssh-L', server, ['-L', `127.0.0.1:${localPort}:127.0.0.1:${targetPort}`], logDir);
  try {
    await waitFor(() => canConnect(localPort), 15_000, 'ssh -L forward listening');
  } catch (error) {
    throw new Error(`${(error as Error).message}\n--- ssh ---\n${logTail(ssh)}\n--- sshd ---\n${logTail(server.process)}`);
  }
  return {
    port: localPort,
    processes: [ssh, server.process],
    details: { cipher: defaultCipher() },
    stop: async () => {
      await stopProcess(ssh);
      await stopProcess(server.process);
    },
  };
}

/**
 * The tunnel people build by hand for devices behind NAT, the same shape as Drawbridge: the
 * device runs `ssh -N -R` to a bastion (a throwaway sshd), exposing its target on a bastion
 * port; the operator runs `ssh -N -L` to the same bastion, forwarding to that port.
 */
export async function startBastionChain(targetPort: number, logDir: string): Promise<Forward> {
  const bastion = await startSshServer(logDir);
  const exposed = await freePort();
  const device = await startSshClient('ssh-R-device', bastion, ['-R', `127.0.0.1:${exposed}:127.0.0.1:${targetPort}`], logDir);
  await waitFor(() => canConnect(exposed), 15_000, 'ssh -R exposed on the bastion');
  const localPort = await freePort();
  const operator = await startSshClient('ssh-L-operator', bastion, ['-L', `127.0.0.1:${localPort}:127.0.0.1:${exposed}`], logDir);
  try {
    await waitFor(() => canConnect(localPort), 15_000, 'ssh -L to the bastion listening');
  } catch (error) {
    throw new Error(`${(error as Error).message}\n--- operator ssh ---\n${logTail(operator)}\n--- bastion ---\n${logTail(bastion.process)}`);
  }
  return {
    port: localPort,
    processes: [operator, bastion.process, device],
    details: { cipher: defaultCipher() },
    stop: async () => {
      await stopProcess(operator);
      await stopProcess(device);
      await stopProcess(bastion.process);
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
