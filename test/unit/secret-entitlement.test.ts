import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { entitlementOf, type DeviceFacts, type EdgeFacts } from '../../src/vault/access.js';
import type { SecretAccessRule } from '../../src/store/vault-store.js';

const edge: EdgeFacts = { id: 'e1', enabled: true, createdAt: 100 };
const device = (name: string, extra: Partial<DeviceFacts> = {}): DeviceFacts => ({ name, tags: {}, edgeId: 'e1', enabled: true, createdAt: 100, ...extra });
const rule = (name: string, kind: SecretAccessRule['kind'], subject: string, createdAt = 200): SecretAccessRule => ({ name, kind, subject, createdAt, createdBy: 'admin' });
const sorted = (set: Set<string>): string[] => [...set].sort();

describe('entitlementOf', () => {
  it('an edge is entitled by its id, one of its devices, or a tag of one of its devices', () => {
    const rules = [rule('a', 'edge', 'e1'), rule('b', 'device', 'd1'), rule('c', 'tag', 'site=p3'), rule('d', 'device', 'elsewhere'), rule('e', 'tag', 'site=p9'), rule('f', 'edge', 'e2')];
    const result = entitlementOf(edge, rules, [device('d1'), device('d2', { tags: { site: 'p3' } })]);
    assert.deepEqual(sorted(result.active), ['a', 'b', 'c']);
    assert.deepEqual(sorted(result.paused), []);
  });

  it('ignores devices enrolled on another edge even when given them', () => {
    const result = entitlementOf(edge, [rule('b', 'device', 'd1')], [device('d1', { edgeId: 'e2' })]);
    assert.deepEqual(sorted(result.active), []);
  });

  it('a removed edge is entitled to nothing', () => {
    const result = entitlementOf(undefined, [rule('a', 'edge', 'e1')], [device('d1')]);
    assert.deepEqual([sorted(result.active), sorted(result.paused)], [[], []]);
  });

  it('only disabled devices (or a disabled edge) reaching a secret pause it; any enabled path keeps it active', () => {
    const rules = [rule('b', 'device', 'd1'), rule('c', 'tag', 'site=p3'), rule('a', 'edge', 'e1')];
    const devices = [device('d1', { enabled: false, tags: { site: 'p3' } }), device('d2', { tags: { site: 'p3' } })];
    const result = entitlementOf(edge, rules, devices);
    assert.deepEqual(sorted(result.active), ['a', 'c']);
    assert.deepEqual(sorted(result.paused), ['b']);
    const disabledEdge = entitlementOf({ ...edge, enabled: false }, rules, devices);
    assert.deepEqual([sorted(disabledEdge.active), sorted(disabledEdge.paused)], [[], ['a', 'b', 'c']]);
  });

  it('a rule older than the device or edge it names is not honoured (re-created under the same name or key)', () => {
    const rules = [rule('b', 'device', 'd1', 50), rule('a', 'edge', 'e1', 50), rule('c', 'device', 'd1', 100)];
    const result = entitlementOf(edge, rules, [device('d1')]);
    assert.deepEqual(sorted(result.active), ['c']);
  });
});
