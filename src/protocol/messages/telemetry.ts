/**
 * Edge security monitoring (capability `telemetry`): the agent's collector reports
 * inventories (listening ports, users, privileged accounts, SSH server settings, firewall,
 * facts, and what each source could read) as deltas, and login events in aggregated batches.
 *
 * Every message is a request, so the agent knows what the hub holds: a delta is applied (or
 * a resync asked for) and an event batch is accepted before the agent forgets it. All are
 * `bulk`: they wait until the link has no stream data queued, so telemetry never delays a
 * stream or a control message.
 *
 * Bodies carry their content as a `payload`: either plain JSON (`{json}`) or raw DEFLATE of
 * the same JSON, base64 (`{deflate}`), whichever is smaller. The link's text frames carry
 * JSON, so compressed bytes must be text: base64 costs a third, and repetitive content such as
 * an inventory or a burst of events still shrinks 3-10 times. The decoded content is validated
 * against the schemas below after inflating, with a cap on the inflated size.
 */
import { z } from 'zod';
import { defineMessage } from '../control.js';

export const TELEMETRY_CAPABILITY = 'telemetry';

/** The inventories an edge reports; each is a set of rows keyed by `k`. */
export const INVENTORIES = ['ports', 'users', 'admins', 'sshd', 'firewall', 'facts', 'sources'] as const;
export type InventoryName = (typeof INVENTORIES)[number];
export const inventoryNameSchema = z.enum(INVENTORIES);

/** The largest decoded (inflated) payload: a deflate bomb is refused at this size. */
export const MAX_DECODED_PAYLOAD_BYTES = 1024 * 1024;
/** Rows in one inventory, and events in one batch. */
export const MAX_INVENTORY_ROWS = 5000;
export const MAX_BATCH_EVENTS = 2000;
/** Evidence lines are cut to this many characters. */
export const MAX_EVIDENCE_CHARS = 512;

const base64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** A short hash of an inventory's full state (see telemetry-codec.ts). */
const stateHash = z.string().regex(/^[A-Za-z0-9_-]{16}$/);
const seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const PayloadSchema = z.union([
  z.strictObject({ json: z.unknown() }),
  z.strictObject({ deflate: z.string().max(700_000).regex(base64, 'must be base64') }),
]);
export type Payload = z.infer<typeof PayloadSchema>;

// ---- decoded contents ----

const text = (max: number) => z.string().max(max);
const ipText = text(64);

/** One row of an inventory: scalar fields only; `k` is its key within the inventory. */
const rowBase = { k: text(300).min(1) };

export const ROW_SCHEMAS = {
  /** A listening TCP socket or a bound, unconnected UDP socket. */
  ports: z.strictObject({ ...rowBase, proto: z.enum(['tcp', 'udp']), addr: ipText, port: z.number().int().min(0).max(65535), proc: text(64).nullable() }),
  /** A local account (never a password hash: /etc/shadow is not read). */
  users: z.strictObject({ ...rowBase, uid: z.number().int().min(0), gid: z.number().int().min(0), shell: text(256) }),
  /** A privileged account: uid 0, or a member of a privileged group (`via` names which). */
  admins: z.strictObject({ ...rowBase, user: text(64), via: text(64) }),
  /** The SSH server's effective settings (one row, k = "sshd"). */
  sshd: z.strictObject({
    ...rowBase,
    permitRootLogin: text(64),
    passwordAuthentication: text(16),
    permitEmptyPasswords: text(16),
    kbdInteractiveAuthentication: text(16),
    ports: text(256),
    listen: text(512),
    from: z.enum(['sshd -T', 'file']),
  }),
  /** The firewall's input policy in summary (one row, k = "firewall"). */
  firewall: z.strictObject({
    ...rowBase,
    backend: z.enum(['nftables', 'iptables', 'none']),
    inputPolicy: z.enum(['accept', 'drop', 'reject', 'none']),
    acceptAll: z.boolean(),
    dropRules: z.number().int().min(0),
    inputChains: z.number().int().min(0),
  }),
  /** Facts about the host (one row, k = "facts"); boot time rather than uptime, so it does not change every minute. */
  facts: z.strictObject({ ...rowBase, os: text(128), kernel: text(128), arch: text(32), agent: text(64), hostname: text(253), bootAt: text(32) }),
  /** What each collector source could read (k = the source): so the hub can say what is not monitored and why. */
  sources: z.strictObject({ ...rowBase, state: z.enum(['ok', 'error', 'off']), message: text(300).nullable() }),
} as const satisfies Record<InventoryName, z.ZodType>;

export type InventoryRow = { k: string } & Record<string, string | number | boolean | null>;

