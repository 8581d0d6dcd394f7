/**
 * The baselines that are not Drawbridge, each through throwaway OpenSSH processes with
 * fresh keys in a temp dir and default ciphers (only what a throwaway setup needs is
 * configured):
 *  - `ssh -L`: local forwarding through an sshd on 127.0.0.1.
 *  - the reverse-SSH bastion chain, what people build by hand for devices behind NAT: a
 *    bastion sshd; the device side runs `ssh -N -R` to it, exposing the target on a
 *    bastion port; the operator side runs `ssh -N -L` to the bastion, forwarding to that port.
 *  - a plain socat relay.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { canConnect, freePort, logTail, onCleanup, startProcess, stopProcess, tempDir, waitFor, type Started } from './processes.js';

export const SSHD = '/usr/sbin/sshd';
/** sshd refuses to start without its privilege separation directory. */
const PRIVSEP_DIR = '/run/sshd';

/** A process that carries a path's bytes, under the name the report uses. */
export interface RelayProcess {
  name: string;
  pid: number;
}

export interface Forward {
  /** local port that leads to the target */
  port: number;
  /** the processes that carry this path's bytes: CPU is read for each (with its children) */
  processes: RelayProcess[];
  /** e.g. the negotiated cipher, for the record */
  details: Record<string, string>;
  /** Resolves once the relay holds no stream of an earlier measurement (where it can tell). */
  settle(): Promise<void>;
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

/** Why the OpenSSH paths cannot run here, or undefined when they can. */
export function sshMissing(): string | undefined {
  return existsSync(SSHD) && hasCommand('ssh') && hasCommand('ssh-keygen') ? undefined : `${SSHD}, ssh or ssh-keygen is not installed`;
}

/** The version line a tool prints (the first line, or the first line matching `line`). */
export function toolVersion(command: string, args: string[], line?: RegExp): string {
  // Some tools (ssh -V) print their version on stderr.
  const result = spawnSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  const text = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  return (line ? line.exec(text)?.[0] : text.trim().split('\n')[0]) ?? '';
}

/** The cipher ssh uses: sshd accepts every default cipher, so the client's first preference. */
function sshCipher(): string {
  const config = execFileSync('ssh', ['-G', '127.0.0.1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return /^ciphers (\S+)/m.exec(config)?.[1]?.split(',')[0] ?? 'unknown';
}

function newKey(dir: string, name: string): string {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path]);
  return path;
}

interface Sshd {
  process: Started;
  port: number;
  /** private keys of the clients sshd accepts, in the order asked for */
  clientKeys: string[];
}

/** A throwaway sshd on 127.0.0.1 that accepts `clients` fresh client keys. */
async function startSshd(name: string, clients: number, logDir: string): Promise<Sshd> {
  const dir = tempDir(`db-bench-${name}-`);
  if (!existsSync(PRIVSEP_DIR)) {
    mkdirSync(PRIVSEP_DIR, { mode: 0o755 });
    onCleanup(() => rmdirSync(PRIVSEP_DIR));
  }
  const hostKey = newKey(dir, 'host_ed25519');
  const clientKeys = Array.from({ length: clients }, (_, i) => newKey(dir, `client${i}_ed25519`));
  const authorizedKeys = join(dir, 'authorized_keys');
  writeFileSync(authorizedKeys, clientKeys.map((k) => readFileSync(`${k}.pub`, 'utf8')).join(''));
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
  const started = await startProcess(name, SSHD, ['-D', '-e', '-f', config], { logDir });
  await waitFor(() => canConnect(port), 10_000, `${name} listening`);
  return { process: started, port, clientKeys };
}

/** `ssh -N` to a throwaway sshd with one forwarding option (-L or -R). */
function startSshClient(name: string, sshd: Sshd, key: string, forward: string[], logDir: string): Promise<Started> {
  return startProcess(
    name,
    'ssh',
    [
      '-N',
      ...forward,
      '-i', key,
      '-p', String(sshd.port),
      '-o', 'StrictHostKeyChecking=no',
      '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'BatchMode=yes',
      '-o', 'ExitOnForwardFailure=yes',
      `${userInfo().username}@127.0.0.1`,
    ],
    { logDir },
  );
}

async function listening(port: number, what: string, logs: Started[]): Promise<void> {
  try {
    await waitFor(() => canConnect(port), 15_000, what);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${logs.map((s) => `--- ${s.name} ---\n${logTail(s)}`).join('\n')}`);
  }
}

const settled = (): Promise<void> => Promise.resolve();

/** `ssh -N -L PORT:127.0.0.1:TARGET` through a fresh sshd. */
export async function startSshForward(targetPort: number, logDir: string): Promise<Forward> {
  const sshd = await startSshd('sshd', 1, logDir);
  const localPort = await freePort();
  const ssh = await startSshClient('ssh-L', sshd, sshd.clientKeys[0] as string, ['-L', `127.0.0.1:${localPort}:127.0.0.1:${targetPort}`], logDir);
  await listening(localPort, 'ssh -L forward listening', [ssh, sshd.process]);
  return {
    port: localPort,
    processes: [{ name: 'ssh', pid: ssh.pid }, { name: 'sshd', pid: sshd.process.pid }],
    details: { cipher: sshCipher() },
    settle: settled,
    stop: async () => {
      await stopProcess(ssh);
      await stopProcess(sshd.process);
    },
  };
}

/**
 * The reverse-SSH bastion chain: operator -> `ssh -L` -> bastion sshd -> (bastion port)
 * -> `ssh -R` on the device -> target. Two SSH connections, both to one bastion sshd.
 */
export async function startBastionChain(targetPort: number, logDir: string): Promise<Forward> {
  const bastion = await startSshd('bastion-sshd', 2, logDir);
  const [deviceKey, operatorKey] = bastion.clientKeys as [string, string];
  const bastionPort = await freePort();
  const device = await startSshClient('bastion-ssh-R', bastion, deviceKey, ['-R', `127.0.0.1:${bastionPort}:127.0.0.1:${targetPort}`], logDir);
  // Probing the bastion port opens (and at once closes) one connection to the target.
  await listening(bastionPort, 'ssh -R forward listening on the bastion', [device, bastion.process]);
  const localPort = await freePort();
  const operator = await startSshClient('bastion-ssh-L', bastion, operatorKey, ['-L', `127.0.0.1:${localPort}:127.0.0.1:${bastionPort}`], logDir);
  await listening(localPort, 'ssh -L forward to the bastion listening', [operator, bastion.process]);
  return {
    port: localPort,
    processes: [
      { name: 'ssh -L', pid: operator.pid },
      { name: 'sshd', pid: bastion.process.pid },
      { name: 'ssh -R', pid: device.pid },
    ],
    details: { cipher: sshCipher(), bastionPort: String(bastionPort) },
    settle: settled,
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
  await listening(localPort, 'socat listening', [socat]);
  return { port: localPort, processes: [{ name: 'socat', pid: socat.pid }], details: {}, settle: settled, stop: () => stopProcess(socat) };
}

/** No relay: the load generator talks to the target itself. */
export function directPath(targetPort: number): Forward {
  return { port: targetPort, processes: [], details: {}, settle: settled, stop: () => Promise.resolve() };
}
