import { Command } from 'commander';
import { DrawbridgeError } from '../../errors.js';
import { addHubFlags, withHub, type HubFlags } from '../context.js';
import { formatBytes, printJson, printLine, printTable, shortTime } from '../output.js';
import type { SessionView } from '../../protocol/api-types.js';


export function sessionsCommand(): Command {
  const sessions = new Command('sessions').description('live streams');
  addHubFlags(sessions.command('list').description('every open stream').option('--json', 'JSON output')).action(async (opts: HubFlags & { json?: boolean }) => {
    const { sessions: list } = await withHub(opts, (c) => c.request<{ sessions: SessionView[] }>('GET', '/v1/sessions'));
    if (opts.json) return printJson(list);
    printTable(
      ['id', 'principal', 'device', 'target', 'client', 'started', 'to device', 'from device', 'grant'],
      list.map((s) => [s.id, s.principal, s.device, s.target, s.clientAddress, shortTime(s.startedAt), formatBytes(s.bytesToDevice), formatBytes(s.bytesFromDevice), s.grantId ?? (s.joined ? 'standing (admin)' : 'setting up')]),
    );
  });
  addHubFlags(sessions.command('kill').description('end one stream at once').argument('<id>').option('--json', 'JSON output')).action(
    async (id: string, opts: HubFlags & { json?: boolean }) => {
      if (!/^[0-9a-f]{32}$/.test(id)) throw new DrawbridgeError('VALIDATION_FAILED', `invalid session id "${id}" (32 hex digits, see drawbridge sessions list)`);
      const result = await withHub(opts, (c) => c.request('DELETE', `/v1/sessions/${id}`));
      if (opts.json) return printJson(result);
      printLine(`session ${id} killed`);
    },
  );
  return sessions;
}
