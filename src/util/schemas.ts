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

/** Device and user names. */
export const nameSchema = z.string().regex(NAME_PATTERN, 'must be 1-63 lower-case letters, digits and "-", not starting or ending with "-"');
