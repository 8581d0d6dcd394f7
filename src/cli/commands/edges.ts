import { Command } from 'commander';
import type { EdgeSecretView, EdgeView } from '../../protocol/api-types.js';
import { assertValidName } from '../../util/names.js';
import { addHubFlags, withHub, type HubFlags } from '../context.js';
import { printFields, printJson, printLine, printNotice, printTable, shortTime } from '../output.js';

export function edgesCommand(): Command {
  const edges = new Command('edges').description('edges: the hosts agents run on, each with its own keys, hosting virtual devices');

  addHubFlags(edges.command('list').description('list edges').option('--json', 'JSON output')).action(async (opts: HubFlags & { json?: boolean }) => {
    const { edges: list } = await withHub(opts, (c) => c.request<{ edges: EdgeView[] }>('GET', '/v1/edges'));
    if (opts.json) return printJson(list);
    printTable(
      ['name', 'enabled', 'online', 'devices', 'host', 'agent', 'remote address', 'last seen'],
      list.map((e) => [e.name, e.enabled ? 'yes' : 'no', e.online ? 'yes' : 'no', `${e.devicesOnline}/${e.devices.length}`, e.hostname, e.agentVersion, e.remoteAddress, shortTime(e.lastSeenAt)]),
    );
  });

  addHubFlags(edges.command('show').description('show one edge and the devices it hosts').argument('<name>').option('--json', 'JSON output')).action(
    async (name: string, opts: HubFlags & { json?: boolean }) => {
      assertValidName(name, 'edge name');
      const e = await withHub(opts, (c) => c.request<EdgeView & Record<string, unknown>>('GET', `/v1/edges/${name}`));
      if (opts.json) return printJson(e);
      const { secrets, ...rest } = e as typeof e & { secrets?: EdgeSecretView[] };
      printFields(rest);
      if (secrets) {
        printLine('secrets held:');
        printTable(['secret', 'version', 'delivered', 'last read', 'reads'], secrets.map((x) => [x.name, x.version, shortTime(x.deliveredAt), shortTime(x.lastReadAt), x.reads]));
      }
    },
  );

  for (const [verb, method, suffix, help] of [
    ['disable', 'POST', '/disable', 'disable an edge: ends its link and every stream of its devices at once, refuses reconnects'],
    ['enable', 'POST', '/enable', 'enable an edge (its agent reconnects by itself)'],
    ['remove', 'DELETE', '', "remove an edge: take back its secrets (if online), forget its keys and end its link; its devices stay registered and must be enrolled again"],
  ] as const) {
    addHubFlags(edges.command(verb).description(help).argument('<name>').option('--json', 'JSON output')).action(
      async (name: string, opts: HubFlags & { json?: boolean }) => {
        assertValidName(name, 'edge name');
        const result = await withHub(opts, (c) => c.request<Record<string, unknown>>(method, `/v1/edges/${name}${suffix}`));
        if (opts.json) return printJson(result);
        printLine(`edge "${name}" ${verb === 'remove' ? 'removed' : verb + 'd'}`);
        const left = result['secretsLeftOnEdge'];
        if (Array.isArray(left) && left.length > 0) {
          printNotice(`the edge was offline or did not answer: its encrypted cache still holds ${left.length} secret(s); rotate them or wipe the agent's data directory`);
        }
      },
    );
  }
  return edges;
}
