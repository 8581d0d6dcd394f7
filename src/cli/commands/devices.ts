import { Command } from 'commander';
import { DrawbridgeError } from '../../errors.js';
import { parseDuration } from '../../util/duration.js';
import { assertValidName } from '../../util/names.js';
import { addHubFlags, collect, withHub, type HubFlags } from '../context.js';
import { printFields, printJson, printLine, printTable, shortTime } from '../output.js';
import type { DeviceView, EnrollmentTokenView } from '../../protocol/api-types.js';


function parseTags(pairs: string[] = []): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0 || eq === pair.length - 1) throw new DrawbridgeError('VALIDATION_FAILED', `invalid tag "${pair}": use --tag key=value`);
    tags[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return tags;
}

function ttlMs(text: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    throw new DrawbridgeError('VALIDATION_FAILED', `--ttl: ${(error as Error).message}`);
  }
}

const tagText = (tags: Record<string, string>): string => Object.entries(tags).map(([k, v]) => `${k}=${v}`).join(',');

export function devicesCommand(): Command {
  const devices = new Command('devices').description('register and manage virtual devices');

  addHubFlags(
    devices
      .command('add')
      .description('register a virtual device and print its one-time enrollment token')
      .argument('<name>', 'device name: 1-63 lower-case letters, digits and "-"')
      .option('--tag <key=value>', 'tag the device (repeatable)', collect, [])
      .option('--ttl <duration>', 'how long the enrollment token stays valid', '1h')
      .option('--json', 'print {"name", "enrollmentToken", "expiresAt"}'),
  ).action(async (name: string, opts: HubFlags & { tag: string[]; ttl: string; json?: boolean }) => {
    assertValidName(name, 'device name');
    const body = { name, tags: parseTags(opts.tag), enrollmentTtlMs: ttlMs(opts.ttl) };
    const result = await withHub(opts, (c) => c.request<EnrollmentTokenView>('POST', '/v1/devices', body));
    if (opts.json) return printJson(result);
    for (const line of [
      `device "${result.name}" registered. Enrollment token (works once, expires ${shortTime(result.expiresAt)}):`,
      '',
      `  ${result.enrollmentToken}`,
      '',
      'On the edge machine:',
      `  drawbridge agent enroll '${result.enrollmentToken}' --target 127.0.0.1:22`,
      '  drawbridge agent run',
    ]) {
      printLine(line);
    }
  });

  addHubFlags(
    devices.command('enroll-token').description('issue a new enrollment token for an existing device (to re-enroll it)')
      .argument('<name>')
      .option('--ttl <duration>', 'how long the token stays valid', '1h')
      .option('--json', 'JSON output'),
  ).action(async (name: string, opts: HubFlags & { ttl: string; json?: boolean }) => {
    assertValidName(name, 'device name');
    const result = await withHub(opts, (c) => c.request<EnrollmentTokenView>('POST', `/v1/devices/${name}/enrollments`, { enrollmentTtlMs: ttlMs(opts.ttl) }));
    if (opts.json) return printJson(result);
    printLine(result.enrollmentToken);
  });

  addHubFlags(devices.command('list').description('list virtual devices').option('--json', 'JSON output')).action(
    async (opts: HubFlags & { json?: boolean }) => {
      // The hub answers a page at a time; a listing reads every page.
      const list = await withHub(opts, async (c) => {
        const all: DeviceView[] = [];
        for (let after: string | null = ''; after !== null; ) {
          const page: { devices: DeviceView[]; next: string | null } = await c.request('GET', `/v1/devices${after ? `?after=${encodeURIComponent(after)}` : ''}`);
          all.push(...page.devices);
          after = page.next;
        }
        return all;
      });
      if (opts.json) return printJson(list);
      printTable(
        ['name', 'tags', 'enabled', 'online', 'last seen', 'agent', 'remote address', 'streams'],
        list.map((d) => [d.name, tagText(d.tags), d.enabled ? 'yes' : 'no', d.enrolled ? (d.online ? 'yes' : 'no') : 'not enrolled', shortTime(d.lastSeenAt), d.agentVersion, d.remoteAddress, d.activeStreams]),
      );
    },
  );

  addHubFlags(devices.command('show').description('show one virtual device').argument('<name>').option('--json', 'JSON output')).action(
    async (name: string, opts: HubFlags & { json?: boolean }) => {
      assertValidName(name, 'device name');
      const d = await withHub(opts, (c) => c.request<DeviceView>('GET', `/v1/devices/${name}`));
      if (opts.json) return printJson(d);
      printFields(d);
    },
  );

  for (const [verb, method, suffix, help] of [
    ['remove', 'DELETE', '', 'remove a virtual device (its link and streams end)'],
    ['enable', 'POST', '/enable', 'enable a virtual device (its agent reconnects by itself)'],
    ['disable', 'POST', '/disable', 'disable a virtual device: ends its link and streams at once, refuses reconnects'],
  ] as const) {
    addHubFlags(devices.command(verb).description(help).argument('<name>').option('--json', 'JSON output')).action(
      async (name: string, opts: HubFlags & { json?: boolean }) => {
        assertValidName(name, 'device name');
        const result = await withHub(opts, (c) => c.request<Record<string, unknown>>(method, `/v1/devices/${name}${suffix}`));
        if (opts.json) return printJson(result);
        printLine(`device "${name}" ${verb === 'remove' ? 'removed' : verb + 'd'}`);
      },
    );
  }
  return devices;
}
