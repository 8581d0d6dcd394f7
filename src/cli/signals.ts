import { printNotice } from './output.js';

/**
 * Graceful shutdown on SIGINT/SIGTERM: the first signal starts an orderly close, a second
 * one exits at once.
 */
export function onShutdownSignal(close: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.stderr.write(`drawbridge: ${signal} again, exiting now\n`);
      process.exit(130);
    }
    stopping = true;
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        printNotice(`drawbridge: error during shutdown: ${(error as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
