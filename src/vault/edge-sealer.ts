/**
 * Seals secret versions for edges during a fan-out. A version going to a thousand edges is
 * read from the store and opened (data key unwrapped, value decrypted) once, not once per
 * edge: the opened value is shared by the deliveries of that version that are under way,
 * and wiped when the last of them is sealed. Sealing is bounded (MAX_CONCURRENT_SEALS at a
 * time), so a large fan-out sends its first deliveries while the rest are still being
 * sealed, instead of sealing everything before anything goes out.
 */
import { sealForEdge, type SealedForEdge } from '../protocol/secret-hpke.js';
import type { EdgeRecord } from '../store/store.js';
import type { VaultService } from './vault-service.js';

/** Seals under way at once. */
const MAX_CONCURRENT_SEALS = 32;

interface OpenedValue {
  value: Promise<Buffer | undefined>;
  users: number;
}

export class EdgeSealer {
  private readonly opened = new Map<string, OpenedValue>();
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly vault: VaultService) {}

  /** The version sealed to the edge's key; undefined when it was deleted or destroyed meanwhile. */
  async seal(edge: Pick<EdgeRecord, 'id' | 'encryptionKey'>, name: string, version: number): Promise<SealedForEdge | undefined> {
    const key = `${name}\0${version}`;
    let entry = this.opened.get(key);
    if (!entry) {
      entry = { value: this.vault.valueForDelivery(name, version), users: 0 };
      entry.value.catch(() => undefined);
      this.opened.set(key, entry);
    }
    entry.users++;
    try {
      await this.slot();
      try {
        const value = await entry.value;
        return value ? await sealForEdge(edge.encryptionKey, edge.id, name, version, value) : undefined;
      } finally {
        this.release();
      }
    } finally {
      if (--entry.users === 0) {
        this.opened.delete(key);
        entry.value.then((value) => value?.fill(0), () => undefined);
      }
    }
  }

  private slot(): Promise<void> {
    if (this.active < MAX_CONCURRENT_SEALS) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}
