/** The secret-name rule as a schema, for config files, API bodies and control messages. */
import { z } from 'zod';
import { MAX_SECRET_NAME_LENGTH, SECRET_NAME_PATTERN } from './names.js';

export const secretNameSchema = z
  .string()
  .max(MAX_SECRET_NAME_LENGTH)
  .regex(SECRET_NAME_PATTERN, 'must be segments of lower-case letters, digits and "-" joined by "/", e.g. plant-3/db-password');
