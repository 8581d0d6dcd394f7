/**
 * The drawbridge command. Parses arguments and hands off to the library; every failure
 * ends as one human-readable line on stderr and a non-zero exit (stack only with --debug).
 */
import { Command, CommanderError } from 'commander';
import { DrawbridgeError } from '../errors.js';
import { VERSION } from '../version.js';
import { accessCommand } from './commands/access.js';
import { agentCommand } from './commands/agent.js';
import { alertsCommand, findingsCommand } from './commands/alerts.js';
import { auditCommand } from './commands/audit.js';
import { connectCommand, proxyCommand, sshCommand } from './commands/connect.js';
import { demoCommand } from './commands/demo.js';
import { devicesCommand } from './commands/devices.js';
import { edgesCommand } from './commands/edges.js';
import { hubCommand } from './commands/hub.js';
import { loginCommand } from './commands/login.js';
import { sessionsCommand } from './commands/sessions.js';
import { tokensCommand, usersCommand } from './commands/users.js';

const debug = process.argv.includes('--debug');

function fail(error: unknown): never {
  if (error instanceof CommanderError) process.exit(error.exitCode);
  if (error instanceof DrawbridgeError) {
    process.stderr.write(`drawbridge: ${error.message} [${error.code}]\n`);
  } else {
    const e = error as NodeJS.ErrnoException;
    process.stderr.write(`drawbridge: ${e?.message ?? String(error)}${e?.code ? ` [${e.code}]` : ''}\n`);
  }
  if (debug) process.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
  process.exit(1);
}

const program = new Command('drawbridge')
  .description('self-hosted, just-in-time, audited access to devices behind NAT; nothing listens on the device')
  .version(VERSION)
  .option('--debug', 'print stack traces on errors')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

for (const command of [
  demoCommand(), hubCommand(), loginCommand(), devicesCommand(), edgesCommand(), agentCommand(), connectCommand(), proxyCommand(),
  sshCommand(), usersCommand(), tokensCommand(), accessCommand(), sessionsCommand(), auditCommand(),
  alertsCommand(), findingsCommand(),
]) {
  program.addCommand(command);
}
// Every subcommand exits through fail() too, and shares --debug.
const configure = (command: Command): void => {
  command.exitOverride();
  command.showHelpAfterError('(run with --help for usage)');
  if (command !== program) command.option('--debug', 'print stack traces on errors');
  for (const sub of command.commands) configure(sub);
};
for (const sub of program.commands) configure(sub);

process.on('unhandledRejection', fail);
program.parseAsync(process.argv).catch(fail);
