/**
 * Failed-authentication limiter per source address: a fixed one-minute window. Once a
 * source exceeds the limit it gets 429 with Retry-After until its window ends, and only
 * the first refusal of a window is audited (an attacker cannot flood the audit log).
 */
export class AuthFailureLimiter {
  private readonly windows = new Map<string, { start: number; failures: number; trippedLogged: boolean }>();
  private readonly windowMs = 60_000;

  constructor(
    private readonly maxFailures: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds to wait, or 0 when the source may try. */
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

  /** Records a failure; returns true when this failure trips the limit (worth auditing once). */
  recordFailure(source: string): boolean {
    const now = this.now();
    let entry = this.windows.get(source);
    if (!entry || now - entry.start >= this.windowMs) {
      entry = { start: now, failures: 0, trippedLogged: false };
      this.windows.set(source, entry);
    }
    entry.failures++;
    if (entry.failures >= this.maxFailures && !entry.trippedLogged) {
      entry.trippedLogged = true;
      return true;
    }
    return false;
  }

  /** Drop expired windows so the map stays bounded by active attackers. */
  sweep(): void {
    const now = this.now();
    for (const [source, entry] of this.windows) {
      if (now - entry.start >= this.windowMs) this.windows.delete(source);
    }
  }
}
