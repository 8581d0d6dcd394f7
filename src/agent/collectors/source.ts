/** What an inventory source returns from one read: its rows (and a note on what it could not see), or why it could not read at all. */
import type { InventoryName, InventoryRow } from '../../protocol/messages/telemetry.js';

export type SourceResult = { rows: InventoryRow[]; note?: string } | { error: string };

export interface InventorySource {
  /** The inventory it fills, and the name it reports its state under. */
  readonly inventory: Exclude<InventoryName, 'sources'>;
  readonly intervalMs: number;
  collect(): Promise<SourceResult>;
}
