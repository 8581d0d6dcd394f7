/**
 * sshd's login lines to events. Understands the syslog formats of Debian/Ubuntu and RHEL
 * (`Mar  3 10:00:01 host sshd[123]: ...`, and rsyslog's ISO 8601 timestamps), journald's
 * MESSAGE field, and bare messages as `sshd -E FILE` writes them. Lines from other programs,
 * and sshd lines that are not about logins, give nothing; so do junk and binary lines.
 */
import { MAX_EVIDENCE_CHARS, type TelemetryEvent } from '../../protocol/messages/telemetry.js';

/** Programs whose lines are sshd's (OpenSSH 9.8 split the per-connection part into sshd-session). */
const SSHD_PROGRAMS = new Set(['sshd', 'sshd-session', 'sshd-auth']);

const RFC3164 = /^(?:<\d{1,3}>)?[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (\S+) ([\w./-]+)(?:\[\d+\])?: (.*)$/s;
const ISO_PREFIX = /^(?:<\d{1,3}>1? ?)?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) (\S+) ([\w./-]+)(?:\[\d+\])?: (.*)$/s;

/**
 * User names in these lines are chosen by the client. The user part is greedy and the line's
 * end is anchored, so the source address is the last "from ADDRESS port N" sshd wrote: a user
 * name that contains "from 10.0.0.1 port 1" cannot pin the attempt on someone else.
 */
const USER = '(.{0,128})';
const ADDRESS = '([0-9A-Fa-f.:]{2,64}|[A-Za-z0-9.-]{1,253})';
/** What sshd writes after the port: the protocol, a key's type and fingerprint, [preauth]. */
const TAIL = '(?: ssh2)?(?:: [A-Za-z0-9-]+ [A-Za-z0-9+/=:_-]+)?(?: \\[preauth\\])?\\s*$';

const PATTERNS: { kind: TelemetryEvent['kind']; pattern: RegExp; fields: ('method' | 'invalid' | 'user' | 'src')[] }[] = [
  { kind: 'ssh.success', pattern: new RegExp(`^Accepted (\\S+) for ${USER} from ${ADDRESS} port \\d+${TAIL}`), fields: ['method', 'user', 'src'] },
  { kind: 'ssh.failure', pattern: new RegExp(`^Failed (\\S+) for (invalid user )?${USER} from ${ADDRESS} port \\d+${TAIL}`), fields: ['method', 'invalid', 'user', 'src'] },
  { kind: 'ssh.invalid-user', pattern: new RegExp(`^Invalid user ${USER} from ${ADDRESS}(?: port \\d+)?\\s*$`), fields: ['user', 'src'] },
  { kind: 'ssh.too-many', pattern: new RegExp(`^error: maximum authentication attempts exceeded for (invalid user )?${USER} from ${ADDRESS} port \\d+${TAIL}`), fields: ['invalid', 'user', 'src'] },
  { kind: 'ssh.too-many', pattern: new RegExp(`^Disconnecting (invalid|authenticating) user ${USER} ${ADDRESS} port \\d+: Too many authentication failures${TAIL}`), fields: ['invalid', 'user', 'src'] },
  { kind: 'ssh.preauth-close', pattern: new RegExp(`^(?:Connection closed by|Disconnected from) (invalid |authenticating )user ${USER} ${ADDRESS} port \\d+ \\[preauth\\]\\s*$`), fields: ['invalid', 'user', 'src'] },
  { kind: 'ssh.preauth-close', pattern: new RegExp(`^(?:Connection closed by|Disconnected from) ${ADDRESS} port \\d+ \\[preauth\\]\\s*$`), fields: ['src'] },
];

const EVIDENCE_KINDS = new Set<TelemetryEvent['kind']>(['ssh.failure', 'ssh.invalid-user', 'ssh.success']);

/** A line shown as evidence: one line, printable, bounded. */
export function evidenceOf(line: string): string {
  // eslint-disable-next-line no-control-regex
  return line.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?').slice(0, MAX_EVIDENCE_CHARS);
}

/** true for text that is mostly not text (NULs, replacement characters, control bytes). */
export function looksBinary(line: string): boolean {
  // eslint-disable-next-line no-control-regex
  const odd = line.match(/[\u0000-\u0008\u000e-\u001f\ufffd]/g);
  return odd !== null && odd.length * 8 > line.length;
}

/** Parses sshd's message (after any syslog prefix) into an event at time `t`. */
export function parseSshdMessage(message: string, t: number, line = message): TelemetryEvent | undefined {
  const text = message.trimEnd();
  for (const { kind, pattern, fields } of PATTERNS) {
    const match = pattern.exec(text);
    if (!match) continue;
    // The line goes along as evidence where an alert can quote it; a disconnect before
    // authentication adds nothing to the failure it follows, and costs bytes under attack.
    const event: TelemetryEvent = EVIDENCE_KINDS.has(kind) ? { kind, t, n: 1, line: evidenceOf(line.trimEnd()) } : { kind, t, n: 1 };
    fields.forEach((field, i) => {
      const value = match[i + 1];
      if (field === 'method' && value) event.method = value.slice(0, 64);
      if (field === 'user' && value !== undefined) event.user = value.slice(0, 128);
      if (field === 'src' && value) event.src = value;
    });
    return event;
  }
  return undefined;
}

/**
 * Parses one auth log line. `now` is when it was read: lines carry no year (RFC 3164) or may
 * come from a skewed clock, so an ISO timestamp is used only when it is plausible (within a
 * week before and five minutes after now), and otherwise the time it was read.
 */
export function parseAuthLine(line: string, now: number): TelemetryEvent | undefined {
  if (line.length === 0 || looksBinary(line)) return undefined;
  const iso = ISO_PREFIX.exec(line);
  if (iso) {
    if (!SSHD_PROGRAMS.has(programName(iso[3] as string))) return undefined;
    const stamped = Date.parse(iso[1] as string);
    const t = !Number.isNaN(stamped) && stamped <= now + 300_000 && stamped >= now - 7 * 86_400_000 ? stamped : now;
    return parseSshdMessage(iso[4] as string, t, line);
  }
  const classic = RFC3164.exec(line);
  if (classic) {
    if (!SSHD_PROGRAMS.has(programName(classic[2] as string))) return undefined;
    return parseSshdMessage(classic[3] as string, now, line);
  }
  // A bare message: sshd writing its own log file (sshd -E).
  return parseSshdMessage(line, now, line);
}

function programName(tag: string): string {
  return tag.slice(tag.lastIndexOf('/') + 1);
}
