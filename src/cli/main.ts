/**
 * The drawbridge command. Parses arguments and hands off to the library; every failure
 * ends as one human-readable line on stderr and a non-zero exit (stack only with --debug).
 */
import { Command, CommanderError } from 'commander';
import { DrawbridgeError } from '../errors.js';
import { printNotice } from './output.js';
import { exitQuietlyOnClosedOutput, usageMessage } from './usage.js';
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
import { secretsCommand } from './commands/secrets.js';
import { sessionsCommand } from './commands/sessions.js';
import { tokensCommand, usersCommand } from './commands/users.js';

const debug = process.argv.includes('--debug');

function fail(error: unknown): never {
  if (error instanceof CommanderError) {
    // --help, --version (exit 0) and a command group's help have printed what they meant to.
    const usage = usageMessage(error, program);
    if (usage === undefined) process.exit(error.exitCode);
    printNotice(`drawbridge: ${usage} [USAGE]`);
    process.exit(error.exitCode || 2);
  }
  // Messages may carry text from the hub or a peer: printNotice escapes control characters.
  if (error instanceof DrawbridgeError) {
    printNotice(`drawbridge: ${error.message} [${error.code}]`);
  } else {
    const e = error as NodeJS.ErrnoException;
    printNotice(`drawbridge: ${e?.message ?? String(error)}${e?.code ? ` [${e.code}]` : ''}`);
  }
  if (debug) process.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
  process.exit(1);
}

const program = new Command('drawbridge')
  .description('self-hosted, just-in-time, audited access to devices behind NAT; nothing listens on the device')
  .version(VERSION)
  .option('--debug', 'print stack traces on errors')
  // The program's own options only before a command: `secrets get NAME --version 3` is the
  // command's --version, not the program's (which printed 0.1.0 and did nothing).
  .enablePositionalOptions()
  .exitOverride();

for (const command of [
  demoCommand(), hubCommand(), loginCommand(), devicesCommand(), edgesCommand(), agentCommand(), connectCommand(), proxyCommand(),
  sshCommand(), usersCommand(), tokensCommand(), accessCommand(), sessionsCommand(), auditCommand(), secretsCommand(),
  alertsCommand(), findingsCommand(),
]) {
  program.addCommand(command);
}
// Every subcommand exits through fail() too, and shares --debug; a usage error is one line
// (fail() prints it, naming the command), not commander's message plus a hint.
const configure = (command: Command): void => {
  command.exitOverride();
  command.configureOutput({ outputError: () => undefined });
  if (command !== program) command.option('--debug', 'print stack traces on errors');
  for (const sub of command.commands) configure(sub);
};
configure(program);

exitQuietlyOnClosedOutput();
process.on('unhandledRejection', fail);
process.on('uncaughtException', fail);
program.parseAsync(process.argv).catch(fail);
