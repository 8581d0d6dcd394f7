import { Command } from 'commander';
import { DrawbridgeError } from '../../errors.js';
import { parseListenAddress } from '../../util/paths.js';
import { printLine } from '../output.js';
import { onShutdownSignal } from '../signals.js';

export function parseListen(text: string, defaultHost = '0.0.0.0'): { host: string; port: number } {
  const parsed = parseListenAddress(text, defaultHost);
  if (!parsed) throw new DrawbridgeError('VALIDATION_FAILED', `invalid listen address "${text}": use HOST:PORT, e.g. 0.0.0.0:8443`);
  return parsed;
}

export function hubCommand(): Command {
  return new Command('hub')
    .description('run the hub: HTTPS + WSS on one port, embedded store, its own CA on first start')
    .option('--data-dir <dir>', 'where the database, keys and certificates live', './drawbridge-data')
    .option('--listen <host:port>', 'address to listen on', '0.0.0.0:8443')
    .option('--public-url <url>', 'the URL agents and clients dial (default: derived from --listen)')
    .option('--tls-cert <file>', 'use this certificate chain (PEM) instead of the built-in CA')
    .option('--tls-key <file>', 'private key for --tls-cert')
    .option('--config <file>', 'hub config (YAML); default DATA_DIR/hub.yaml if present')
    .action(async (opts: { dataDir: string; listen: string; publicUrl?: string; tlsCert?: string; tlsKey?: string; config?: string }) => {
      if (Boolean(opts.tlsCert) !== Boolean(opts.tlsKey)) throw new DrawbridgeError('VALIDATION_FAILED', '--tls-cert and --tls-key go together');
      if (opts.publicUrl && !/^https:\/\/[^/]+\/?$/.test(opts.publicUrl)) {
        throw new DrawbridgeError('VALIDATION_FAILED', `--public-url must be https://HOST[:PORT] (got "${opts.publicUrl}")`);
      }
      const { host, port } = parseListen(opts.listen);
      const { startHub } = await import('../../hub/hub.js');
      const hub = await startHub({
        dataDir: opts.dataDir,
        host,
        port,
        ...(opts.publicUrl ? { publicUrl: opts.publicUrl } : {}),
        ...(opts.tlsCert && opts.tlsKey ? { tlsCertFile: opts.tlsCert, tlsKeyFile: opts.tlsKey } : {}),
        ...(opts.config ? { configFile: opts.config } : {}),
      });
      const bound = host.includes(':') ? `[${host}]` : host;
      const lines = [
        `drawbridge hub listening on https://${bound}:${hub.port} (public URL ${hub.publicUrl})`,
        `data directory: ${hub.dataDir}`,
        `${hub.caPin.startsWith('spki:') ? 'key pin' : 'CA pin'}: ${hub.caPin}`,
        ...(hub.bootstrapAdminToken
          ? [
              '',
              `admin token (shown once; also kept in ${hub.adminTokenFile}, mode 0600):`,
              `  ${hub.bootstrapAdminToken}`,
              '',
              'log in with:',
              `  drawbridge login --hub ${hub.publicUrl} --token ${hub.bootstrapAdminToken} --ca-pin ${hub.caPin}`,
            ]
          : [`admin token: in ${hub.adminTokenFile}`]),
      ];
      for (const line of lines) printLine(line);
      onShutdownSignal(() => hub.close());
    });
}
