/**
 * A logger that drops everything, without loading pino: the client path (`drawbridge proxy`,
 * `connect`) logs nothing, and every `ssh` through `ProxyCommand` pays for what the CLI loads
 * at start (pino and its helpers cost about 40 ms).
 */
import type { Logger } from 'pino';

const ignore = (): void => undefined;
const silent: Record<string | symbol, unknown> = {
  level: 'silent',
  isLevelEnabled: () => false,
  child: () => silentProxy,
};
const silentProxy = new Proxy(silent, { get: (target, key) => (key in target ? target[key] : ignore) }) as unknown as Logger;

export function silentLogger(): Logger {
  return silentProxy;
}
