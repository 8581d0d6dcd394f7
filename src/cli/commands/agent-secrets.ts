/** `drawbridge agent app-token ...` and `drawbridge agent secrets ...`: on the edge, next to `agent run`. */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { DrawbridgeError } from '../../errors.js';
import { defaultAgentConfigPath } from '../../util/paths.js';
import { assertSecretName } from '../../vault/names.js';
import { collect } from '../context.js';
import { printJson, printTable, shortTime, printLine } from '../output.js';
import { writeValue } from '../secret-input.js';

type ConfigFlag = { config: string; json?: boolean };

async function localFiles(configPath: string): Promise<{ socket: string; tokens: string; adminToken: string }> {
  const [{ loadAgentConfig, resolveKeyPath }, { LOCAL_ADMIN_TOKEN_FILE }] = await Promise.all([import('../../agent/config.js'), import('../../agent/agent.js')]);
  const config = loadAgentConfig(configPath, { allowMissing: true });
  return {
    socket: resolveKeyPath(configPath, config.localApi.socket),
    tokens: resolveKeyPath(configPath, config.localApi.tokensFile),
    adminToken: resolveKeyPath(configPath, LOCAL_ADMIN_TOKEN_FILE),
  };
}

async function tokenStore(configPath: string): Promise<import('../../agent/vault/app-tokens.js').AppTokenStore> {
  const [{ AppTokenStore }, files] = await Promise.all([import('../../agent/vault/app-tokens.js'), localFiles(configPath)]);
  return new AppTokenStore(files.tokens);
}

/** --token, else $DRAWBRIDGE_APP_TOKEN, else the agent CLI's own token beside the config. */
function tokenFor(opts: { token?: string }, adminTokenFile: string): string {
  const given = opts.token ?? process.env['DRAWBRIDGE_APP_TOKEN'];
  if (given) return given;
  try {
    return readFileSync(adminTokenFile, 'utf8').trim();
  } catch {
    throw new DrawbridgeError('UNAUTHENTICATED', `no app token: give --token, set DRAWBRIDGE_APP_TOKEN, or run as a user who can read ${adminTokenFile}`);
  }
}

export function appTokenCommand(): Command {
  const command = new Command('app-token').description('tokens for apps on this edge: each names the secrets its app may read through the local API');
  const config = (c: Command): Command => c.option('--config <file>', 'agent config file', defaultAgentConfigPath()).option('--json', 'JSON output');

  config(
    command.command('add').description('add an app token and print it once (stored hashed)').argument('<app>').requiredOption('--secret <name>', 'a secret the app may read (repeatable)', collect, []),
  ).action(async (app: string, opts: ConfigFlag & { secret: string[] }) => {
    for (const name of opts.secret) assertSecretName(name);
    const token = (await tokenStore(opts.config)).add(app, opts.secret, Date.now());
    if (opts.json) return printJson({ app, token });
    printLine(`app "${app}" may read ${opts.secret.join(', ')}. Token (shown once):`);
    printLine(`  ${token}`);
  });

  config(command.command('list').description('list app tokens (never the tokens themselves)')).action(async (opts: ConfigFlag) => {
    const apps = (await tokenStore(opts.config)).list().map((e) => ({ app: e.app, secrets: e.secrets, createdAt: new Date(e.createdAt).toISOString() }));
    if (opts.json) return printJson(apps);
    printTable(['app', 'secrets', 'created'], apps.map((a) => [a.app, a.secrets.join(', '), shortTime(a.createdAt)]));
  });

  config(command.command('remove').description('remove an app token: the local API refuses it at once (401)').argument('<app>')).action(async (app: string, opts: ConfigFlag) => {
    if (!(await tokenStore(opts.config)).remove(app)) throw new DrawbridgeError('NOT_FOUND', `no app "${app.slice(0, 80)}"`);
    if (opts.json) return printJson({ app, removed: true });
    printLine(`app token of "${app}" removed`);
  });
  return command;
}

export function agentSecretsCommand(): Command {
  const command = new Command('secrets').description("secrets held on this edge, read through the agent's local API (works while the hub is away)");
  const flags = (c: Command): Command =>
    c
      .option('--config <file>', 'agent config file', defaultAgentConfigPath())
      .option('--token <token>', "app token (default: $DRAWBRIDGE_APP_TOKEN, else the agent CLI's own token)")
      .option('--json', 'JSON output');

  flags(command.command('list').description('the secrets this token may read that the edge holds')).action(async (opts: ConfigFlag & { token?: string }) => {
    const files = await localFiles(opts.config);
    const { localApiRequest } = await import('../../agent/vault/local-client.js');
    const { secrets } = await localApiRequest<{ secrets: { name: string; version: number; receivedAt: string }[] }>(files.socket, tokenFor(opts, files.adminToken), '/v1/secrets');
    if (opts.json) return printJson(secrets);
    printTable(['name', 'version', 'received'], secrets.map((s) => [s.name, s.version, shortTime(s.receivedAt)]));
  });

  flags(command.command('get').description('print a value as is (counted as a read and reported to the hub)').argument('<name>')).action(
    async (name: string, opts: ConfigFlag & { token?: string }) => {
      assertSecretName(name);
      const files = await localFiles(opts.config);
      const { localApiRequest } = await import('../../agent/vault/local-client.js');
      const result = await localApiRequest<{ name: string; version: number; value: string; encoding?: string }>(files.socket, tokenFor(opts, files.adminToken), `/v1/secrets/${encodeURIComponent(name)}`);
      if (opts.json) return printJson(result);
      writeValue(Buffer.from(result.value, result.encoding === 'base64' ? 'base64' : 'utf8'));
    },
  );
  return command;
}
