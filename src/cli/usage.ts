/**
 * How the CLI ends when the command line is wrong or nobody reads its output any more:
 * a usage error is one line, `drawbridge: message [USAGE]`, and a closed pipe (`| head`)
 * ends the command quietly instead of with a stack trace.
 */
import type { Command, CommanderError } from 'commander';

/** Commander's "exits" that are not errors: help and version have printed what was asked. */
const NOT_ERRORS = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version']);

/**
 * One line for a usage error ("unknown option '--foo' (see drawbridge devices list --help)"),
 * or undefined when commander ended normally.
 */
export function usageMessage(error: CommanderError, program?: Command, argv: string[] = process.argv.slice(2)): string | undefined {
  if (NOT_ERRORS.has(error.code) || error.exitCode === 0) return undefined;
  const [first = '', ...rest] = error.message.split('\n').map((line) => line.trim()).filter(Boolean);
  const message = first.replace(/^error: /, '');
  // commander's suggestion ("(Did you mean devices?)") stays, on the same line.
  const hint = rest.map((line) => line.replace(/^\(Did you mean/, '(did you mean')).join(' ');
  const help = ['drawbridge', ...commandPath(program, argv), '--help'].join(' ');
  return `${message}${hint ? ` ${hint}` : ''} (see ${help})`;
}

/** The subcommand names given on the command line, in order ("devices", "list"). */
function commandPath(program: Command | undefined, argv: string[]): string[] {
  const path: string[] = [];
  let command = program;
  for (const word of argv) {
    const sub = command?.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (!sub) continue;
    path.push(sub.name());
    command = sub;
  }
  return path;
}

/**
 * A reader that went away (`drawbridge audit list | head -n 3`) is not an error: the command
 * stops at once, with no stack trace, and exits 0 (the reader took what it wanted).
 */
export function exitQuietlyOnClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') process.exit(0);
      throw error;
    });
  }
}
