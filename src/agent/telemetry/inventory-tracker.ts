/**
 * One inventory as the collector sees it and as the hub has confirmed it. The collector
 * sends the difference between the two (rows set, keys removed) as the next sequence number,
 * or the full state when the hub asked for it or holds nothing, so a delta always applies to
 * exactly what the hub has.
 */
import type { InventoryName, InventoryRow } from '../../protocol/messages/telemetry.js';
import { canonicalRow, stateHash } from '../../protocol/telemetry-codec.js';

export type InventoryChangeToSend =
  | { full: true; seq: number; content: { rows: InventoryRow[]; hash: string } }
  | { full: false; seq: number; content: { set: InventoryRow[]; removed: string[]; hash: string } };

export class InventoryTracker {
  private current: Map<string, InventoryRow> | undefined;
  private confirmed: Map<string, InventoryRow> | undefined;
  private hubSeq = 0;
  private needFull = true;
  /** The state the last checkpoint described (the current one may move on before the hub answers). */
  private checkpointed: Map<string, InventoryRow> | undefined;

  constructor(readonly name: InventoryName) {}

  /** Records a fresh read; returns true when it differs from the previous one. */
  update(rows: readonly InventoryRow[]): boolean {
    const next = new Map(rows.map((row) => [row.k, row]));
    const changed = !this.current || !sameRows(this.current, next);
    this.current = next;
    return changed;
  }

  get known(): boolean {
    return this.current !== undefined;
  }

  /** What to report in a checkpoint: the confirmed state (or, before the first sync, the current one). */
  checkpoint(): { seq: number; hash: string } | undefined {
    const state = this.confirmed ?? this.current;
    this.checkpointed = state;
    return state ? { seq: this.hubSeq, hash: stateHash(state.values()) } : undefined;
  }

  /**
   * The hub's answer to a checkpoint. No resync means its hash matched the checkpoint's: the
   * hub holds the confirmed state (or, at the first sync, the current one) at its sequence
   * number, and deltas continue from there. A resync means the next send is the full state.
   */
  adopt(hub: { seq: number; hash: string } | undefined, resync: boolean): void {
    if (!this.current) return;
    if (resync || !hub) {
      this.needFull = true;
      this.hubSeq = hub?.seq ?? this.hubSeq;
      return;
    }
    this.confirmed ??= this.checkpointed;
    if (!this.confirmed) this.needFull = true;
    this.hubSeq = hub.seq;
    if (this.confirmed) this.needFull = false;
  }

  /** Forget what the hub confirmed: the next send is the full state. */
  requireFull(): void {
    this.needFull = true;
  }

  /** The change to send now, or undefined when the hub already has the current state. */
  pending(): InventoryChangeToSend | undefined {
    const current = this.current;
    if (!current) return undefined;
    const hash = stateHash(current.values());
    if (this.needFull || !this.confirmed) return { full: true, seq: this.hubSeq + 1, content: { rows: [...current.values()], hash } };
    const set: InventoryRow[] = [];
    for (const [key, row] of current) {
      const old = this.confirmed.get(key);
      if (!old || canonicalRow(old) !== canonicalRow(row)) set.push(row);
    }
    const removed = [...this.confirmed.keys()].filter((key) => !current.has(key));
    if (set.length === 0 && removed.length === 0) return undefined;
    return { full: false, seq: this.hubSeq + 1, content: { set, removed, hash } };
  }

  /** The hub applied `sent`: it now holds the state that was current when it was built. */
  confirm(sent: InventoryChangeToSend): void {
    this.hubSeq = sent.seq;
    this.confirmed = new Map((sent.full ? sent.content.rows : this.applyDelta(sent.content)).map((row) => [row.k, row]));
    this.needFull = false;
  }

  private applyDelta(delta: { set: InventoryRow[]; removed: string[] }): InventoryRow[] {
    const next = new Map(this.confirmed);
    for (const key of delta.removed) next.delete(key);
    for (const row of delta.set) next.set(row.k, row);
    return [...next.values()];
  }
}

function sameRows(a: ReadonlyMap<string, InventoryRow>, b: ReadonlyMap<string, InventoryRow>): boolean {
  if (a.size !== b.size) return false;
  for (const [key, row] of a) {
    const other = b.get(key);
    if (!other || canonicalRow(other) !== canonicalRow(row)) return false;
  }
  return true;
}
