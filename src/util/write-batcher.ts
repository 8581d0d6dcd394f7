/**
 * Gathers small writes made in one turn of the event loop into one call of `write` (one
 * database transaction instead of one each), in the order they were added. Each caller's
 * promise settles once the batch holding its item is written, so "written before it is
 * acted on" still holds per item. Batches run one at a time; items added while one is
 * being written go into the next. A batch that fails fails every item in it.
 */
export class WriteBatcher<T> {
  private pending: { item: T; resolve: () => void; reject: (error: unknown) => void }[] = [];
  private scheduled = false;
  private writing: Promise<void> = Promise.resolve();

  /**
   * @param write writes every item given, all or none
   * @param maxBatch items per call at most (bounds one transaction's length)
   */
  constructor(
    private readonly write: (items: T[]) => Promise<void>,
    private readonly maxBatch = 500,
  ) {}

  add(item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      // After the current turn: everything added by the callbacks running now joins this batch.
      this.writing = this.writing.then(() => new Promise<void>((done) => setImmediate(() => void this.flush().finally(done))));
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.maxBatch);
      try {
        await this.write(batch.map((p) => p.item));
        for (const p of batch) p.resolve();
      } catch (error) {
        for (const p of batch) p.reject(error);
      }
    }
  }
}
