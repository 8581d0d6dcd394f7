import { Command } from 'commander';
import { DrawbridgeError } from '../../errors.js';
import { formatDuration, parseDuration } from '../../util/duration.js';
import { assertValidName } from '../../util/names.js';
import { addHubFlags, withHub, type HubFlags } from '../context.js';
import { printFields, printJson, printLine, printNotice, printTable, shortTime } from '../output.js';
import type { AccessView } from '../../protocol/api-types.js';


const ID = /^ar_[0-9a-f]{16}$/;
function checkId(id: string): string {
  if (!ID.test(id)) throw new DrawbridgeError('VALIDATION_FAILED', `invalid access request id "${id}" (it looks like ar_0123456789abcdef)`);
  return id;
}

function describe(r: AccessView): string {
  switch (r.status) {
    case 'approved':
      return r.active
        ? `approved${r.autoApproved ? ' (auto-approved by policy)' : ` by ${r.reviewedBy}`}: access to ${r.device} until ${shortTime(r.grantEndsAt)}`
        : `approved, but the grant has ended (${shortTime(r.grantEndsAt)})`;
    case 'denied':
      return `denied by ${r.reviewedBy}: ${r.reviewNote ?? ''}`;
    case 'pending':
      return `pending review (expires unreviewed at ${shortTime(r.requestExpiresAt)})`;
    default:
      return r.status;
  }
}

export function accessCommand(): Command {
  const access = new Command('access').description('just-in-time access: request, review, revoke');

  addHubFlags(
    access.command('request').description('request time-bound access to a device')
      .argument('<device>')
      .requiredOption('--for <duration>', 'how long, e.g. 30m, 2h (capped by the hub maximum)')
      .requiredOption('--reason <text>', 'why you need access (recorded in the audit log)')
      .option('--wait', 'block until the request is reviewed, and print the outcome')
      .option('--json', 'print the request as JSON'),
  ).action(async (device: string, opts: HubFlags & { for: string; reason: string; wait?: boolean; json?: boolean }) => {
    assertValidName(device, 'device name');
    let durationMs: number;
    try {
      durationMs = parseDuration(opts.for);
    } catch (error) {
      throw new DrawbridgeError('VALIDATION_FAILED', `--for: ${(error as Error).message}`);
    }
    if (!opts.reason.trim()) throw new DrawbridgeError('VALIDATION_FAILED', '--reason must not be empty');
    const result = await withHub(opts, async (c) => {
      let r = await c.request<AccessView>('POST', '/v1/access', { device, durationMs, reason: opts.reason });
      if (!opts.json) printNotice(`request ${r.id} for ${device} (${formatDuration(durationMs)}): ${describe(r)}`);
      while (opts.wait && r.status === 'pending') {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        r = await c.request<AccessView>('GET', `/v1/access/${r.id}`);
      }
      return r;
    });
    if (opts.json) return printJson(result);
    printLine(opts.wait ? `${result.id}: ${describe(result)}` : result.id);
    if (opts.wait && result.status !== 'approved') process.exitCode = 3;
  });

  addHubFlags(
    access.command('list').description('list access requests and grants')
      .option('--pending', 'only requests awaiting review')
      .option('--active', 'only grants in force now')
      .option('--mine', 'only your own')
      .option('--device <name>', 'only this device')
      .option('--json', 'JSON output'),
  ).action(async (opts: HubFlags & { pending?: boolean; active?: boolean; mine?: boolean; device?: string; json?: boolean }) => {
    const q = new URLSearchParams();
    if (opts.pending && opts.active) throw new DrawbridgeError('VALIDATION_FAILED', 'choose one of --pending and --active');
    if (opts.pending) q.set('status', 'pending');
    if (opts.active) q.set('status', 'active');
    if (opts.mine) q.set('mine', 'true');
    if (opts.device) q.set('device', assertValidName(opts.device, 'device name'));
    const { requests } = await withHub(opts, (c) => c.request<{ requests: AccessView[] }>('GET', `/v1/access?${q}`));
    if (opts.json) return printJson(requests);
    printTable(
      ['id', 'principal', 'device', 'status', 'for', 'until', 'reviewed by', 'reason'],
      requests.map((r) => [r.id, r.principal, r.device, r.active ? 'active' : r.status, formatDuration(r.durationMs), shortTime(r.grantEndsAt), r.reviewedBy, r.reason.length > 40 ? r.reason.slice(0, 37) + '...' : r.reason]),
    );
  });

  addHubFlags(access.command('show').description('show one request').argument('<id>').option('--json', 'JSON output')).action(
    async (id: string, opts: HubFlags & { json?: boolean }) => {
      const r = await withHub(opts, (c) => c.request<AccessView>('GET', `/v1/access/${checkId(id)}`));
      if (opts.json) return printJson(r);
      printFields(r);
    },
  );

  addHubFlags(access.command('approve').description('approve a pending request (not your own)').argument('<id>').option('--note <text>', 'note for the record').option('--json', 'JSON output')).action(
    async (id: string, opts: HubFlags & { note?: string; json?: boolean }) => {
      const r = await withHub(opts, (c) => c.request<AccessView>('POST', `/v1/access/${checkId(id)}/approve`, opts.note ? { note: opts.note } : {}));
      if (opts.json) return printJson(r);
      printLine(`${r.id}: ${describe(r)}`);
    },
  );

  addHubFlags(access.command('deny').description('deny a pending request').argument('<id>').requiredOption('--reason <text>', 'why (told to the requester)').option('--json', 'JSON output')).action(
    async (id: string, opts: HubFlags & { reason: string; json?: boolean }) => {
      const r = await withHub(opts, (c) => c.request<AccessView>('POST', `/v1/access/${checkId(id)}/deny`, { reason: opts.reason }));
      if (opts.json) return printJson(r);
      printLine(`${r.id}: ${describe(r)}`);
    },
  );

  addHubFlags(access.command('revoke').description("revoke an active grant; its streams end at once").argument('<id>').option('--json', 'JSON output')).action(
    async (id: string, opts: HubFlags & { json?: boolean }) => {
      const r = await withHub(opts, (c) => c.request<AccessView>('POST', `/v1/access/${checkId(id)}/revoke`));
      if (opts.json) return printJson(r);
      printLine(`${r.id}: revoked`);
    },
  );
  return access;
}
