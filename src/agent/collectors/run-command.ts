/**
 * Runs a collector's command (sshd -T, nft, iptables-save) with a time limit and a cap on
 * its output, never through a shell. /usr/sbin and /sbin are searched too: those tools live
 * there, and an unprivileged agent's PATH often lacks them.
 */
import { spawn } from 'node:child_process';

export interface CommandOutput {
  code: number | null;
  stdout: string;
  stderr: string;
}

export async function runCommand(argv: readonly string[], options: { timeoutMs?: number; maxBytes?: number } = {}): Promise<CommandOutput> {
  const [file, ...args] = argv as [string, ...string[]];
  const maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
  const path = [process.env['PATH'] ?? '', '/usr/sbin', '/sbin', '/usr/bin', '/bin'].filter(Boolean).join(':');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: path, LC_ALL: 'C' } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let overflow = false;
    child.stdout.on('data', (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes > maxBytes) {
        overflow = true;
        child.kill('SIGKILL');
      } else out.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if ((errBytes += chunk.length) <= 8192) err.push(chunk);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 10_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (overflow) return reject(new Error(`${file} printed more than ${maxBytes} bytes`));
      if (signal === 'SIGKILL') return reject(new Error(`${file} did not finish within ${options.timeoutMs ?? 10_000} ms`));
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** The last line of a command's error output, for a source's state message. */
export function lastLine(text: string): string {
  return text.trim().split('\n').pop()?.slice(0, 200) ?? '';
}
