/** Envelope encryption at rest and the file key-encryption key. */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { DrawbridgeError } from '../../src/errors.js';
import { openVersion, rewrapVersion, sealVersion } from '../../src/vault/envelope.js';
import { FileKeyEncryptionKey } from '../../src/vault/key-encryption-key.js';
import { assertSecretName, isValidSecretName } from '../../src/vault/names.js';

const dir = mkdtempSync(join(tmpdir(), 'db-vault-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const code = (c: string) => (e: DrawbridgeError) => e.code === c;

describe('secret names', () => {
  it('follow the device-name rules plus "/" between segments', () => {
    for (const ok of ['db', 'plant-3/db-password', 'a/b/c', 'x'.repeat(63)]) assert.ok(isValidSecretName(ok), ok);
    for (const bad of ['', '/a', 'a/', 'a//b', 'A', '-a', 'a-', 'a/-b', 'a b', 'a\nb', '../x', 'a/'.repeat(9) + 'a', 'x'.repeat(64)]) {
      assert.ok(!isValidSecretName(bad), JSON.stringify(bad));
    }
    assert.throws(() => assertSecretName('Bad Name'), code('INVALID_NAME'));
  });
});

describe('file key-encryption key', () => {
  it('is created at mode 0600 and loads back', async () => {
    const path = join(dir, 'a.key');
    const kek = FileKeyEncryptionKey.open(path, { create: true });
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const again = FileKeyEncryptionKey.open(path, { create: false });
    assert.equal(again.currentId, kek.currentId);
    const wrapped = await kek.wrap(Buffer.alloc(32, 7), Buffer.from('ctx'));
    assert.deepEqual(await again.unwrap(wrapped, Buffer.from('ctx')), Buffer.alloc(32, 7));
    await assert.rejects(again.unwrap(wrapped, Buffer.from('other')), code('DECRYPT_FAILED'));
  });

  it('is never made anew when the vault needs the old one, and refuses a file others can read', () => {
    assert.throws(() => FileKeyEncryptionKey.open(join(dir, 'missing.key'), { create: false }), code('VAULT_KEY_UNAVAILABLE'));
    const path = join(dir, 'open.key');
    FileKeyEncryptionKey.open(path, { create: true });
    chmodSync(path, 0o644);
    assert.throws(() => FileKeyEncryptionKey.open(path, { create: false }), code('CONFIG_INVALID'));
  });

  it('rotates: the old key unwraps until retired, then it is gone from the file', async () => {
    const path = join(dir, 'rot.key');
    const kek = FileKeyEncryptionKey.open(path, { create: true });
    const old = kek.currentId;
    const sealed = await sealVersion(kek, 'a', 1, Buffer.from('v'));
    const fresh = await kek.rotate();
    assert.notEqual(fresh, old);
    assert.deepEqual(FileKeyEncryptionKey.open(path, { create: false }).ids().sort(), [old, fresh].sort());
    const rewrapped = await rewrapVersion(kek, 'a', 1, sealed);
    assert.equal(rewrapped.kekId, fresh);
    assert.deepEqual(rewrapped.ciphertext, sealed.ciphertext, 'the value is not re-encrypted');
    assert.deepEqual(await kek.retire(new Set()), [old]);
    assert.deepEqual(FileKeyEncryptionKey.open(path, { create: false }).ids(), [fresh]);
    assert.equal((await openVersion(kek, 'a', 1, rewrapped)).toString(), 'v');
    await assert.rejects(openVersion(kek, 'a', 1, sealed), code('VAULT_KEY_UNAVAILABLE'));
    assert.ok(!readFileSync(path, 'utf8').includes(old));
  });
});

describe('envelope encryption', () => {
  const kek = FileKeyEncryptionKey.open(join(dir, 'env.key'), { create: true });

  it('round-trips, with a fresh data key and nonce per version', async () => {
    const value = Buffer.from('s3cr3t-value');
    const a = await sealVersion(kek, 'plant-3/db', 1, value);
    const b = await sealVersion(kek, 'plant-3/db', 1, value);
    assert.notDeepEqual(a.ciphertext, b.ciphertext, 'random nonce and data key: same value, different ciphertext');
    assert.notDeepEqual(a.wrappedKey, b.wrappedKey);
    assert.ok(!a.ciphertext.includes(value));
    assert.deepEqual(await openVersion(kek, 'plant-3/db', 1, a), value);
  });

  it('binds name and version: a ciphertext moved to another name or version does not open', async () => {
    const sealed = await sealVersion(kek, 'a', 1, Buffer.from('x'));
    await assert.rejects(openVersion(kek, 'b', 1, sealed), code('DECRYPT_FAILED'));
    await assert.rejects(openVersion(kek, 'a', 2, sealed), code('DECRYPT_FAILED'));
    const other = await sealVersion(kek, 'b', 1, Buffer.from('y'));
    // The data key of one version with the ciphertext of another: refused too.
    await assert.rejects(openVersion(kek, 'a', 1, { ...sealed, wrappedKey: other.wrappedKey }), code('DECRYPT_FAILED'));
  });

  it('detects any flipped bit', async () => {
    const sealed = await sealVersion(kek, 'a', 1, Buffer.from('hello world'));
    for (const i of [0, 12, sealed.ciphertext.length - 1]) {
      const bad = Buffer.from(sealed.ciphertext);
      bad[i] = (bad[i] as number) ^ 1;
      await assert.rejects(openVersion(kek, 'a', 1, { ...sealed, ciphertext: bad }), code('DECRYPT_FAILED'));
    }
    await assert.rejects(openVersion(kek, 'a', 1, { ...sealed, ciphertext: sealed.ciphertext.subarray(0, 10) }), code('DECRYPT_FAILED'));
  });
});
