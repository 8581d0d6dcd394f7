/** The audit hash chain: the verifier names the first changed, removed or inserted record. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuditChainVerifier, canonicalJson, GENESIS_HASH, hashAuditRecord, sealAuditRecord } from '../../src/store/audit-chain.js';
import type { AuditRecord } from '../../src/store/store.js';

function chain(n: number): AuditRecord[] {
  const records: AuditRecord[] = [];
  let prevHash = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const record = sealAuditRecord({
      seq,
      ts: 1_700_000_000_000 + seq,
      actor: seq % 2 ? 'admin' : 'op',
      action: 'stream.open',
      device: seq % 3 ? 'plc-7' : null,
      details: { session: `s${seq}`, bytes: seq * 10, nested: { b: 1, a: [seq, 'x'] } },
      prevHash,
    });
    records.push(record);
    prevHash = record.hash;
  }
  return records;
}

/** Re-links records after `from` so that only the tampering at one point is detectable. */
function reseal(records: AuditRecord[], from: number): AuditRecord[] {
  const out = records.slice(0, from);
  let prevHash = from === 0 ? GENESIS_HASH : (out[from - 1] as AuditRecord).hash;
  for (const r of records.slice(from)) {
    const sealed = sealAuditRecord({ ...r, prevHash });
    out.push(sealed);
    prevHash = sealed.hash;
  }
  return out;
}

function verify(records: AuditRecord[]): ReturnType<AuditChainVerifier['feed']> {
  const verifier = new AuditChainVerifier();
  for (const r of records) {
    const problem = verifier.feed(r);
    if (problem) return problem;
  }
  return undefined;
}

describe('canonicalJson', () => {
  it('sorts keys at every depth, drops undefined, keeps arrays in order', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } }), '{"a":{"d":[3,{"y":2,"z":1}]},"b":1}');
    assert.equal(canonicalJson({ a: 1, b: 2 }), canonicalJson({ b: 2, a: 1 }));
    assert.equal(canonicalJson(null), 'null');
    assert.equal(canonicalJson('x'), '"x"');
  });

  it('gives the same text as the first implementation, on which existing chains were sealed', () => {
    // The implementation every chain written before was hashed with: any difference would
    // break the verification of stored logs.
    const reference = (value: unknown): string => {
      if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
      if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${reference(v)}`).join(',')}}`;
    };
    let seed = 7;
    const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const keys = ['a', 'B', 'b', 'é', 'zz', '10', '9', 'Ω', '\u{1F600}', 'a b', '"q"', ''];
    const make = (depth: number): unknown => {
      const pick = random();
      if (depth > 3 || pick < 0.3) return [null, true, false, 0, -1.5, 1e21, 'text', 'ü\n"\\', undefined][Math.floor(random() * 9)];
      if (pick < 0.55) return Array.from({ length: Math.floor(random() * 4) }, () => make(depth + 1));
      const object: Record<string, unknown> = {};
      for (let i = Math.floor(random() * 6); i > 0; i--) object[keys[Math.floor(random() * keys.length)] as string] = make(depth + 1);
      return object;
    };
    for (let i = 0; i < 2000; i++) {
      const value = make(0);
      assert.equal(canonicalJson(value), reference(value));
    }
    // eslint-disable-next-line no-sparse-arrays
    const sparse = [1, , 2];
    assert.equal(canonicalJson(sparse), reference(sparse));
    assert.equal(canonicalJson({ d: new Date(0), n: { x: undefined } }), reference({ d: new Date(0), n: { x: undefined } }));
  });
});

describe('AuditChainVerifier', () => {
  it('accepts an intact chain and reports its head', () => {
    const records = chain(10);
    const verifier = new AuditChainVerifier();
    for (const r of records) assert.equal(verifier.feed(r), undefined);
    assert.equal(verifier.count, 10);
    assert.equal(verifier.headHash, (records[9] as AuditRecord).hash);
  });

  it('the hash covers every field', () => {
    const [r] = chain(1) as [AuditRecord];
    for (const changed of [
      { ...r, seq: 2 }, { ...r, ts: r.ts + 1 }, { ...r, actor: 'mallory' }, { ...r, action: 'stream.close' },
      { ...r, device: 'other' }, { ...r, details: { ...r.details, bytes: 0 } }, { ...r, prevHash: 'f'.repeat(64) },
    ]) {
      assert.notEqual(hashAuditRecord(changed), r.hash);
    }
  });

  it('names a changed record', () => {
    const records = chain(6);
    records[3] = { ...(records[3] as AuditRecord), details: { session: 's4', bytes: 0 } };
    assert.deepEqual(verify(records)?.seq, 4);
    assert.equal(verify(records)?.problem, 'changed');
  });

  it('names the record after a removal, even when the hashes were re-linked', () => {
    const records = chain(6);
    records.splice(2, 1); // remove seq 3
    assert.equal(verify(records)?.seq, 4);
    assert.equal(verify(records)?.problem, 'removed-before');
    assert.match(verify(records)?.message ?? '', /records 3\.\.3 were removed/);
    assert.equal(verify(reseal(records, 2))?.problem, 'removed-before');
  });

  it('names an inserted or re-sealed record', () => {
    const records = chain(6);
    // Re-seal record 4 with different content but its old seq: its own hash is consistent,
    // but record 5 no longer links to it.
    const forged = sealAuditRecord({ ...(records[3] as AuditRecord), actor: 'mallory' });
    records[3] = forged;
    assert.equal(verify(records)?.seq, 5);
    assert.equal(verify(records)?.problem, 'inserted-or-reordered');
  });

  it('names a first record that does not start from the genesis hash', () => {
    const [first] = chain(1) as [AuditRecord];
    const detached = sealAuditRecord({ ...first, prevHash: 'a'.repeat(64) });
    assert.equal(verify([detached])?.problem, 'inserted-or-reordered');
    assert.equal(verify([first])?.problem, undefined);
  });

  it('names reordered records', () => {
    const records = chain(4);
    const swapped = [records[0], records[2], records[1], records[3]] as AuditRecord[];
    assert.equal(verify(swapped)?.seq, 3);
  });
});
