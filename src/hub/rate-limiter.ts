/**
 * Failed-authentication limiter per source address: a fixed one-minute window. It counts
 * failures only, and is consulted only for a caller that has just failed: a valid credential
 * is never refused because of someone else's failures from the same address (a NAT, an
 * office egress, a reverse proxy). A source over its budget is answered 429 with Retry-After
 * instead of 401 until its window ends, which slows guessing and bounds what it costs us.
 */
export class AuthFailureLimiter {
  private readonly windows = new Map<string, { start: number; failures: number }>();
  private readonly windowMs = 60_000;

  constructor(
    private readonly maxFailures: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds to wait, or 0 when the source is within its budget. */
  retryAfterSeconds(source: string): number {
    const entry = this.windows.get(source);
    if (!entry) return 0;
    const elapsed = this.now() - entry.start;
    if (elapsed >= this.windowMs) {
      this.windows.delete(source);
      return 0;
    }
    return entry.failures >= this.maxFailures ? Math.ceil((this.windowMs - elapsed) / 1000) : 0;
  }

  /** Records a failure; returns true when this failure uses up the budget. */
  recordFailure(source: string): boolean {
    const now = this.now();
    let entry = this.windows.get(source);
    if (!entry || now - entry.start >= this.windowMs) {
      entry = { start: now, failures: 0 };
      this.windows.set(source, entry);
    }
    entry.failures++;
    return entry.failures === this.maxFailures;
  }

  /** Drop expired windows so the map stays bounded by active failing sources. */
  sweep(): void {
    const now = this.now();
    for (const [source, entry] of this.windows) {
      if (now - entry.start >= this.windowMs) this.windows.delete(source);
    }
  }
}
