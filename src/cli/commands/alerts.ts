import { Command } from 'commander';
import { DrawbridgeError } from '../../errors.js';
import type { AlertView, FindingView } from '../../protocol/api-types.js';
import { assertValidName } from '../../util/names.js';
import { addHubFlags, withHub, type HubFlags } from '../context.js';
import { printJson, printTable, shortTime, printLine } from '../output.js';

const ALERT_STATUSES = ['open', 'acked', 'resolved'];
const FINDING_STATUSES = ['open', 'resolved', 'muted'];

function checkId(id: string, prefix: 'al' | 'fd'): string {
  if (!new RegExp(`^${prefix}_[0-9a-f]{16}$`).test(id)) {
    throw new DrawbridgeError('VALIDATION_FAILED', `invalid ${prefix === 'al' ? 'alert' : 'finding'} id "${id.slice(0, 40)}" (it looks like ${prefix}_0123456789abcdef)`);
  }
  return id;
}

function checkStatus(status: string | undefined, allowed: string[]): string | undefined {
  if (status !== undefined && !allowed.includes(status)) throw new DrawbridgeError('VALIDATION_FAILED', `--status must be one of ${allowed.join(', ')} (got "${status.slice(0, 20)}")`);
  return status;
}

/** The facts a reader looks for first, in one short cell. */
export function factsSummary(facts: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const key of ['sourceAddress', 'user', 'protocol', 'address', 'port', 'process', 'via', 'inputPolicy', 'permitRootLogin', 'userCount']) {
    const value = facts[key];
    if (value !== undefined && value !== null) parts.push(`${key}=${String(value)}`);
  }
  return parts.join(' ');
}

/** Field/value rows for a record shown on its own. */
function fieldRows(record: object): [string, string][] {
  return Object.entries(record).map(([key, value]) => [key, value === null || value === undefined ? '-' : typeof value === 'object' ? JSON.stringify(value) : String(value)]);
}

function printAlert(alert: AlertView): void {
  const { evidence, ...rest } = alert;
  printTable(['field', 'value'], fieldRows(rest));
  if (evidence && evidence.length > 0) {
    printLine('');
    printTable(['evidence'], evidence.map((line) => [line]));
  }
}

export function alertsCommand(): Command {
  const alerts = new Command('alerts').description('security alerts raised from edge telemetry (brute force, new ports, new admins, ...)');

  addHubFlags(
    alerts.command('list').description('list alerts, newest activity first')
      .option('--edge <name>', 'only this edge')
      .option('--status <status>', 'open | acked | resolved')
      .option('--rule <rule>', 'only this rule, e.g. ssh-brute-force')
      .option('--limit <n>', 'at most this many (default 500)')
      .option('--json', 'JSON output'),
  ).action(async (opts: HubFlags & { edge?: string; status?: string; rule?: string; limit?: string; json?: boolean }) => {
    const q = new URLSearchParams();
    if (opts.edge) q.set('edge', assertValidName(opts.edge, 'edge name'));
    if (checkStatus(opts.status, ALERT_STATUSES)) q.set('status', opts.status as string);
    if (opts.rule) q.set('rule', opts.rule);
    if (opts.limit) q.set('limit', opts.limit);
    const { alerts: list } = await withHub(opts, (c) => c.request<{ alerts: AlertView[] }>('GET', `/v1/alerts?${q}`));
    if (opts.json) return printJson(list);
    printTable(
      ['id', 'severity', 'rule', 'edge', 'status', 'count', 'facts', 'last seen'],
      list.map((a) => [a.id, a.severity, a.rule, a.edge, a.status, a.count, factsSummary(a.facts), shortTime(a.lastSeen)]),
    );
  });

  addHubFlags(alerts.command('show').description('show one alert with its evidence').argument('<id>').option('--json', 'JSON output')).action(
    async (id: string, opts: HubFlags & { json?: boolean }) => {
      const alert = await withHub(opts, (c) => c.request<AlertView>('GET', `/v1/alerts/${checkId(id, 'al')}`));
      if (opts.json) return printJson(alert);
      printAlert(alert);
    },
  );

  for (const [verb, help, done] of [
    ['ack', 'acknowledge an open alert (someone is on it)', 'acknowledged'],
    ['resolve', 'resolve an open or acknowledged alert (the rule firing again opens a new one)', 'resolved'],
  ] as const) {
    addHubFlags(alerts.command(verb).description(help).argument('<id>').option('--note <text>', 'note for the record').option('--json', 'JSON output')).action(
      async (id: string, opts: HubFlags & { note?: string; json?: boolean }) => {
        const alert = await withHub(opts, (c) => c.request<AlertView>('POST', `/v1/alerts/${checkId(id, 'al')}/${verb}`, opts.note ? { note: opts.note } : {}));
        if (opts.json) return printJson(alert);
        printTable(['alert', 'rule', 'edge', 'status'], [[alert.id, alert.rule, alert.edge, done]]);
      },
    );
  }
  return alerts;
}

export function findingsCommand(): Command {
  const findings = new Command('findings').description("recommendations from each edge's current state (open ports, permissive firewall, SSH settings); they resolve when fixed");

  addHubFlags(
    findings.command('list').description('list findings (open and muted ones first)')
      .option('--edge <name>', 'only this edge')
      .option('--status <status>', 'open | resolved | muted')
      .option('--json', 'JSON output'),
  ).action(async (opts: HubFlags & { edge?: string; status?: string; json?: boolean }) => {
    const q = new URLSearchParams();
    if (opts.edge) q.set('edge', assertValidName(opts.edge, 'edge name'));
    if (checkStatus(opts.status, FINDING_STATUSES)) q.set('status', opts.status as string);
    const { findings: list } = await withHub(opts, (c) => c.request<{ findings: FindingView[] }>('GET', `/v1/findings?${q}`));
    if (opts.json) return printJson(list);
    printTable(
      ['id', 'severity', 'rule', 'edge', 'status', 'facts', 'since', 'muted because'],
      list.map((f) => [f.id, f.severity, f.rule, f.edge, f.status, factsSummary(f.facts), shortTime(f.firstSeen), f.mute?.reason]),
    );
  });

  addHubFlags(
    findings.command('mute').description('mute a finding on its edge, with a reason (audited)').argument('<id>').requiredOption('--reason <text>', 'why this is accepted here').option('--json', 'JSON output'),
  ).action(async (id: string, opts: HubFlags & { reason: string; json?: boolean }) => {
    if (!opts.reason.trim()) throw new DrawbridgeError('VALIDATION_FAILED', '--reason must not be empty');
    const finding = await withHub(opts, (c) => c.request<FindingView>('POST', `/v1/findings/${checkId(id, 'fd')}/mute`, { reason: opts.reason }));
    if (opts.json) return printJson(finding);
    printTable(['finding', 'rule', 'edge', 'status'], [[finding.id, finding.rule, finding.edge, finding.status]]);
  });

  addHubFlags(findings.command('unmute').description('unmute a finding (audited)').argument('<id>').option('--json', 'JSON output')).action(
    async (id: string, opts: HubFlags & { json?: boolean }) => {
      const finding = await withHub(opts, (c) => c.request<FindingView>('POST', `/v1/findings/${checkId(id, 'fd')}/unmute`));
      if (opts.json) return printJson(finding);
      printTable(['finding', 'rule', 'edge', 'status'], [[finding.id, finding.rule, finding.edge, finding.status]]);
    },
  );
  return findings;
}
