import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync, chmodSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Write-then-rename so a crash never leaves a half-written file, with the mode set before
 * any content is written (a secret is never readable by others, not even for a moment).
 */
export function writeFileAtomic(path: string, content: string | Buffer, mode: number): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.${Date.now()}.tmp`;
  const fd = openSync(temporary, 'wx', mode);
  try {
    writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(temporary, mode);
  renameSync(temporary, path);
}
