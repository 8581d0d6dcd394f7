import { Command } from 'commander';
import type { EdgeView } from '../../protocol/api-types.js';
import { assertValidName } from '../../util/names.js';
import { addHubFlags, withHub, type HubFlags } from '../context.js';
import { printFields, printJson, printLine, printTable, shortTime } from '../output.js';

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
      printFields(e);
    },
  );

  for (const [verb, method, suffix, help] of [
    ['disable', 'POST', '/disable', 'disable an edge: ends its link and every stream of its devices at once, refuses reconnects'],
    ['enable', 'POST', '/enable', 'enable an edge (its agent reconnects by itself)'],
    ['remove', 'DELETE', '', "remove an edge: forget its keys and end its link; its devices stay registered and must be enrolled again"],
  ] as const) {
    addHubFlags(edges.command(verb).description(help).argument('<name>').option('--json', 'JSON output')).action(
      async (name: string, opts: HubFlags & { json?: boolean }) => {
        assertValidName(name, 'edge name');
        const result = await withHub(opts, (c) => c.request<Record<string, unknown>>(method, `/v1/edges/${name}${suffix}`));
        if (opts.json) return printJson(result);
        printLine(`edge "${name}" ${verb === 'remove' ? 'removed' : verb + 'd'}`);
      },
    );
  }
  return edges;
}
