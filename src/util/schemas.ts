/** zod building blocks shared by every config file and API body. */
import { z } from 'zod';
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

/** Device and user names. */
export const nameSchema = z.string().regex(NAME_PATTERN, 'must be 1-63 lower-case letters, digits and "-", not starting or ending with "-"');
