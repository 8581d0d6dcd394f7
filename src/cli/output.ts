/**
 * Everything the CLI prints for people goes through here: tables, key/value fields, lines
 * and JSON. Values come from other people and other machines (request reasons, review
 * notes, tags, names, what an agent reports, error messages from the hub), so every
 * human-readable helper escapes control characters (escapeControlCharacters: ESC becomes
 * "\x1b", a newline "\n", a bidi override "\u202e"), and a value can never move the
 * cursor, clear the screen, retitle the window or fake a row. --json prints the exact
 * values; JSON escapes every control character too, so it is safe on a terminal as well.
 */
import { escapeControlCharacters, escapeJsonControlCharacters } from '../util/control-chars.js';

type Out = Pick<NodeJS.WriteStream, 'write'>;

/** Text made safe for a terminal: every control character shown as a visible escape. */
export function terminalSafe(text: string): string {
  return escapeControlCharacters(text);
}

/** JSON for --json: the exact values, pretty-printed, terminal-safe. */
export function printJson(value: unknown, out: Out = process.stdout): void {
  out.write(escapeJsonControlCharacters(JSON.stringify(value, null, 2)) + '\n');
}

/** One JSON value per line (JSON Lines, e.g. audit tail --json). */
export function printJsonLine(value: unknown, out: Out = process.stdout): void {
  out.write(escapeJsonControlCharacters(JSON.stringify(value)) + '\n');
}

/** One line for people; anything inside it that could drive the terminal is escaped. */
export function printLine(text: string, out: Out = process.stdout): void {
  out.write(terminalSafe(text) + '\n');
}

/** A line on stderr (progress, warnings, per-connection notes), escaped like printLine. */
export function printNotice(text: string): void {
  printLine(text, process.stderr);
}

export type Cell = string | number | boolean | null | undefined;

function cellText(cell: Cell): string {
  if (cell === null || cell === undefined || cell === '') return '-';
  return terminalSafe(String(cell));
}

/** The lines of a table: upper-case headers, columns padded to their widest cell. */
export function formatTable(headers: string[], rows: Cell[][]): string[] {
  const cells = rows.map((r) => r.map(cellText));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (values: string[]): string => values.map((v, i) => v.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const lines = [line(headers.map((h) => terminalSafe(h.toUpperCase()))), ...cells.map(line)];
  if (rows.length === 0) lines.push('(none)');
  return lines;
}

export function printTable(headers: string[], rows: Cell[][], out: Out = process.stdout): void {
  out.write(formatTable(headers, rows).join('\n') + '\n');
}

/**
 * A value in key/value output: "-" for nothing, lists joined with ", ", flat objects as
 * k=v,k2=v2 (tags), anything deeper as JSON.
 */
export function fieldText(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  if (Array.isArray(value)) return value.length === 0 ? '-' : value.map(fieldText).join(', ');
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) return '-';
    return entries.map(([k, v]) => `${k}=${v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(',');
  }
  return String(value);
}

/** The lines of key/value output ("show" commands): keys padded to one column. */
export function formatFields(fields: object | [string, unknown][]): string[] {
  const entries: [string, unknown][] = Array.isArray(fields) ? fields : Object.entries(fields);
  const width = Math.max(0, ...entries.map(([k]) => k.length)) + 1;
  return entries.map(([k, v]) => `${terminalSafe(k).padEnd(width)} ${terminalSafe(fieldText(v))}`.trimEnd());
}

export function printFields(fields: object | [string, unknown][], out: Out = process.stdout): void {
  out.write(formatFields(fields).join('\n') + '\n');
}

/** "2026-11-22T16:00:00.000Z" -> "2026-11-22 16:00:00Z" (UTC). */
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
