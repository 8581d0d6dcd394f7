import { createWriteStream } from 'node:fs';
import { Command } from 'commander';
import { DrawbridgeError } from '../../errors.js';
import type { HubClient } from '../../client/hub-client.js';
import { addHubFlags, collect, withHub, type HubFlags } from '../context.js';
import { printJson, printJsonLine, printLine, printNotice, printTable, shortTime } from '../output.js';
import type { AuditView } from '../../protocol/api-types.js';


interface FilterFlags {
  device?: string;
  actor?: string;
  action?: string;
  since?: string;
  until?: string;
  limit: string;
}

function filterQuery(opts: FilterFlags): URLSearchParams {
  const q = new URLSearchParams();
  for (const key of ['device', 'actor', 'action', 'since', 'until'] as const) {
    const value = opts[key];
    if (value) q.set(key, value);
  }
  const limit = Number(opts.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new DrawbridgeError('VALIDATION_FAILED', `--limit must be 1-1000 (got "${opts.limit}"); page with --after`);
  q.set('limit', String(limit));
  return q;
}

function detailText(d: Record<string, unknown>): string {
  return Object.entries(d).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' ');
}

function printRecords(records: AuditView[]): void {
  printTable(['seq', 'time', 'actor', 'action', 'device', 'details'], records.map((r) => [r.seq, shortTime(r.ts), r.actor, r.action, r.device, detailText(r.details)]));
}

function withFilters(command: Command): Command {
  return command
    .option('--device <name>', 'only records about this device')
    .option('--actor <name>', 'only records by this actor')
    .option('--action <action>', 'only this action, e.g. stream.open, access.approve')
    .option('--since <time>', 'ISO time or age (15m, 2h, 7d)')
    .option('--until <time>', 'ISO time or age');
}

export function auditCommand(): Command {
  const audit = new Command('audit').description('the tamper-evident audit log');

  addHubFlags(withFilters(audit.command('list').description('query audit records (oldest first; page with --after)'))
    .option('--after <seq>', 'records after this sequence number')
    .option('--limit <n>', 'records per page', '100')
    .option('--json', 'JSON output')).action(async (opts: HubFlags & FilterFlags & { after?: string; json?: boolean }) => {
    const q = filterQuery(opts);
    if (opts.after) q.set('after', opts.after);
    const { records, next } = await withHub(opts, (c) => c.request<{ records: AuditView[]; next: number | null }>('GET', `/v1/audit?${q}`));
    if (opts.json) return printJson({ records, next });
    printRecords(records);
    if (next !== null) printNotice(`more: drawbridge audit list --after ${next}`);
  });

  addHubFlags(withFilters(audit.command('tail').description('the newest records; --follow keeps printing new ones'))
    .option('-n, --lines <n>', 'how many recent records', '20')
    .option('-f, --follow', 'keep polling for new records')
    .option('--json', 'JSON Lines output')).action(async (opts: HubFlags & Omit<FilterFlags, 'limit'> & { lines: string; follow?: boolean; json?: boolean }) => {
    const q = filterQuery({ ...opts, limit: opts.lines });
    q.set('order', 'desc');
    const emit = (records: AuditView[]): void => {
      for (const r of records) {
        if (opts.json) printJsonLine(r);
        else printLine(`${r.seq}  ${shortTime(r.ts)}  ${r.actor}  ${r.action}  ${r.device ?? '-'}  ${detailText(r.details)}`);
      }
    };
    await withHub(opts, async (c: HubClient) => {
      const { records } = await c.request<{ records: AuditView[] }>('GET', `/v1/audit?${q}`);
      records.reverse();
      emit(records);
      let after = records[records.length - 1]?.seq ?? 0;
      if (!after && opts.follow) {
        const latest = await c.request<{ records: AuditView[] }>('GET', '/v1/audit?order=desc&limit=1');
        after = latest.records[0]?.seq ?? 0;
      }
      while (opts.follow) {
        await new Promise((r) => setTimeout(r, 1000));
        const page = filterQuery({ ...opts, limit: '1000' });
        page.set('after', String(after));
        const next = await c.request<{ records: AuditView[] }>('GET', `/v1/audit?${page}`);
        emit(next.records);
        after = next.records[next.records.length - 1]?.seq ?? after;
      }
    });
  });

  addHubFlags(audit.command('export').description('every record as JSON Lines (stdout, or --output FILE)').option('--output <file>', 'write to this file')).action(
    async (opts: HubFlags & { output?: string }) => {
      const out = opts.output ? createWriteStream(opts.output, { mode: 0o600 }) : process.stdout;
      const result = await withHub(opts, (c) => c.raw('GET', '/v1/audit/export', undefined, (chunk) => out.write(chunk)));
      if (result.status >= 400) throw new DrawbridgeError('INTERNAL', `export failed: ${result.text}`);
      if (opts.output) await new Promise<void>((resolve) => (out as import('node:fs').WriteStream).end(resolve));
    },
  );

  addHubFlags(
    audit
      .command('checkpoint')
      .description("a signed checkpoint of the chain's head, made now; keep it off the hub (verify later with audit verify --checkpoint)")
      .option('--output <file>', 'append it to this file (JSON Lines, mode 0600) instead of printing it')
      .option('--json', 'print it as JSON (the default when not writing a file)'),
  ).action(async (opts: HubFlags & { output?: string; json?: boolean }) => {
    const checkpoint = await withHub(opts, (c) => c.request<Record<string, unknown>>('GET', '/v1/audit/checkpoint'));
    if (opts.output) {
      const { appendFileSync } = await import('node:fs');
      appendFileSync(opts.output, JSON.stringify(checkpoint) + '\n', { mode: 0o600 });
      printNotice(`checkpoint of record ${String(checkpoint['seq'])} appended to ${opts.output}`);
    } else {
      printJsonLine(checkpoint);
    }
  });

  addHubFlags(
    audit
      .command('verify')
      .description('recompute the hash chain; with --checkpoint, also prove it still holds every checkpointed record unchanged (non-zero exit otherwise)')
      .option('--checkpoint <file>', 'checkpoint file(s) from audit checkpoint or the webhook (JSON or JSON Lines; repeatable)', collect, [])
      .option('--json', 'JSON output'),
  ).action(async (opts: HubFlags & { checkpoint: string[]; json?: boolean }) => {
    if (opts.checkpoint.length === 0) {
      const result = await withHub(opts, (c) => c.request<{ ok: boolean; chainOk: boolean; checked: number; headHash?: string; firstBadSeq?: number; message?: string; head: { ok: boolean; message: string } }>('GET', '/v1/audit/verify'));
      if (opts.json) printJson(result);
      else {
        if (result.chainOk) printLine(`audit chain intact: ${result.checked} records, head ${result.headHash}`);
        else printLine(`audit chain BROKEN at record ${result.firstBadSeq}: ${result.message}`);
        if (!result.head.ok) printLine(`audit head BEHIND: ${result.head.message}`);
      }
      if (!result.ok) process.exitCode = 1;
      return;
    }
    const { verifyAgainstCheckpoints } = await import('../../audit/verify-checkpoints.js');
    const report = await withHub(opts, (c) => verifyAgainstCheckpoints(c, opts.checkpoint));
    if (opts.json) printJson(report);
    else for (const line of report.lines) printLine(line);
    if (!report.ok) process.exitCode = 1;
  });
  return audit;
}
