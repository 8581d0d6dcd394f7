/**
 * A FIFO of bytes held in a few large blocks. Frames that must wait (the socket is backed up)
 * are copied in rather than kept as they came: a frame is a view of a 16 KiB read buffer plus
 * a small header, and thousands of such objects waiting across garbage collections get
 * promoted and keep their read buffers alive, which turns into costly major collections.
 */
const BLOCK_BYTES = 64 * 1024;

export class ByteQueue {
  private readonly blocks: Buffer[] = [];
  private open: Buffer | undefined;
  private fill = 0;
  private total = 0;

  /** Bytes queued */
  get length(): number {
    return this.total;
  }

  push(data: Buffer): void {
    let offset = 0;
    while (offset < data.length) {
      if (!this.open || this.fill === this.open.length) {
        this.seal();
        this.open = Buffer.allocUnsafe(BLOCK_BYTES);
        this.fill = 0;
      }
      const take = Math.min(data.length - offset, this.open.length - this.fill);
      data.copy(this.open, this.fill, offset, offset + take);
      this.fill += take;
      offset += take;
    }
    this.total += data.length;
  }

  /** The oldest bytes, as one block (at most BLOCK_BYTES), or undefined when empty. */
  shift(): Buffer | undefined {
    if (this.blocks.length === 0) this.seal();
    const block = this.blocks.shift();
    if (block) this.total -= block.length;
    return block;
  }

  clear(): void {
    this.blocks.length = 0;
    this.open = undefined;
    this.fill = 0;
    this.total = 0;
  }

  private seal(): void {
    if (this.open && this.fill > 0) this.blocks.push(this.open.subarray(0, this.fill));
    this.open = undefined;
    this.fill = 0;
  }
}
