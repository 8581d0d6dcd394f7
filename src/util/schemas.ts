/** zod building blocks shared by every config file and API body. */
import { z } from 'zod';
import { firstControlCharacter } from './control-chars.js';
import { parseDuration } from './duration.js';
import { NAME_PATTERN } from './names.js';

/** "30m", "8h", "1h30m" in, milliseconds out. */
export const durationSchema = z.string().transform((text, ctx) => {
  try {
    return parseDuration(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

/** Every issue of a failed parse, with its path: "access.maxDuration: invalid duration ...". */
export function describeIssues(error: z.ZodError, prefix?: string): { path: string; message: string }[] {
  return error.issues.map((issue) => ({
    path: [...(prefix ? [prefix] : []), ...issue.path.map(String)].join('.') || '(root)',
    message: issue.message,
  }));
}

export function issuesText(error: z.ZodError, prefix?: string): string {
  return describeIssues(error, prefix).map((i) => `${i.path}: ${i.message}`).join('; ');
}

/**
 * Free text that people read in listings and the audit log (reasons, notes, tag values,
 * host names and versions an agent reports): control characters have no use there and could
 * rewrite an operator's terminal, so they are refused, naming the first one.
 */
export function plainText(options: { min?: number; max: number }): z.ZodType<string, string> {
  return z
    .string()
    .min(options.min ?? 0)
    .max(options.max)
    .superRefine((text, ctx) => {
      const found = firstControlCharacter(text);
      if (found) ctx.addIssue({ code: 'custom', message: `must not contain control characters (found ${found.escaped} at position ${found.index})` });
    });
}

/** Device and user names. */
export const nameSchema = z.string().regex(NAME_PATTERN, 'must be 1-63 lower-case letters, digits and "-", not starting or ending with "-"');

const SIZE_UNITS: Record<string, number> = { b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

/** "512KiB", "1MiB", "65536" in, bytes out. Units are powers of 1024. */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = SIZE_UNITS[(match?.[2] ?? '').toLowerCase() || 'b'];
  if (!match || unit === undefined) throw new Error(`invalid size "${text}": use a number with an optional unit, e.g. 65536, 512KiB, 1MiB`);
  return Math.round(Number(match[1]) * unit);
}

export const sizeSchema = z.union([z.number().int().nonnegative(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  try {
    return parseSize(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});
