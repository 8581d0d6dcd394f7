/**
 * Composes the vault for a hub: the repository of its store engine and the key-encryption
 * key in DATA_DIR/vault.key. The key file is created only while the vault holds nothing
 * sealed; once it does, a missing key file stops the hub with a clear message rather than
 * starting with a new key that opens nothing.
 */
import { join } from 'node:path';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { SqliteVaultRepository } from '../store/sqlite/vault-repository.js';
import type { Store } from '../store/store.js';
import type { VaultStore } from '../store/vault-store.js';
import { DrawbridgeError } from '../errors.js';
import type { Logger } from '../util/logger.js';
import { FileKeyEncryptionKey } from './key-encryption-key.js';
import { VaultService, type VaultSettings } from './vault-service.js';

export function vaultRepositoryFor(store: Store): VaultStore {
  if (store instanceof SqliteStore) return new SqliteVaultRepository(store);
  throw new DrawbridgeError('CONFIG_INVALID', `the vault has no repository for the ${store.engine} store engine yet`);
}

export async function openVault(options: { dataDir: string; store: Store; settings: VaultSettings; now: () => number; logger: Logger }): Promise<VaultService> {
  const repo = vaultRepositoryFor(options.store);
  const sealed = await repo.countSealed();
  const kek = FileKeyEncryptionKey.open(join(options.dataDir, 'vault.key'), { create: sealed === 0 });
  return new VaultService(repo, kek, options.store, options.settings, options.now, options.logger);
}
