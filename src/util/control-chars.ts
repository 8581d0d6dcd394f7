/**
 * Control characters in text that reaches a terminal or a log reader: the one definition
 * shared by input validation (refuse them where a field has no use for them) and by the
 * CLI's human-readable output (escape whatever got stored anyway, or came from a peer).
 *
 * The set: C0 (U+0000-U+001F, including ESC, CR, LF and TAB), DEL (U+007F), C1
 * (U+0080-U+009F: 8-bit CSI and OSC), the Unicode line and paragraph separators, and the
 * bidirectional embedding, override and isolate controls (U+202A-U+202E, U+2066-U+2069),
 * which reorder what a reader sees without changing what the bytes say.
 */

const CONTROL_CLASS = '\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069';
const CONTROL = new RegExp(`[${CONTROL_CLASS}]`);
const CONTROL_GLOBAL = new RegExp(`[${CONTROL_CLASS}]`, 'g');
/** What JSON.stringify leaves raw inside strings (it escapes C0 itself; C0 outside strings is layout). */
const JSON_RAW_CONTROL = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

export function hasControlCharacters(text: string): boolean {
  return CONTROL.test(text);
}

/** One control character as visible text: \n, \r, \t, \xHH below U+0100, \uHHHH above. */
function escapeOne(char: string): string {
  const named = NAMED[char];
  if (named) return named;
  const code = char.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * The text with every control character replaced by a visible escape ("\x1b[2J" stays
 * readable and does nothing). Text without control characters comes back unchanged.
 */
export function escapeControlCharacters(text: string): string {
  return CONTROL.test(text) ? text.replace(CONTROL_GLOBAL, escapeOne) : text;
}

/**
 * JSON text with the control characters JSON.stringify leaves raw (DEL, C1, separators,
 * bidi controls) written as \uHHHH escapes: the same JSON value, safe on a terminal.
 */
export function escapeJsonControlCharacters(json: string): string {
  return json.replace(JSON_RAW_CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The first control character's position and escape, for an error message that names it. */
export function firstControlCharacter(text: string): { index: number; escaped: string } | undefined {
  const match = CONTROL.exec(text);
  return match ? { index: match.index, escaped: escapeOne(match[0]) } : undefined;
}
