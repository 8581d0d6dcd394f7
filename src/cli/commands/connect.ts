import { spawn } from 'node:child_process';
import { Command } from 'commander';
import { DrawbridgeError } from '../../errors.js';
import { assertValidName } from '../../util/names.js';
import { addHubFlags, connectHub, type HubFlags } from '../context.js';
import { formatBytes, printJsonLine, printLine, printNotice } from '../output.js';
import { onShutdownSignal } from '../signals.js';
import { parseListen } from './hub.js';

const tunnelModule = (): Promise<typeof import('../../client/tunnel.js')> => import('../../client/tunnel.js');

export function connectCommand(): Command {
  return addHubFlags(
    new Command('connect')
      .description('listen locally; each accepted TCP connection becomes its own stream to the device')
      .argument('<device>')
      .option('--listen <host:port>', 'local address (port 0 picks a free one)', '127.0.0.1:0')
      .option('--json', 'print the listening address as JSON'),
  ).action(async (device: string, opts: HubFlags & { listen: string; json?: boolean }) => {
    assertValidName(device, 'device name');
    const { host, port } = parseListen(opts.listen, '127.0.0.1');
    const client = await connectHub(opts);
    // Fail fast on a device that does not exist; warn (but keep listening) if it is offline now.
    const info = await client.request<{ online: boolean; enabled: boolean }>('GET', `/v1/devices/${device}`).catch((error: unknown) => {
      client.close();
      throw error;
    });
    // The link is dialled now, so a refused token or an unreachable hub fails at once, and
    // the first connection needs no handshake of its own.
    await client.link().ensure().catch((error: unknown) => {
      client.close();
      throw error;
    });
    if (!info.enabled) printNotice(`drawbridge: warning: device "${device}" is disabled; connections will be refused until it is enabled`);
    else if (!info.online) printNotice(`drawbridge: warning: device "${device}" is offline right now; connections will fail until its agent connects`);
    const { openTunnel } = await tunnelModule();
    const tunnel = await openTunnel({
      client,
      device,
      host,
      port,
      onEvent: (e) => {
        if (e.type === 'error') printNotice(`drawbridge: ${e.remote}: ${e.error?.code}: ${e.error?.message}`);
        else if (e.type === 'close' && e.result) {
          printNotice(`drawbridge: ${e.remote}: closed (${formatBytes(e.result.bytesSent)} sent, ${formatBytes(e.result.bytesReceived)} received)`);
        }
      },
    });
    if (opts.json) printJsonLine({ device, host: tunnel.host, port: tunnel.port });
    else printLine(`forwarding ${tunnel.host}:${tunnel.port} -> ${device} (Ctrl-C to stop)`);
    onShutdownSignal(async () => {
      await tunnel.close();
      client.close();
    });
  });
}

export function proxyCommand(): Command {
  return addHubFlags(
    new Command('proxy')
      .description("one stream on stdin/stdout, for ssh -o ProxyCommand='drawbridge proxy %h'")
      .argument('<device>'),
  ).action(async (device: string, opts: HubFlags) => {
    assertValidName(device, 'device name');
    const client = await connectHub(opts);
    try {
      const { runProxy } = await tunnelModule();
      // ssh ends its ProxyCommand with SIGHUP when the session is over; any stop signal
      // ends the stream in order instead of killing it mid-way.
      const stopping = new Promise<void>((resolve) => {
        for (const signal of ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGPIPE'] as const) process.once(signal, () => resolve());
      });
      const error = await runProxy(client, device, process.stdin, process.stdout, stopping);
      if (error) throw error;
    } finally {
      client.close();
    }
  });
}

export function sshCommand(): Command {
  return addHubFlags(
    new Command('ssh')
      .description('run the system ssh through "drawbridge proxy" (arguments after -- go to ssh)')
      .argument('<device>', 'device name, optionally user@device')
      .argument('[sshArgs...]', 'extra ssh arguments')
      .allowUnknownOption(true),
  ).action(async (target: string, sshArgs: string[], opts: HubFlags) => {
    const at = target.lastIndexOf('@');
    const device = at >= 0 ? target.slice(at + 1) : target;
    assertValidName(device, 'device name');
    // Credentials reach the proxy through the environment, never the process list.
    const env = {
      ...process.env,
      ...(opts.hub ? { DRAWBRIDGE_HUB: opts.hub } : {}),
      ...(opts.token ? { DRAWBRIDGE_TOKEN: opts.token } : {}),
      ...(opts.caPin ? { DRAWBRIDGE_CA_PIN: opts.caPin } : {}),
    };
    const self = [process.execPath, process.argv[1] as string, 'proxy', device].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    // The destination goes before the user's arguments: ssh takes the first operand as the
    // destination and the rest as the remote command, and OpenSSH still parses options
    // given after the destination, so `-- -i KEY 'uname -a'` works as expected.
    const child = spawn('ssh', ['-o', `ProxyCommand=${self}`, '-o', `HostKeyAlias=drawbridge-${device}`, target, ...sshArgs], { stdio: 'inherit', env });
    const code = await new Promise<number>((resolve, reject) => {
      child.once('error', (error: NodeJS.ErrnoException) =>
        reject(new DrawbridgeError('INTERNAL', error.code === 'ENOENT' ? 'ssh is not installed (install openssh-client)' : error.message)),
      );
      child.once('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
    });
    process.exitCode = code;
  });
}
