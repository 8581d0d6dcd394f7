import { Command } from 'commander';
import { DrawbridgeError } from '../../errors.js';
import { printLine } from '../output.js';
import { onShutdownSignal } from '../signals.js';

export function demoCommand(): Command {
  return new Command('demo')
    .description('run hub, agent, a device web portal and a client tunnel on this machine, and fetch the page through them')
    .option('--data-dir <dir>', 'keep state here (default: a new temporary directory)')
    .option('--port <port>', 'hub port (default: a free one)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new DrawbridgeError('VALIDATION_FAILED', `--port must be 0-65535 (got "${v}")`);
      return n;
    })
    .option('--once', 'exit after the check: status 0 if the page came through, non-zero otherwise')
    .action(async (opts: { dataDir?: string; port?: number; once?: boolean }) => {
      const { runDemo } = await import('../../demo/demo.js');
      const demo = await runDemo({ ...(opts.dataDir ? { dataDir: opts.dataDir } : {}), ...(opts.port !== undefined ? { port: opts.port } : {}) });
      if (opts.once || !demo.ok) {
        await demo.close();
        if (!demo.ok) throw new DrawbridgeError('INTERNAL', 'the demo page did not come through the tunnel');
        return;
      }
      printLine('');
      printLine('running; Ctrl-C to stop');
      onShutdownSignal(() => demo.close());
    });
}
