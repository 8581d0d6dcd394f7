/** Shared CLI plumbing: credential flags and a connected HubClient. */
import type { Command } from 'commander';
import { HubClient } from '../client/hub-client.js';
import { resolveCredentials } from '../client/credentials.js';

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
