/**
 * Caps how many control links dial at once. An agent hosting thousands of virtual devices
 * would otherwise open every TLS handshake in the same instant, at start and again after
 * each hub restart, and run into the hub's limit on pending handshakes.
 */
export class DialGate {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly maxConcurrent: number) {}

  /** Resolves with a release function once a slot is free; releasing twice is harmless. */
  acquire(): Promise<() => void> {
    return new Promise((resolve) => {
      const grant = (): void => {
        this.active++;
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.active--;
          this.waiting.shift()?.();
        });
      };
      if (this.active < this.maxConcurrent) grant();
      else this.waiting.push(grant);
    });
  }
}
