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
    pino.destination({ fd: 2, sync: false }),
  );
}

export { silentLogger } from './silent-logger.js';
