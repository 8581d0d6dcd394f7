/** Table and JSON output for listings; every listing command offers --json. */

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export type Cell = string | number | boolean | null | undefined;

function text(cell: Cell): string {
  if (cell === null || cell === undefined || cell === '') return '-';
  return String(cell);
}

export function printTable(headers: string[], rows: Cell[][]): void {
  const cells = rows.map((r) => r.map(text));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (values: string[]): string => values.map((v, i) => v.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  process.stdout.write(line(headers.map((h) => h.toUpperCase())) + '\n');
  for (const row of cells) process.stdout.write(line(row) + '\n');
  if (rows.length === 0) process.stdout.write('(none)\n');
}

/** "2026-11-22T16:00:00.000Z" -> "2026-11-22 16:00:00" (UTC), or a relative age for recent times. */
export function shortTime(iso: unknown): string {
  if (typeof iso !== 'string') return '-';
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
