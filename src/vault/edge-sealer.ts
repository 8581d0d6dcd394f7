/**
 * Seals secret versions for edges during a fan-out. A version going to a thousand edges is
 * read from the store and opened (data key unwrapped, value decrypted) once, not once per
 * edge: the opened value is shared by the deliveries of that version that are under way,
 * and wiped when the last of them is sealed. Sealing (synchronous, about 0.2 ms each) runs
 * at most SEALS_PER_TURN per turn of the event loop, so a large fan-out sends its first
 * deliveries, and takes their acknowledgements, while the rest are still being sealed,
 * instead of sealing everything before anything goes out.
 */
import { sealForEdge, type SealedForEdge } from '../protocol/secret-hpke.js';
import type { EdgeRecord } from '../store/store.js';
import type { VaultService } from './vault-service.js';

/** Seals per turn of the event loop: a few milliseconds of work between I/O. */
const SEALS_PER_TURN = 16;

interface OpenedValue {
  value: Promise<Buffer | undefined>;
  users: number;
}

export class EdgeSealer {
  private readonly opened = new Map<string, OpenedValue>();
  private sealsThisTurn = 0;
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
      const value = await entry.value;
      if (!value) return undefined;
      await this.turn();
      return sealForEdge(edge.encryptionKey, edge.id, name, version, value);
    } finally {
      if (--entry.users === 0) {
        this.opened.delete(key);
        entry.value.then((value) => value?.fill(0), () => undefined);
      }
    }
  }

  /** Resolves when this turn of the event loop still has room for a seal (or a later one does). */
  private turn(): Promise<void> {
    if (this.sealsThisTurn === 0) setImmediate(() => this.nextTurn());
    if (this.sealsThisTurn < SEALS_PER_TURN) {
      this.sealsThisTurn++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private nextTurn(): void {
    const ready = this.waiting.splice(0, SEALS_PER_TURN);
    this.sealsThisTurn = ready.length;
    for (const resolve of ready) resolve();
    if (this.waiting.length > 0 || ready.length > 0) setImmediate(() => this.nextTurn());
  }
}
