import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs on stderr (stdout stays free for command output). Redaction is a
 * second line of defence: no code path should log a secret in the first place.
 */
export function createLogger(name: string, level: string = process.env['DRAWBRIDGE_LOG_LEVEL'] || 'info'): Logger {
  return pino(
    {
      name,
      level,
      redact: {
        paths: ['token', '*.token', 'secret', '*.secret', 'authorization', '*.authorization', 'headers.authorization'],
        censor: '[redacted]',
      },
    },
    // Lines are gathered up to 4 KiB and written at least every 100 ms, not one write (a
    // thread-pool job and a wake-up) per line: the hub logs every stream it closes, and at a
    // thousand streams a second that was 35 us of its time per stream. What is gathered is
    // written at exit, also after an uncaught exception; only a SIGKILL loses up to 100 ms.
    pino.destination({ fd: 2, sync: false, minLength: 4096, periodicFlush: 100 }),
  );
}

export { silentLogger } from './silent-logger.js';
