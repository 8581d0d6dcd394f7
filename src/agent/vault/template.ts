/**
 * The small template language of `files:` entries: text with `{{ secret "NAME" }}`
 * placeholders, nothing else. Anything else between braces is refused when the config is
 * loaded, so a typo never renders a file with a hole in it.
 */
import { isValidSecretName } from '../../vault/names.js';

export type TemplatePart = { text: string } | { secret: string };

/** Secrets one template may use. */
export const MAX_TEMPLATE_SECRETS = 16;

const PLACEHOLDER = /\{\{\s*secret\s+"([^"]*)"\s*\}\}/g;

/** Parses a template; throws Error with the reason (the config loader adds the path). */
export function parseTemplate(template: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let last = 0;
  const names = new Set<string>();
  for (const match of template.matchAll(PLACEHOLDER)) {
    const name = match[1] as string;
    if (!isValidSecretName(name)) throw new Error(`"${name.slice(0, 80)}" is not a valid secret name`);
    parts.push({ text: template.slice(last, match.index) });
    parts.push({ secret: name });
    names.add(name);
    last = (match.index as number) + match[0].length;
  }
  parts.push({ text: template.slice(last) });
  for (const part of parts) {
    if ('text' in part && (part.text.includes('{{') || part.text.includes('}}'))) {
      const at = part.text.indexOf(part.text.includes('{{') ? '{{' : '}}');
      throw new Error(`unsupported template syntax near "${part.text.slice(at, at + 40)}": the only placeholder is {{ secret "NAME" }}`);
    }
  }
  if (names.size === 0) throw new Error('the template uses no secret: use {{ secret "NAME" }}');
  if (names.size > MAX_TEMPLATE_SECRETS) throw new Error(`the template uses ${names.size} secrets; at most ${MAX_TEMPLATE_SECRETS}`);
  return parts.filter((p) => !('text' in p) || p.text.length > 0);
}

export function templateSecrets(parts: readonly TemplatePart[]): string[] {
  return [...new Set(parts.flatMap((p) => ('secret' in p ? [p.secret] : [])))];
}

/** Renders with the values given; undefined when one is missing. */
export function renderTemplate(parts: readonly TemplatePart[], valueOf: (name: string) => Buffer | undefined): Buffer | undefined {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    if ('text' in part) {
      chunks.push(Buffer.from(part.text));
      continue;
    }
    const value = valueOf(part.secret);
    if (!value) return undefined;
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}
