/** Finds a value in clear anywhere under some directories (database, WAL, logs, caches): the tests expect none. */
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export function filesContaining(roots: readonly string[], needle: string | Buffer): string[] {
  const bytes = typeof needle === 'string' ? Buffer.from(needle) : needle;
  const hits: string[] = [];
  const visit = (path: string): void => {
    let stat;
    try {
      stat = lstatSync(path);
    } catch {
      return;
    }
    if (stat.isDirectory()) {
      for (const entry of readdirSync(path)) visit(join(path, entry));
    } else if (stat.isFile()) {
      const content = readFileSync(path);
      // Also as base64 and hex: encoding is not encryption.
      if (content.includes(bytes) || content.includes(Buffer.from(bytes.toString('base64'))) || content.includes(Buffer.from(bytes.toString('hex')))) hits.push(path);
    }
  };
  for (const root of roots) visit(root);
  return hits;
}
