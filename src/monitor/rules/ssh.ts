/**
 * Alert rules over an edge's login events: brute force and password spraying from one
 * source, a successful login after failures, and root logins. Stateful per edge (sliding
 * windows per source address), on the edge's own event times, so that a batch that waited
 * in the edge's offline queue is judged by when its events happened.
 */
import type { TelemetryEvent } from '../../protocol/messages/telemetry.js';
import type { AlertFire } from '../../store/monitor-store.js';
import type { MonitoringConfig } from '../config.js';

/** Source addresses tracked per edge; beyond this the least recently seen is forgotten. */
export const MAX_TRACKED_SOURCES = 4096;
/** Failure records kept per source (older ones are merged), bounding memory under a flood. */
const MAX_ENTRIES_PER_SOURCE = 512;

interface FailureEntry {
  t: number;
  n: number;
  user: string | undefined;
}

const FAILURE_KINDS = new Set<TelemetryEvent['kind']>(['ssh.failure', 'ssh.invalid-user']);

export class SshActivity {
  private readonly sources = new Map<string, FailureEntry[]>();

  constructor(
    private readonly rules: MonitoringConfig['rules'],
    private readonly maxSources = MAX_TRACKED_SOURCES,
  ) {}

  private get horizonMs(): number {
    return Math.max(this.rules['ssh-brute-force'].window, this.rules['ssh-password-spray'].window, this.rules['ssh-login-after-failures'].window);
  }

  /** Sources tracked now (for tests and memory bounds). */
  get trackedSources(): number {
    return this.sources.size;
  }

  /** How far back the windows reach, for seeding them from stored events. */
  get windowMs(): number {
    return this.horizonMs;
  }

  /** Fills the windows with earlier failures (stored before a hub restart) without firing anything. */
  seed(events: readonly TelemetryEvent[]): void {
    for (const event of events) {
      if (!FAILURE_KINDS.has(event.kind) || !event.src) continue;
      const entries = this.history(event.src);
      entries.push({ t: event.last ?? event.t, n: event.n, user: event.user });
      if (entries.length > MAX_ENTRIES_PER_SOURCE) entries.shift();
    }
  }

  /**
   * Feeds a batch of events (in time order) and returns the rules that fire. `privileged`
   * holds the edge's uid-0 account names, for root-login.
   */
  evaluate(events: readonly TelemetryEvent[], privileged: ReadonlySet<string>): AlertFire[] {
    const fires: AlertFire[] = [];
    const ordered = [...events].sort((a, b) => (a.last ?? a.t) - (b.last ?? b.t));
    for (const event of ordered) {
      if (FAILURE_KINDS.has(event.kind)) this.onFailure(event, fires);
      else if (event.kind === 'ssh.success') this.onSuccess(event, privileged, fires);
    }
    return fires;
  }

  private history(source: string): FailureEntry[] {
    let entries = this.sources.get(source);
    if (entries) {
      // Most recently seen last: the first key is the one to forget.
      this.sources.delete(source);
    } else {
      entries = [];
      if (this.sources.size >= this.maxSources) this.sources.delete(this.sources.keys().next().value as string);
    }
    this.sources.set(source, entries);
    return entries;
  }

  private onFailure(event: TelemetryEvent, fires: AlertFire[]): void {
    const source = event.src;
    if (!source) return;
    const at = event.last ?? event.t;
    const entries = this.history(source);
    const horizon = at - this.horizonMs;
    while (entries.length > 0 && (entries[0] as FailureEntry).t < horizon) entries.shift();
    entries.push({ t: at, n: event.n, user: event.user });
    if (entries.length > MAX_ENTRIES_PER_SOURCE) {
      const [a, b] = entries.splice(0, 2) as [FailureEntry, FailureEntry];
      entries.unshift({ t: b.t, n: a.n + b.n, user: b.user });
    }
    const evidence = event.line ? [event.line] : [];

    const brute = this.rules['ssh-brute-force'];
    if (brute.enabled) {
      const failures = sumSince(entries, at - brute.window);
      if (failures >= brute.failures) {
        fires.push({
          rule: 'ssh-brute-force',
          key: source,
          severity: brute.severity,
          facts: { sourceAddress: source, user: event.user ?? null, failuresInWindow: failures, windowSeconds: brute.window / 1000 },
          count: event.n,
          initialCount: failures,
          at,
          evidence,
        });
      }
    }
    const spray = this.rules['ssh-password-spray'];
    if (spray.enabled) {
      const users = usersSince(entries, at - spray.window);
      if (users.size >= spray.users) {
        fires.push({
          rule: 'ssh-password-spray',
          key: source,
          severity: spray.severity,
          facts: { sourceAddress: source, users: [...users].slice(0, 20), userCount: users.size, windowSeconds: spray.window / 1000 },
          count: event.n,
          initialCount: sumSince(entries, at - spray.window),
          at,
          evidence,
        });
      }
    }
  }

  private onSuccess(event: TelemetryEvent, privileged: ReadonlySet<string>, fires: AlertFire[]): void {
    const at = event.last ?? event.t;
    const user = event.user ?? 'unknown';
    const source = event.src ?? 'unknown';
    const evidence = event.line ? [event.line] : [];
    const after = this.rules['ssh-login-after-failures'];
    if (after.enabled && event.src) {
      const entries = this.sources.get(event.src) ?? [];
      const failures = sumSince(entries, at - after.window);
      if (failures >= after.failures) {
        fires.push({
          rule: 'ssh-login-after-failures',
          key: `${source} ${user}`,
          severity: after.severity,
          facts: { sourceAddress: source, user, method: event.method ?? null, failuresBefore: failures, windowSeconds: after.window / 1000 },
          count: event.n,
          at,
          evidence,
        });
      }
    }
    const root = this.rules['root-login'];
    if (root.enabled && (user === 'root' || privileged.has(user))) {
      fires.push({
        rule: 'root-login',
        key: `${user} ${source}`,
        severity: root.severity,
        facts: { sourceAddress: source, user, method: event.method ?? null },
        count: event.n,
        at,
        evidence,
      });
    }
  }
}

function sumSince(entries: readonly FailureEntry[], since: number): number {
  let sum = 0;
  for (const entry of entries) if (entry.t >= since) sum += entry.n;
  return sum;
}

function usersSince(entries: readonly FailureEntry[], since: number): Set<string> {
  const users = new Set<string>();
  for (const entry of entries) if (entry.t >= since && entry.user) users.add(entry.user);
  return users;
}
