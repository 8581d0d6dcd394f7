/**
 * Human durations ("90s", "30m", "1h30m", "2d") to milliseconds and back. Used by every
 * flag and config key that takes a time span, so the same spelling works everywhere.
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+)(ms|s|m|h|d)/gy;

export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (trimmed === '') throw new Error('empty duration');
  PART.lastIndex = 0;
  let total = 0;
  let consumed = 0;
  for (let match = PART.exec(trimmed); match !== null; match = PART.exec(trimmed)) {
    total += Number(match[1]) * (UNIT_MS[match[2] ?? ''] ?? 0);
    consumed = PART.lastIndex;
  }
  if (consumed !== trimmed.length) {
    throw new Error(`invalid duration "${text}": use a number with a unit, e.g. 90s, 30m, 1h30m, 2d`);
  }
  if (!Number.isSafeInteger(total)) throw new Error(`duration "${text}" is too large`);
  return total;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  let rest = Math.round(ms / 1000);
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join('');
}
