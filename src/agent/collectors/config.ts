/**
 * The `monitoring:` section of the agent config: the edge's security collector. On by
 * default; every source has its path or command and interval and can be switched off.
 */
import { z } from 'zod';
import { durationSchema, sizeSchema } from '../../util/schemas.js';

const interval = durationSchema.pipe(z.number().min(1000, 'at least 1s').max(86_400_000, 'at most 1d'));
const command = z.array(z.string().min(1).max(4096)).min(1).max(64);
const path = z.string().min(1).max(4096);
/** A source's own interval; without one, monitoring.interval. */
const source = <T extends z.ZodRawShape>(shape: T) =>
  z.strictObject({ enabled: z.boolean().default(true), interval: interval.optional(), ...shape }).prefault({} as never);

export const DEFAULT_JOURNALCTL = ['journalctl', '--follow', '--output=json', '--lines=0', '--identifier=sshd', '--identifier=sshd-session'];

export const AgentMonitoringSchema = z.strictObject({
  /** The whole collector; off: the agent announces no telemetry capability. */
  enabled: z.boolean().default(true),
  /** How often the inventories (ports, users, SSH settings, firewall, facts) are read. */
  interval: interval.prefault('60s'),
  /**
   * Where sshd's login lines come from: a file path (followed across rotation and truncation),
   * `journald`, `auto` (the first of /var/log/auth.log and /var/log/secure that exists, else
   * journald when journalctl is installed) or `off`.
   */
  authLog: z.string().min(1).max(4096).default('auto'),
  /** sshd's configuration file: given to `sshd -T -f`, and read directly when that cannot run. */
  sshdConfig: path.default('/etc/ssh/sshd_config'),
  /**
   * How often the collector sends the hashes of its inventories (drift check) when nothing
   * changed; also its sign of life (the hub alerts when several are missed).
   */
  checkpointInterval: interval.prefault('5m'),
  /** Login events are gathered this long (identical ones merged with a count) before they are sent. */
  eventFlush: durationSchema.pipe(z.number().min(50, 'at least 50ms').max(60_000, 'at most 1m')).prefault('1s'),
  /** Where the event queue and the collector's position in the logs are kept (relative to the config file). */
  stateDir: path.default('monitoring'),
  /** The on-disk event queue holds at most this much while the hub is unreachable; the oldest batches go first (counted). */
  queueMaxBytes: sizeSchema.pipe(z.number().min(64 * 1024, 'at least 64KiB').max(1024 ** 3, 'at most 1GiB')).prefault('8MiB'),
  logins: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** The auth log file is checked this often as well as on change notifications (rotation, missed events). */
      poll: durationSchema.pipe(z.number().min(100, 'at least 100ms').max(60_000, 'at most 1m')).prefault('1s'),
      /** The command that follows the journal (JSON lines on stdout) when authLog is journald. */
      journalctl: command.default(DEFAULT_JOURNALCTL),
    })
    .prefault({}),
  ports: source({ procRoot: path.default('/proc') }),
  users: source({
    passwd: path.default('/etc/passwd'),
    group: path.default('/etc/group'),
    /** Members of these groups (and uid-0 accounts) are privileged accounts. */
    privilegedGroups: z.array(z.string().min(1).max(64)).max(64).default(['sudo', 'wheel', 'admin']),
  }),
  sshd: source({
    /** Run to get the effective settings (`-f monitoring.sshdConfig` is added); null: read the file only. */
    command: command.nullable().default(['sshd', '-T']),
  }),
  firewall: source({
    /**
     * A command that prints the ruleset, as `nft -j list ruleset` (JSON) or `iptables-save`
     * (text) do; the format is recognised. Default: nft, then iptables-save.
     */
    command: command.optional(),
  }),
  facts: source({}),
});

export type AgentMonitoringConfig = z.output<typeof AgentMonitoringSchema>;
