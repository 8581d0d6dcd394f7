import { Command } from 'commander';
import { DrawbridgeError } from '../../errors.js';
import type { UserView } from '../../protocol/api-types.js';
import { ROLES, type Role } from '../../store/store.js';
import { assertValidName } from '../../util/names.js';
import { addHubFlags, withHub, type HubFlags } from '../context.js';
import { printJson, printLine, printTable, shortTime } from '../output.js';

export function usersCommand(): Command {
  const users = new Command('users').description('principals: people and automation identities with a role');

  addHubFlags(
    users.command('add').description('add a principal and print its API token once')
      .argument('<name>')
      .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
      .option('--json', 'print {"name", "role", "token"}'),
  ).action(async (name: string, opts: HubFlags & { role: string; json?: boolean }) => {
    assertValidName(name, 'user name');
    if (!ROLES.includes(opts.role as Role)) throw new DrawbridgeError('VALIDATION_FAILED', `invalid role "${opts.role}": use one of ${ROLES.join(', ')}`);
    const result = await withHub(opts, (c) => c.request<{ name: string; role: string; token: string }>('POST', '/v1/users', { name, role: opts.role }));
    if (opts.json) return printJson(result);
    printLine(`user "${result.name}" (${result.role}) added. API token (shown once):`);
    printLine(`  ${result.token}`);
  });

  addHubFlags(users.command('list').description('list principals').option('--json', 'JSON output')).action(async (opts: HubFlags & { json?: boolean }) => {
    const { users: list } = await withHub(opts, (c) => c.request<{ users: UserView[] }>('GET', '/v1/users'));
    if (opts.json) return printJson(list);
    printTable(['name', 'role', 'created', 'token issued'], list.map((u) => [u.name, u.role, shortTime(u.createdAt), shortTime(u.tokenCreatedAt)]));
  });

  addHubFlags(users.command('remove').description("remove a principal; their open streams end at once").argument('<name>').option('--json', 'JSON output')).action(
    async (name: string, opts: HubFlags & { json?: boolean }) => {
      assertValidName(name, 'user name');
      const result = await withHub(opts, (c) => c.request('DELETE', `/v1/users/${name}`));
      if (opts.json) return printJson(result);
      printLine(`user "${name}" removed`);
    },
  );
  return users;
}

export function tokensCommand(): Command {
  const tokens = new Command('tokens').description('API tokens');
  addHubFlags(
    tokens.command('rotate').description("issue a new token (yours, or another user's as admin); the old one stops working at once")
      .argument('[name]', 'user whose token to rotate (default: yourself)')
      .option('--json', 'print {"name", "token"}'),
  ).action(async (name: string | undefined, opts: HubFlags & { json?: boolean }) => {
    if (name !== undefined) assertValidName(name, 'user name');
    const result = await withHub(opts, (c) => c.request<{ name: string; token: string }>('POST', '/v1/tokens/rotate', name ? { name } : {}));
    if (opts.json) return printJson(result);
    printLine(`new token for "${result.name}" (shown once):`);
    printLine(`  ${result.token}`);
    if (!name) printLine('update your login: drawbridge login --hub URL --token <new token>');
  });
  return tokens;
}
