/** Shared CLI plumbing: credential flags and a connected HubClient. */
import type { Command } from 'commander';
import type { HubClient } from '../client/hub-client.js';

export interface HubFlags {
  hub?: string;
  token?: string;
  caPin?: string;
}

export function addHubFlags(command: Command): Command {
  return command
    .option('--hub <url>', 'hub URL (default: from drawbridge login, or $DRAWBRIDGE_HUB)')
    .option('--token <token>', 'API token (default: from drawbridge login, or $DRAWBRIDGE_TOKEN)')
    .option('--ca-pin <pin>', 'pin of the hub CA, sha256:HEX (default: from login, or $DRAWBRIDGE_CA_PIN)');
}

export async function connectHub(flags: HubFlags): Promise<HubClient> {
  // Loaded on use: `drawbridge --version` and `--help` never pay for the client's modules.
  const [{ HubClient }, { resolveCredentials }] = await Promise.all([import('../client/hub-client.js'), import('../client/credentials.js')]);
  return HubClient.connect(resolveCredentials({ hub: flags.hub, token: flags.token, caPin: flags.caPin }));
}

/** Runs `fn` with a connected client and always releases its sockets. */
export async function withHub<T>(flags: HubFlags, fn: (client: HubClient) => Promise<T>): Promise<T> {
  const client = await connectHub(flags);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** commander collector for repeatable options (--tag k=v --tag k2=v2) */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
