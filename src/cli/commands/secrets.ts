import { Command } from 'commander';
import { DrawbridgeError } from '../../errors.js';
import type { SecretDetailView, SecretStatusView, SecretView } from '../../protocol/api-types.js';
import { assertSecretName } from '../../vault/names.js';
import { addHubFlags, withHub, type HubFlags } from '../context.js';
import { printJson, printTable, shortTime, printLine } from '../output.js';
import { parseVersionFlag, readSecretValue, valueJson, writeValue } from '../secret-input.js';

type Json = { json?: boolean };
const path = (name: string, suffix = ''): string => `/v1/secrets/${encodeURIComponent(assertSecretName(name))}${suffix}`;

function accessTarget(opts: { edge?: string; device?: string; tag?: string }): Record<string, string> {
  const given = (['edge', 'device', 'tag'] as const).filter((k) => opts[k] !== undefined);
  if (given.length !== 1) throw new DrawbridgeError('VALIDATION_FAILED', 'give exactly one of --edge NAME, --device NAME or --tag key=value');
  const key = given[0] as 'edge' | 'device' | 'tag';
  return { [key]: opts[key] as string };
}

export function secretsCommand(): Command {
  const secrets = new Command('secrets').description('the vault: versioned secrets, sealed at rest, delivered end to end to the edges allowed them');

  addHubFlags(
    secrets.command('put').description('write a new version of a secret (the value from stdin or a file, never an argument)')
      .argument('<name>', 'e.g. plant-3/db-password')
      .option('--value-stdin', 'read the value from stdin')
      .option('--from-file <file>', 'read the value from a file')
      .option('--cas <n>', 'check-and-set: refuse (409) unless N is the current version (0: the secret must not exist)')
      .option('--json', 'print {"name","version"}'),
  ).action(async (name: string, opts: HubFlags & Json & { valueStdin?: boolean; fromFile?: string; cas?: string }) => {
    assertSecretName(name);
    const cas = parseVersionFlag(opts.cas, '--cas', 0);
    const value = await readSecretValue(opts);
    const result = await withHub(opts, (c) => c.request<{ name: string; version: number }>('POST', path(name), { valueBase64: value.toString('base64'), ...(cas !== undefined ? { cas } : {}) }));
    value.fill(0);
    if (opts.json) return printJson(result);
    printLine(`secret "${result.name}" is at version ${result.version}`);
  });

  addHubFlags(
    secrets.command('get').description('print a value as is (admins only; every read is audited with its version)')
      .argument('<name>')
      .option('--version <n>', 'a version other than the current one')
      .option('--json', 'print {"name","version","value"} (base64 with "encoding" when not UTF-8)'),
  ).action(async (name: string, opts: HubFlags & Json & { version?: string }) => {
    const version = parseVersionFlag(opts.version, '--version');
    const result = await withHub(opts, (c) => c.request<{ name: string; version: number; valueBase64: string }>('GET', path(name, `/value${version ? `?version=${version}` : ''}`)));
    const value = Buffer.from(result.valueBase64, 'base64');
    if (opts.json) return printJson(valueJson(result.name, result.version, value));
    writeValue(value);
  });

  addHubFlags(secrets.command('list').description('list secrets (metadata only)').option('--json', 'JSON output')).action(async (opts: HubFlags & Json) => {
    const { secrets: list } = await withHub(opts, (c) => c.request<{ secrets: SecretView[] }>('GET', '/v1/secrets'));
    if (opts.json) return printJson(list);
    printTable(['name', 'version', 'live', 'versions', 'rules', 'updated'], list.map((s) => [s.name, s.currentVersion, s.live ? 'yes' : 'no', s.versions, s.rules, shortTime(s.updatedAt)]));
  });

  addHubFlags(secrets.command('versions').description('the versions of a secret, and who may receive it').argument('<name>').option('--json', 'JSON output')).action(
    async (name: string, opts: HubFlags & Json) => {
      const detail = await withHub(opts, (c) => c.request<SecretDetailView>('GET', path(name)));
      if (opts.json) return printJson(detail);
      printTable(
        ['version', 'created', 'by', 'bytes', 'state'],
        detail.versions.map((v) => [v.version, shortTime(v.createdAt), v.createdBy, v.size, v.destroyedAt ? 'destroyed' : v.deletedAt ? 'deleted' : v.version === detail.currentVersion ? 'current' : 'kept']),
      );
      // Tag values are free text: quoted, so no control character reaches the terminal.
      printLine(`allowed: ${detail.rules.map((r) => `${r.kind} ${JSON.stringify(r.subject)}`).join(', ') || '(no edge)'}`);
    },
  );

  for (const [verb, help] of [
    ['delete', 'soft-delete a version (default: the current one); edges drop the secret'],
    ['undelete', 'restore a soft-deleted version (default: the current one)'],
  ] as const) {
    addHubFlags(secrets.command(verb).description(help).argument('<name>').option('--version <n>', 'the version').option('--json', 'JSON output')).action(
      async (name: string, opts: HubFlags & Json & { version?: string }) => {
        const version = parseVersionFlag(opts.version, '--version');
        const result = await withHub(opts, (c) => c.request<{ name: string; version: number }>('POST', path(name, `/${verb}`), version ? { version } : {}));
        if (opts.json) return printJson(result);
        printLine(`version ${result.version} of "${result.name}" ${verb}d`);
      },
    );
  }

  addHubFlags(secrets.command('destroy').description('destroy a version for good: its sealed value is erased').argument('<name>').requiredOption('--version <n>', 'the version').option('--json', 'JSON output')).action(
    async (name: string, opts: HubFlags & Json & { version: string }) => {
      const version = parseVersionFlag(opts.version, '--version') as number;
      const result = await withHub(opts, (c) => c.request<{ name: string; version: number }>('POST', path(name, '/destroy'), { version }));
      if (opts.json) return printJson(result);
      printLine(`version ${result.version} of "${result.name}" destroyed`);
    },
  );

  for (const [verb, help] of [
    ['allow', 'let an edge receive the secret: the edge itself, an edge hosting the device, or edges hosting a device with the tag'],
    ['deny', 'remove an allow rule; edges it no longer reaches drop the secret'],
  ] as const) {
    addHubFlags(
      secrets.command(verb).description(help).argument('<name>')
        .option('--edge <name>', 'an edge')
        .option('--device <name>', 'a virtual device (its edge receives the secret)')
        .option('--tag <key=value>', 'a device tag')
        .option('--json', 'JSON output'),
    ).action(async (name: string, opts: HubFlags & Json & { edge?: string; device?: string; tag?: string }) => {
      const target = accessTarget(opts);
      const result = await withHub(opts, (c) => c.request<{ name: string; kind: string; subject: string; changed: boolean }>('POST', path(name, `/${verb}`), target));
      if (opts.json) return printJson(result);
      printLine(
        verb === 'allow'
          ? `${result.kind} ${JSON.stringify(result.subject)} ${result.changed ? 'may now receive' : 'was already allowed'} "${result.name}"`
          : `${result.kind} ${JSON.stringify(result.subject)} no longer allowed "${result.name}"`,
      );
    });
  }

  addHubFlags(secrets.command('status').description('every edge allowed the secret: the version it holds, when it got it, when an app last read it').argument('<name>').option('--json', 'print {"name","edges":[{"edge","devices","version","deliveredAt","lastReadAt",...}]}')).action(
    async (name: string, opts: HubFlags & Json) => {
      const status = await withHub(opts, (c) => c.request<SecretStatusView>('GET', path(name, '/status')));
      if (opts.json) return printJson(status);
      printTable(
        ['edge', 'devices', 'holds', 'wanted', 'delivered', 'last read', 'reads', 'online'],
        status.edges.map((e) => [e.edge, e.devices.join(','), e.version, e.allowed ? e.wantedVersion ?? 'none' : e.paused && e.wantedVersion !== null ? `${e.wantedVersion} (paused)` : e.version === null ? 'none' : 'removing', shortTime(e.deliveredAt), shortTime(e.lastReadAt), e.reads, e.online ? 'yes' : 'no']),
      );
    },
  );

  addHubFlags(secrets.command('rekey').description('rotate the key-encryption key (DATA_DIR/vault.key): re-wrap every data key with a new one').option('--json', 'JSON output')).action(
    async (opts: HubFlags & Json) => {
      const result = await withHub(opts, (c) => c.request<{ kekId: string; rewrapped: number; retired: string[] }>('POST', '/v1/vault/rekey'));
      if (opts.json) return printJson(result);
      printLine(`new key-encryption key ${result.kekId}; ${result.rewrapped} data keys re-wrapped; retired ${result.retired.join(', ') || 'none'}`);
    },
  );
  return secrets;
}
