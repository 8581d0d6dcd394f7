import { Command } from 'commander';
import type { EdgeSecretView, EdgeView, PostureView } from '../../protocol/api-types.js';
import { factsSummary } from './alerts.js';
import { assertValidName } from '../../util/names.js';
import { addHubFlags, withHub, type HubFlags } from '../context.js';
import { printFields, printJson, printLine, printNotice, printTable, shortTime } from '../output.js';

export function edgesCommand(): Command {
  const edges = new Command('edges').description('edges: the hosts agents run on, each with its own keys, hosting virtual devices');

  addHubFlags(edges.command('list').description('list edges, most attacked first (open alerts, then failed logins in the last day)').option('--json', 'JSON output')).action(async (opts: HubFlags & { json?: boolean }) => {
    const { edges: list } = await withHub(opts, (c) => c.request<{ edges: EdgeView[] }>('GET', '/v1/edges'));
    if (opts.json) return printJson(list);
    printTable(
      ['name', 'enabled', 'online', 'devices', 'alerts', 'findings', 'failed logins 24h', 'host', 'agent', 'remote address', 'last seen'],
      list.map((e) => [
        e.name, e.enabled ? 'yes' : 'no', e.online ? 'yes' : 'no', `${e.devicesOnline}/${e.devices.length}`,
        e.monitoring?.openAlerts, e.monitoring?.openFindings, e.monitoring?.failedLogins24h,
        e.hostname, e.agentVersion, e.remoteAddress, shortTime(e.lastSeenAt),
      ]),
    );
  });

  addHubFlags(edges.command('show').description('show one edge and the devices it hosts').argument('<name>').option('--json', 'JSON output')).action(
    async (name: string, opts: HubFlags & { json?: boolean }) => {
      assertValidName(name, 'edge name');
      const e = await withHub(opts, (c) => c.request<EdgeView & { posture?: PostureView | null } & Record<string, unknown>>('GET', `/v1/edges/${name}`));
      if (opts.json) return printJson(e);
      const { secrets, posture, monitoring, ...identity } = e as typeof e & { secrets?: EdgeSecretView[] };
      printFields(identity);
      if (secrets) {
        printLine('');
        printLine('secrets held:');
        printTable(['secret', 'version', 'delivered', 'last read', 'reads'], secrets.map((x) => [x.name, x.version, shortTime(x.deliveredAt), shortTime(x.lastReadAt), x.reads]));
      }
      if (posture) printPosture(posture, monitoring ?? null);
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

/** An edge's security posture as sections of small tables (every value goes through printTable). */
function printPosture(p: PostureView, summary: EdgeView['monitoring'] | null): void {
  const section = (title: string): void => {
    printLine('');
    printLine(title);
  };
  section('security posture');
  const facts = p.facts ?? {};
  printTable(['field', 'value'], [
    ['last telemetry', shortTime(p.lastTelemetryAt)],
    ['os', facts['os'] as string | undefined],
    ['kernel', facts['kernel'] as string | undefined],
    ['agent', facts['agent'] as string | undefined],
    ['uptime', p.uptimeSeconds === null ? null : `${Math.floor(p.uptimeSeconds / 86_400)}d ${Math.floor((p.uptimeSeconds % 86_400) / 3600)}h`],
    ['failed logins 24h', summary?.failedLogins24h],
    ['ssh', p.sshd ? `root login ${String(p.sshd['permitRootLogin'])}, passwords ${String(p.sshd['passwordAuthentication'])}, empty passwords ${String(p.sshd['permitEmptyPasswords'])}, port ${String(p.sshd['ports'])}` : null],
    ['firewall', p.firewall ? `${String(p.firewall['backend'])}, input policy ${String(p.firewall['inputPolicy'])}${p.firewall.permissive ? ' (permissive)' : ''}` : null],
    ['accounts', p.accounts],
    ['privileged', p.privilegedAccounts.map((a) => `${a.user} (${a.via})`).join(', ')],
    ['telemetry received', p.telemetryBytesReceived],
    ['events dropped on edge', p.eventsDropped],
  ]);
  section('listening ports');
  printTable(['protocol', 'address', 'port', 'process'], p.listeningPorts.map((x) => [x.protocol, x.address, x.port, x.process]));
  section('open alerts');
  printTable(['id', 'severity', 'rule', 'count', 'facts', 'last seen'], p.openAlerts.map((a) => [a.id, a.severity, a.rule, a.count, factsSummary(a.facts), shortTime(a.lastSeen)]));
  section('findings');
  printTable(['id', 'severity', 'rule', 'status', 'facts'], p.findings.map((f) => [f.id, f.severity, f.rule, f.status, factsSummary(f.facts)]));
  section('collector sources');
  printTable(['source', 'state', 'message'], p.sources.map((x) => [x.source, x.state, x.message]));
}
