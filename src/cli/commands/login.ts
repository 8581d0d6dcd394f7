import { Command } from 'commander';
import { DrawbridgeError } from '../../errors.js';
import { printJsonLine, printLine } from '../output.js';

export function loginCommand(): Command {
  return new Command('login')
    .description('check and store hub credentials (mode 0600, in the user config dir)')
    .requiredOption('--hub <url>', 'hub URL, e.g. https://hub.example:8443')
    .requiredOption('--token <token>', 'API token')
    .option('--ca-pin <pin>', 'pin of the hub CA (sha256:HEX, printed by the hub); omit for a publicly trusted certificate')
    .option('--json', 'JSON output')
    .action(async (opts: { hub: string; token: string; caPin?: string; json?: boolean }) => {
      let url: URL;
      try {
        url = new URL(opts.hub);
      } catch {
        throw new DrawbridgeError('VALIDATION_FAILED', `invalid hub URL "${opts.hub}"`);
      }
      if (url.protocol !== 'https:') throw new DrawbridgeError('VALIDATION_FAILED', `the hub URL must start with https:// (got "${opts.hub}")`);
      const [{ saveCredentials }, { HubClient }, { normalizePin }] = await Promise.all([
        import('../../client/credentials.js'),
        import('../../client/hub-client.js'),
        import('../../client/trust.js'),
      ]);
      const credentials = { hubUrl: url.origin, token: opts.token, ...(opts.caPin ? { caPin: normalizePin(opts.caPin) } : {}) };
      const client = await HubClient.connect(credentials);
      try {
        const me = await client.request<{ name: string; role: string }>('GET', '/v1/whoami');
        const path = saveCredentials(credentials);
        if (opts.json) printJsonLine({ ...me, hubUrl: credentials.hubUrl, credentialsFile: path });
        else printLine(`logged in to ${credentials.hubUrl} as ${me.name} (${me.role}); credentials saved to ${path}`);
      } finally {
        client.close();
      }
    });
}
