/**
 * Terminal injection: what the CLI prints for people never carries a control character, and
 * what it prints as JSON is the exact value; free-text fields refuse control characters.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RAW_CONTROL } from '../helpers.js';
import { fieldText, formatFields, formatTable, printJson, printJsonLine, terminalSafe } from '../../src/cli/output.js';
import { escapeControlCharacters, hasControlCharacters } from '../../src/util/control-chars.js';
import { plainText } from '../../src/util/schemas.js';


const HOSTILE = [
  'fix\u001b[2K\u001b[1A\u001b[2Kapproved by alice', // erase line, cursor up, erase: hides rows
  'x\u001b]0;window title\u0007', // OSC: retitles the window
  'clear\u001b[2J\u001b[H', // clears the screen
  '8-bit CSI \u009b2J and DEL \u007f',
  'bidi \u202egnp.exe', // right-to-left override: shows "exe.png"
  'fake\nSEQ  TIME  ACTOR  forged row\r',
  'isolate \u2066x\u2069 and separator \u2028',
];

function capture(print: (out: { write(text: string): boolean }) => void): string {
  let text = '';
  print({ write: (chunk: string) => ((text += chunk), true) });
  return text;
}

describe('control characters in human-readable output', () => {
  it('are shown as visible escapes that do nothing', () => {
    assert.equal(escapeControlCharacters('a\u001b[2Jb'), 'a\\x1b[2Jb');
    assert.equal(escapeControlCharacters('l1\nl2\r\tx'), 'l1\\nl2\\r\\tx');
    assert.equal(escapeControlCharacters('\u009b\u007f\u0000'), '\\x9b\\x7f\\x00');
    assert.equal(escapeControlCharacters('\u202eabc\u2066\u2028'), '\\u202eabc\\u2066\\u2028');
    for (const text of HOSTILE) assert.doesNotMatch(terminalSafe(text), RAW_CONTROL, JSON.stringify(text));
  });

  it('leaves ordinary text alone, Unicode included', () => {
    for (const text of ['plain', 'Zürich Straße 5', '設備-7', 'emoji 🔧', 'C:\\path\\x1b (a literal backslash)', 'tab-free']) {
      assert.equal(terminalSafe(text), text);
      assert.equal(hasControlCharacters(text), false);
    }
  });

  it('cannot break a table: every row stays one line, the columns stay aligned', () => {
    const lines = formatTable(['id', 'reason', 'status'], HOSTILE.map((reason, i) => [`ar_${i}`, reason, 'pending']));
    assert.equal(lines.length, HOSTILE.length + 1);
    for (const line of lines) assert.doesNotMatch(line, RAW_CONTROL);
    const statusColumn = (lines[0] as string).indexOf('STATUS');
    for (const line of lines.slice(1)) assert.equal(line.indexOf('pending'), statusColumn, line);
    assert.match(lines[1] as string, /fix\\x1b\[2K\\x1b\[1A\\x1b\[2Kapproved by alice/);
  });

  it('cannot break key/value output, in keys or values, flat objects and lists', () => {
    const lines = formatFields({ name: 'dev-1', tags: { site: 'a\u001b[2Jb' }, reason: HOSTILE[0], ['k\u001bey']: ['x\ny', null], none: null });
    assert.equal(lines.length, 5);
    for (const line of lines) assert.doesNotMatch(line, RAW_CONTROL);
    assert.match(lines[1] as string, /^tags\s+site=a\\x1b\[2Jb$/);
    assert.match(lines[3] as string, /^k\\x1bey\s+x\\ny, -$/);
    assert.match(lines[4] as string, /^none\s+-$/);
    assert.equal(fieldText({}), '-');
    assert.equal(fieldText([]), '-');
  });

  it('--json prints the exact values, and no raw control character either', () => {
    const value = { reasons: HOSTILE, nested: { note: '\u009b31m' } };
    for (const print of [printJson, printJsonLine]) {
      const text = capture((out) => print(value, out as never));
      assert.doesNotMatch(text.replace(/\n/g, ''), RAW_CONTROL);
      assert.deepEqual(JSON.parse(text), value);
    }
  });
});

describe('plainText fields', () => {
  const reason = plainText({ min: 1, max: 100 });

  it('refuse control characters, naming the first and where it is', () => {
    const result = reason.safeParse('ok \u001b[2J');
    assert.equal(result.success, false);
    assert.match(result.error?.issues[0]?.message ?? '', /must not contain control characters \(found \\x1b at position 3\)/);
    for (const text of HOSTILE) assert.equal(reason.safeParse(text).success, false, JSON.stringify(text));
  });

  it('accept ordinary text within the bounds', () => {
    assert.equal(reason.parse('INC-4211: replace sensor config (Zürich)'), 'INC-4211: replace sensor config (Zürich)');
    assert.equal(reason.safeParse('').success, false);
    assert.equal(reason.safeParse('x'.repeat(101)).success, false);
  });
});
