/**
 * npm's `prepare` step: compiles the TypeScript into dist/ when dist/ is missing or older
 * than the sources, and says so while it works. npm runs `prepare` after `npm ci`, and again
 * every time `npx drawbridge` links this checkout; a build that is up to date is skipped,
 * so `npx drawbridge demo` starts at once instead of recompiling silently for half a minute.
 * `npm run build` always compiles from scratch.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const output = join(root, 'dist', 'src', 'cli', 'main.js');

function newestSource() {
  let newest = Math.max(...['package.json', 'tsconfig.json', 'package-lock.json'].map((f) => statSync(join(root, f)).mtimeMs));
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
    }
  };
  for (const dir of ['src', 'test', 'bench']) if (existsSync(join(root, dir))) walk(join(root, dir));
  return newest;
}

if (existsSync(output) && statSync(output).mtimeMs >= newestSource()) {
  console.error('drawbridge: dist/ is up to date');
} else {
  console.error('drawbridge: compiling TypeScript into dist/ (about half a minute on a small machine) ...');
  const started = Date.now();
  const built = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  if (built.status !== 0) process.exit(built.status ?? 1);
  console.error(`drawbridge: built dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