/** Inventory content: a full state (`rows`) or a delta (`set`: rows added or changed, `removed`: keys). */
export const InventoryContentSchema = z.union([
  z.strictObject({ rows: z.array(z.record(z.string(), z.unknown())).max(MAX_INVENTORY_ROWS), hash: stateHash }),
  z.strictObject({
    set: z.array(z.record(z.string(), z.unknown())).max(MAX_INVENTORY_ROWS),
    removed: z.array(text(300)).max(MAX_INVENTORY_ROWS),
    hash: stateHash,
  }),
]);
export type InventoryContent = { rows: InventoryRow[]; hash: string } | { set: InventoryRow[]; removed: string[]; hash: string };

export const EVENT_KINDS = ['ssh.failure', 'ssh.invalid-user', 'ssh.success', 'ssh.too-many', 'ssh.preauth-close'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/**
 * One aggregated event: `n` identical events (same kind, user, source, method) seen between
 * `t` and `last` (ms since the epoch, the edge's clock), with the first log line as evidence.
 */
export const TelemetryEventSchema = z.strictObject({
  kind: z.enum(EVENT_KINDS),
  t: z.number().int().min(0),
  last: z.number().int().min(0).optional(),
  n: z.number().int().min(1).max(1_000_000),
  user: text(128).optional(),
  src: ipText.optional(),
  method: text(64).optional(),
  line: text(MAX_EVIDENCE_CHARS).optional(),
});
export type TelemetryEvent = z.infer<typeof TelemetryEventSchema>;

export const EventBatchContentSchema = z.strictObject({
  events: z.array(TelemetryEventSchema).min(1).max(MAX_BATCH_EVENTS),
});
export type EventBatchContent = z.infer<typeof EventBatchContentSchema>;

// ---- messages ----

const inventoryStates = z.partialRecord(inventoryNameSchema, z.strictObject({ seq, hash: stateHash }));

export const TelemetryState = defineMessage({
  type: 'telemetry.state',
  from: 'agent',
  to: ['hub'],
  capability: TELEMETRY_CAPABILITY,
  priority: 'bulk',
  summary: "The collector's checkpoint: each inventory's sequence number and state hash (or one digest of them all), and the event queue's counters; the hub answers with what it holds where that differs, and the inventories it wants in full.",
  body: z.strictObject({
    /** How often the agent sends this; the hub calls an edge silent after a few missed checkpoints. */
    checkpointIntervalMs: z.number().int().min(1000).max(86_400_000),
    /** Each inventory's state (sent when the link comes up). */
    inventories: inventoryStates.optional(),
    /** Or one digest of them all (see checkpointDigest): a quiet edge's checkpoint stays small. */
    digest: stateHash.optional(),
    /** Identifies the agent's event queue; batch numbers restart when it changes. */
    queueId: z.string().regex(/^[0-9a-f]{16}$/),
    /** Batches waiting on the edge (held while the hub was unreachable). */
    queued: z.number().int().min(0),
    /** Events the edge dropped since it started (the bounded queue overflowed, oldest first). */
    dropped: z.number().int().min(0),
  }),
  result: z.strictObject({
    /**
     * The hub's sequence numbers and hashes, unless the digest matched. Where one matches the
     * agent's, the agent continues from the hub's sequence number; where it differs (drift),
     * or the hub holds none, the agent sends that inventory in full.
     */
    inventories: inventoryStates.optional(),
    /** Inventories to send in full. */
    resync: z.array(inventoryNameSchema),
  }),
});

export const TelemetryInventory = defineMessage({
  type: 'telemetry.inventory',
  from: 'agent',
  to: ['hub'],
  capability: TELEMETRY_CAPABILITY,
  priority: 'bulk',
  maxBytes: 768 * 1024,
  summary: 'An inventory change: a delta (rows set and keys removed) from sequence number seq-1 to seq, or the full state; both with the hash of the full state after it.',
  body: z.strictObject({
    inventory: inventoryNameSchema,
    seq: seq.min(1),
    full: z.boolean(),
    payload: PayloadSchema,
  }),
  result: z.strictObject({
    /** false when the hub could not apply it (a sequence gap, or its state hashes differently afterwards). */
    applied: z.boolean(),
    /** true: send this inventory in full. */
    resync: z.boolean(),
  }),
});

export const TelemetryEvents = defineMessage({
  type: 'telemetry.events',
  from: 'agent',
  to: ['hub'],
  capability: TELEMETRY_CAPABILITY,
  priority: 'bulk',
  maxBytes: 768 * 1024,
  summary: 'A batch of aggregated security events (logins), numbered per queue so a batch sent twice (after a lost reply) is counted once.',
  body: z.strictObject({
    queueId: z.string().regex(/^[0-9a-f]{16}$/),
    batch: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    payload: PayloadSchema,
  }),
  result: z.strictObject({ accepted: z.number().int().min(0) }),
});
