import { Command } from 'commander';
import { DrawbridgeError } from '../../errors.js';
import { defaultAgentConfigPath } from '../../util/paths.js';
import { printJsonLine, printLine } from '../output.js';
import { onShutdownSignal } from '../signals.js';
import { agentSecretsCommand, appTokenCommand } from './agent-secrets.js';

export function agentCommand(): Command {
  const agent = new Command('agent').description(
    `the edge daemon: hosts virtual devices, dials out to the hub, opens no port (config default: ${defaultAgentConfigPath()}, or $DRAWBRIDGE_AGENT_CONFIG)`,
  );

  agent
    .command('enroll')
    .description('enroll a virtual device: generate its key here, register the public key, add it to the config')
    .argument('<token>', 'enrollment token from "drawbridge devices add"')
    .requiredOption('--target <host:port>', 'the only address this device will ever connect to, e.g. 127.0.0.1:22')
    .option('--config <file>', 'agent config file', defaultAgentConfigPath())
    .option('--max-streams <n>', 'concurrent streams for this device', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new DrawbridgeError('VALIDATION_FAILED', `--max-streams must be an integer 1-10000 (got "${v}")`);
      return n;
    })
    .option('--edge-name <name>', 'name of this host on the hub, at its first enrollment (default: the host name)')
    .option('--json', 'JSON output')
    .action(async (token: string, opts: { target: string; config: string; maxStreams?: number; edgeName?: string; json?: boolean }) => {
      const { enrollDevice } = await import('../../agent/enroll.js');
      const result = await enrollDevice({
        token,
        target: opts.target,
        configPath: opts.config,
        ...(opts.maxStreams ? { maxStreams: opts.maxStreams } : {}),
        ...(opts.edgeName ? { edgeName: opts.edgeName } : {}),
      });
      if (opts.json) return printJsonLine(result);
      for (const line of [
        `enrolled "${result.device}" with ${result.hubUrl}; target ${opts.target}`,
        `edge: ${result.edge.name}${result.edge.created ? ' (new: its signing and encryption keys were generated here)' : ''}`,
        `key: ${result.keyFile} (mode 0600, never leaves this machine)`,
        `config: ${result.configPath}`,
        `start it with: drawbridge agent run${opts.config === defaultAgentConfigPath() ? '' : ` --config ${opts.config}`}`,
      ]) {
        printLine(line);
      }
    });

  agent
    .command('run')
    .description('run every virtual device in the config file over one link to the hub (structured JSON logs on stderr)')
    .option('--config <file>', 'agent config file', defaultAgentConfigPath())
    .action(async (opts: { config: string }) => {
      const { startAgent } = await import('../../agent/agent.js');
      const handle = await startAgent({ configPath: opts.config });
      onShutdownSignal(() => handle.close());
    });
  agent.addCommand(appTokenCommand());
  agent.addCommand(agentSecretsCommand());
  return agent;
}
