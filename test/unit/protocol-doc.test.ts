/** docs/protocol.md documents every control message type, and nothing that does not exist. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { allMessageSpecs } from '../../src/protocol/control.js';
import '../../src/protocol/messages/index.js';

const doc = readFileSync(fileURLToPath(new URL('../../../docs/protocol.md', import.meta.url)), 'utf8');
const sections = new Map<string, string>();
for (const match of doc.matchAll(/^### ([a-z][a-z0-9.-]*)\n([^\n]*)/gm)) sections.set(match[1] as string, match[2] as string);

describe('docs/protocol.md', () => {
  it('has a section for every message type in the code, with its direction, capability, kind and size limit', () => {
    const specs = allMessageSpecs();
    assert.ok(specs.length >= 7, 'message types are registered');
    for (const spec of specs) {
      const line = sections.get(spec.type);
      assert.ok(line, `docs/protocol.md has no "### ${spec.type}" section`);
      assert.ok(line.startsWith(`${spec.from} → ${spec.to.join(', ')}`), `"${spec.type}": direction should read "${spec.from} → ${spec.to.join(', ')}" (got "${line}")`);
      assert.ok(line.includes(spec.capability), `"${spec.type}": capability ${spec.capability} not stated`);
      assert.ok(line.includes(spec.result ? 'request' : 'notification'), `"${spec.type}": should say ${spec.result ? 'request' : 'notification'}`);
      assert.ok(line.includes(`max ${spec.maxBytes}`), `"${spec.type}": size limit should read "max ${spec.maxBytes}"`);
    }
  });

  it('documents no type that the code does not define', () => {
    const defined = new Set(allMessageSpecs().map((s) => s.type));
    for (const type of sections.keys()) assert.ok(defined.has(type), `docs/protocol.md documents "${type}", which the code does not define`);
  });
});
