/**
 * REST API v1. Each route declares its method, path, roles and body schema in one table;
 * dispatch and the OpenAPI document are both built from it, so they cannot drift.
 */
import { createPublicKey } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { DrawbridgeError } from '../errors.js';
import {
  createApiToken,
  encodeEnrollmentToken,
  hashSecret,
  randomId,
  randomSecret,
  secretMatches,
} from '../protocol/tokens.js';
import { ROLES, type AuditRecord, type DeviceRecord, type EdgeRecord, type Role } from '../store/store.js';
import { edgeIdOf, enrollPayload } from '../protocol/identity.js';
import { verifySignature } from './edge-registry.js';
import { EDGE_ROUTES } from './routes/edges.js';
import { SECRET_ROUTES } from './routes/secrets.js';
import { MONITOR_ROUTES } from './routes/monitoring.js';
import type { AuditView, DeviceView, SessionView, UserView } from '../protocol/api-types.js';
import { assertValidName } from '../util/names.js';
import { nameSchema, plainText } from '../util/schemas.js';
import { MAX_REASON_LENGTH, publicAccessView } from './access.js';
import { clientAddress, MAX_ANONYMOUS_BODY_BYTES, MAX_BODY_BYTES, parseJson, readBody, sendJson, toJsonText, validate, type Params } from './http.js';
import { ANONYMOUS, RESERVED_USER_NAMES, requireRole, type Principal } from './principals.js';
import type { HubServices } from './services.js';

const tagsSchema = z
  .record(z.string().regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'tag keys are 1-64 of letters, digits, "_", "." and "-"'), plainText({ min: 1, max: 128 }))
  .refine((tags) => Object.keys(tags).length <= 32, 'at most 32 tags');
const MAX_ENROLLMENT_TTL_MS = 30 * 86_400_000;

export const CreateDeviceBody = z.strictObject({
  name: z.string(),
  tags: tagsSchema.default({}),
  enrollmentTtlMs: z.number().int().min(1000).max(MAX_ENROLLMENT_TTL_MS).default(3_600_000),
});
export const EnrollmentBody = z.strictObject({ enrollmentTtlMs: z.number().int().min(1000).max(MAX_ENROLLMENT_TTL_MS).default(3_600_000) });
export const EnrollBody = z.strictObject({
  id: z.string().regex(/^[0-9a-f]{16}$/),
  secret: z.string().min(16).max(128),
  device: nameSchema,
  publicKey: z.string().min(40).max(200),
  /** The agent's own identity: created on the edge at its first enrollment. */
  edge: z.strictObject({
    name: z.string().max(63),
    /** true when the operator chose the name (--edge-name): a clash is then an error, not renamed */
    nameChosen: z.boolean().default(false),
    hostname: plainText({ max: 253 }),
    signingKey: z.string().min(40).max(200),
    encryptionKey: z.string().min(40).max(200),
    /** Edge key signature over enrollPayload(): proves the edge holds the key it registers. */
    signature: z.string().min(40).max(200),
  }),
});
export const CreateUserBody = z.strictObject({
  name: nameSchema.refine((name) => !RESERVED_USER_NAMES.has(name), 'is reserved: the hub writes it as an audit actor'),
  role: z.enum(ROLES as [Role, ...Role[]]),
});
export const RotateBody = z.strictObject({ name: nameSchema.optional() });
export const AccessRequestBody = z.strictObject({
  device: z.string().max(200),
  durationMs: z.number().int().positive(),
  reason: plainText({ max: MAX_REASON_LENGTH }),
});
export const ApproveBody = z.strictObject({ note: plainText({ max: MAX_REASON_LENGTH }).optional() });
export const DenyBody = z.strictObject({ reason: plainText({ min: 1, max: MAX_REASON_LENGTH }) });

/**
 * The most rows one answer carries. Building and serialising a page is synchronous work
 * for the hub; 10,000 rows (2.5-3.7 MiB of JSON) stalled it for 110-200 ms, 1,000 take
 * 10-20 ms. Larger sets are read page by page (`after`).
 */
const MAX_PAGE = 1000;
/** A device's view also looks at its live link and streams: half a page. */
const MAX_DEVICES_PAGE = 500;
const DevicesQuerySchema = z.strictObject({
  after: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_DEVICES_PAGE).default(MAX_DEVICES_PAGE),
});

const AuditQuerySchema = z.strictObject({
  device: z.string().max(200).optional(),
  actor: z.string().max(200).optional(),
  action: z.string().max(100).optional(),
  since: z.string().optional(),
  until: z.string().optional(),
  after: z.coerce.number().int().min(0).optional(),
  before: z.coerce.number().int().min(1).optional(),
  order: z.enum(['asc', 'desc']).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(100),
});
const AccessQuerySchema = z.strictObject({
  status: z.enum(['pending', 'approved', 'denied', 'expired', 'revoked', 'active']).optional(),
  mine: z.enum(['true', 'false', '1', '0']).optional(),
  device: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(200),
});

type Ctx = { req: IncomingMessage; res: ServerResponse; params: Params; url: URL; principal: Principal };

export interface RouteSpec {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  summary: string;
  /** Roles allowed; undefined means unauthenticated */
  roles?: readonly Role[];
  body?: z.ZodType;
  /** A larger body limit than MAX_BODY_BYTES (secret values), from the hub's settings. */
  maxBodyBytes?: (services: HubServices) => number;
  handle: (services: HubServices, ctx: Ctx) => Promise<void>;
}

const ALL_ROLES = ROLES;
const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());
const isoAt = (t: number): string => new Date(t).toISOString();

function parseTime(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  const relative = /^(\d+)([smhd])$/.exec(text);
  if (relative) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as 's' | 'm' | 'h' | 'd'];
    return Date.now() - Number(relative[1]) * unit;
  }
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new DrawbridgeError('VALIDATION_FAILED', `${what}: "${text}" is not a time (use ISO 8601 or a relative age like 15m, 2h, 7d)`);
  return t;
}

export function deviceView(services: HubServices, d: DeviceRecord, edgeNames?: Map<string, string>): DeviceView {
  const attached = services.registry.get(d.name);
  return {
    name: d.name,
    tags: d.tags,
    enabled: d.enabled,
    enrolled: d.publicKey !== null,
    online: attached !== undefined,
    lastSeenAt: attached ? iso(services.now()) : iso(d.lastSeenAt),
    agentVersion: attached?.edge.agentVersion ?? d.agentVersion,
    target: attached?.target ?? null,
    remoteAddress: attached?.edge.remoteAddress ?? d.remoteAddress,
    createdAt: isoAt(d.createdAt),
    enrolledAt: iso(d.enrolledAt),
    activeStreams: services.relay.countForDevice(d.name),
    edge: attached?.edge.edge.name ?? (d.edgeId ? (edgeNames?.get(d.edgeId) ?? null) : null),
  };
}

async function edgeNames(services: HubServices): Promise<Map<string, string>> {
  return new Map((await services.store.listEdges()).map((e) => [e.id, e.name]));
}

function auditView(r: AuditRecord): AuditView {
  return { seq: r.seq, ts: new Date(r.ts).toISOString(), actor: r.actor, action: r.action, device: r.device, details: r.details, prevHash: r.prevHash, hash: r.hash };
}

async function requireDevice(services: HubServices, name: string): Promise<DeviceRecord> {
  assertValidName(name, 'device name');
  const device = await services.store.getDevice(name);
  if (!device) throw new DrawbridgeError('UNKNOWN_DEVICE', `unknown device "${name}"`);
  return device;
}

async function issueEnrollment(services: HubServices, device: string, ttlMs: number): Promise<{ token: string; record: { id: string; device: string; secretHash: string; createdAt: number; expiresAt: number; usedAt: null } }> {
  const id = randomId(8);
  const secret = randomSecret(32);
  const now = services.now();
  return {
    token: encodeEnrollmentToken({ hubUrl: services.publicUrl, caPin: services.caPin, device, id, secret }),
    record: { id, device, secretHash: hashSecret(secret), createdAt: now, expiresAt: now + ttlMs, usedAt: null },
  };
}

function body<T>(ctx: Ctx & { body?: unknown }): T {
  return ctx.body as T;
}

/**
 * Checks the edge part of an enrollment and returns the edge the device will belong to: the
 * registered one with this key, or a new one (not yet stored; completeEnrollment stores it).
 */
async function enrollingEdge(s: HubServices, input: z.output<typeof EnrollBody>, now: number): Promise<EdgeRecord> {
  const keyOf = (b64: string, type: 'ed25519' | 'x25519', what: string): Buffer => {
    try {
      const der = Buffer.from(b64, 'base64');
      if (createPublicKey({ key: der, format: 'der', type: 'spki' }).asymmetricKeyType !== type) throw new Error(type);
      return der;
    } catch {
      throw new DrawbridgeError('VALIDATION_FAILED', `${what} must be an ${type === 'ed25519' ? 'Ed25519' : 'X25519'} public key (SPKI DER, base64)`);
    }
  };
  keyOf(input.publicKey, 'ed25519', 'publicKey');
  const signingDer = keyOf(input.edge.signingKey, 'ed25519', 'edge.signingKey');
  keyOf(input.edge.encryptionKey, 'x25519', 'edge.encryptionKey');
  if (!verifySignature(input.edge.signingKey, enrollPayload(input.id, input.device, input.publicKey, s.caPin), input.edge.signature)) {
    throw new DrawbridgeError('VALIDATION_FAILED', 'edge.signature does not verify: the edge must sign the enrollment with the key it registers');
  }
  const id = edgeIdOf(signingDer);
  const existing = await s.store.getEdge(id);
  if (existing) {
    if (!existing.enabled) throw new DrawbridgeError('EDGE_DISABLED', `edge "${existing.name}" is disabled; enable it first: drawbridge edges enable ${existing.name}`);
    if (existing.encryptionKey !== input.edge.encryptionKey) throw new DrawbridgeError('CONFLICT', `edge "${existing.name}" is registered with another encryption key`);
    return existing;
  }
  let name = assertValidName(input.edge.name, 'edge name');
  if (await s.store.getEdgeByName(name)) {
    if (input.edge.nameChosen) {
      throw new DrawbridgeError('EDGE_NAME_TAKEN', `another edge is already called "${name}"; pick another --edge-name for this host`);
    }
    // A default name (the host name) that is taken, as on cloned images: number it.
    const base = name.slice(0, 58);
    let n = 2;
    while (await s.store.getEdgeByName(`${base}-${n}`)) n++;
    name = `${base}-${n}`;
  }
  return {
    id,
    name,
    signingKey: input.edge.signingKey,
    encryptionKey: input.edge.encryptionKey,
    enabled: true,
    hostname: input.edge.hostname,
    createdAt: now,
    lastSeenAt: null,
    agentVersion: null,
    remoteAddress: null,
  };
}

export const ROUTES: RouteSpec[] = [
  {
    method: 'GET', path: '/v1/whoami', summary: 'The authenticated principal', roles: ALL_ROLES,
    handle: async (_s, { res, principal }) => sendJson(res, 200, { name: principal.name, role: principal.role }),
  },
  // ---- devices ----
  {
    method: 'POST', path: '/v1/devices', summary: 'Register a virtual device; returns a one-time enrollment token', roles: ['admin'], body: CreateDeviceBody,
    handle: async (s, ctx) => {
      const input = body<z.output<typeof CreateDeviceBody>>(ctx);
      const name = assertValidName(input.name, 'device name');
      if (await s.store.getDevice(name)) throw new DrawbridgeError('CONFLICT', `device "${name}" already exists`);
      const { token, record } = await issueEnrollment(s, name, input.enrollmentTtlMs);
      const now = s.now();
      try {
        await s.store.createDevice(
          { name, tags: input.tags, enabled: true, publicKey: null, createdAt: now, enrolledAt: null, lastSeenAt: null, agentVersion: null, remoteAddress: null, edgeId: null },
          record,
          { actor: ctx.principal.name, action: 'device.add', device: name, details: { tags: input.tags, enrollmentExpiresAt: record.expiresAt } },
        );
      } catch (error) {
        if (String((error as Error).message).includes('UNIQUE')) throw new DrawbridgeError('CONFLICT', `device "${name}" already exists`);
        throw error;
      }
      sendJson(ctx.res, 201, { name, enrollmentToken: token, expiresAt: new Date(record.expiresAt).toISOString() });
    },
  },
  {
    method: 'GET', path: '/v1/devices', summary: 'List virtual devices by name, a page at a time (?limit=1..500, ?after=NAME; `next` continues)', roles: ALL_ROLES,
    handle: async (s, { res, url }) => {
      const q = validate(DevicesQuerySchema, Object.fromEntries(url.searchParams), 'query');
      const names = await edgeNames(s);
      const page = await s.store.listDevices({ limit: q.limit, ...(q.after ? { after: q.after } : {}) });
      const last = page[page.length - 1];
      sendJson(res, 200, { devices: page.map((d) => deviceView(s, d, names)), next: page.length === q.limit && last ? last.name : null });
    },
  },
  {
    method: 'GET', path: '/v1/devices/:name', summary: 'Show one virtual device', roles: ALL_ROLES,
    handle: async (s, { res, params }) => sendJson(res, 200, deviceView(s, await requireDevice(s, params['name'] as string), await edgeNames(s))),
  },
  {
    method: 'DELETE', path: '/v1/devices/:name', summary: 'Remove a virtual device (ends its link and streams)', roles: ['admin'],
    handle: async (s, { res, params, principal }) => {
      const device = await requireDevice(s, params['name'] as string);
      const ended = await s.store.removeDevice(device.name, { actor: principal.name, action: 'device.remove', device: device.name });
      if (!ended) throw new DrawbridgeError('UNKNOWN_DEVICE', `unknown device "${device.name}"`);
      s.access.announceBulkRevocation(ended, `device "${device.name}" was removed`);
      s.registry.detach(device.name, 'DEVICE_REMOVED', `device "${device.name}" was removed by ${principal.name}`);
      s.relay.endWhere((st) => st.device === device.name, new DrawbridgeError('DEVICE_REMOVED'));
      sendJson(res, 200, { name: device.name, removed: true });
    },
  },
  {
    method: 'POST', path: '/v1/devices/:name/enable', summary: 'Enable a virtual device', roles: ['admin'],
    handle: async (s, { res, params, principal }) => {
      const device = await requireDevice(s, params['name'] as string);
      await s.store.setDeviceEnabled(device.name, true, { actor: principal.name, action: 'device.enable', device: device.name });
      s.registry.invite(device.name, device.edgeId);
      sendJson(res, 200, deviceView(s, { ...device, enabled: true }));
    },
  },
  {
    method: 'POST', path: '/v1/devices/:name/disable', summary: 'Disable a virtual device: closes its link and streams, refuses reconnects', roles: ['admin'],
    handle: async (s, { res, params, principal }) => {
      const device = await requireDevice(s, params['name'] as string);
      await s.store.setDeviceEnabled(device.name, false, { actor: principal.name, action: 'device.disable', device: device.name });
      s.registry.detach(device.name, 'DEVICE_DISABLED', `device "${device.name}" was disabled by ${principal.name}`);
      s.relay.endWhere((st) => st.device === device.name, new DrawbridgeError('DEVICE_DISABLED', `device "${device.name}" was disabled`));
      sendJson(res, 200, deviceView(s, { ...device, enabled: false }));
    },
  },
  {
    method: 'POST', path: '/v1/devices/:name/enrollments', summary: 'Issue a new enrollment token (re-enroll a device); older unused tokens of the device stop working', roles: ['admin'], body: EnrollmentBody,
    handle: async (s, ctx) => {
      const device = await requireDevice(s, ctx.params['name'] as string);
      const { token, record } = await issueEnrollment(s, device.name, body<z.output<typeof EnrollmentBody>>(ctx).enrollmentTtlMs);
      await s.store.createEnrollment(record, {
        actor: ctx.principal.name,
        action: 'device.enrollment_issued',
        device: device.name,
        details: { enrollment: record.id, expiresAt: record.expiresAt, replacesUnusedTokens: true },
      });
      sendJson(ctx.res, 201, { name: device.name, enrollmentToken: token, expiresAt: new Date(record.expiresAt).toISOString() });
    },
  },
  {
    method: 'POST', path: '/v1/enroll', summary: 'Agent enrollment: trade a one-time enrollment secret for registering the device public key', body: EnrollBody,
    handle: async (s, ctx) => {
      const input = body<z.output<typeof EnrollBody>>(ctx);
      const source = clientAddress(ctx.req);
      // The secret is checked first: a valid token is never refused because others failed
      // from the same address; only a failing caller meets the failure budget.
      const enrollment = await s.store.getEnrollment(input.id);
      const valid = secretMatches(input.secret, enrollment?.secretHash ?? '0'.repeat(64)) && enrollment?.device === input.device;
      if (!enrollment || !valid) {
        throw s.auth.refusal(source, 'enrollment', 'forged or unknown enrollment token', new DrawbridgeError('ENROLLMENT_INVALID', 'the enrollment token is not valid for this hub'), input.device);
      }
      const now = s.now();
      if (enrollment.usedAt !== null) {
        throw s.auth.refusal(source, 'enrollment', 'enrollment token reused', new DrawbridgeError('ENROLLMENT_USED', 'the enrollment token was already used; issue a new one with "drawbridge devices enroll-token NAME"'), input.device);
      }
      if (enrollment.replacedAt) {
        throw s.auth.refusal(source, 'enrollment', 'enrollment token replaced', new DrawbridgeError('ENROLLMENT_EXPIRED', `a newer enrollment token for "${enrollment.device}" replaced this one at ${new Date(enrollment.replacedAt).toISOString()}; use the newest`), input.device);
      }
      if (enrollment.expiresAt <= now) {
        throw s.auth.refusal(source, 'enrollment', 'enrollment token expired', new DrawbridgeError('ENROLLMENT_EXPIRED', `the enrollment token expired at ${new Date(enrollment.expiresAt).toISOString()}; issue a new one`), input.device);
      }
      const edge = await enrollingEdge(s, input, now);
      const ok = await s.store.completeEnrollment(
        input.id,
        input.publicKey,
        now,
        {
          actor: `device:${enrollment.device}`,
          action: 'device.enroll',
          device: enrollment.device,
          details: { source, enrollment: input.id, edge: edge.name, edgeId: edge.id, newEdge: edge.createdAt === now },
        },
        edge,
      );
      if (!ok) throw new DrawbridgeError('ENROLLMENT_USED', 'the enrollment token was already used');
      // A re-enrolled device proves a new key: whatever link the old key holds ends now.
      s.registry.detach(enrollment.device, 'DEVICE_REPLACED', `device "${enrollment.device}" was enrolled again with a new key`);
      sendJson(ctx.res, 200, { device: enrollment.device, edge: { id: edge.id, name: edge.name }, hubUrl: s.publicUrl, caPin: s.caPin });
    },
  },
  // ---- sessions ----
  {
    method: 'GET', path: '/v1/sessions', summary: 'Open streams', roles: ['admin', 'auditor', 'approver', 'operator'],
    handle: async (s, { res, principal }) => {
      const live = s.relay.list().filter((x) => principal.role !== 'operator' || x.principal === principal.name);
      sendJson(res, 200, {
        sessions: live.map((x): SessionView => ({ ...x, startedAt: isoAt(x.startedAt), grantEndsAt: iso(x.grantEndsAt) })),
      });
    },
  },
  {
    method: 'DELETE', path: '/v1/sessions/:id', summary: 'Kill an open stream at once', roles: ['admin'],
    handle: async (s, { res, params, principal }) => {
      const session = s.relay.get(params['id'] as string);
      if (!session) throw new DrawbridgeError('NOT_FOUND', `no open session "${params['id']}"`);
      await s.store.appendAudit({ actor: principal.name, action: 'session.kill', device: session.device, details: { session: session.id, principal: session.principal } });
      s.relay.endById(session.id, new DrawbridgeError('SESSION_KILLED', `the session was killed by ${principal.name}`));
      sendJson(res, 200, { id: session.id, killed: true });
    },
  },
  // ---- users and tokens ----
  {
    method: 'GET', path: '/v1/users', summary: 'List principals (never their tokens)', roles: ['admin', 'auditor'],
    handle: async (s, { res }) => sendJson(res, 200, {
      users: (await s.store.listPrincipals()).map((p): UserView => ({ name: p.name, role: p.role, createdAt: isoAt(p.createdAt), tokenCreatedAt: isoAt(p.tokenCreatedAt) })),
    }),
  },
  {
    method: 'POST', path: '/v1/users', summary: 'Add a principal; returns its API token once', roles: ['admin'], body: CreateUserBody,
    handle: async (s, ctx) => {
      const input = body<z.output<typeof CreateUserBody>>(ctx);
      if (await s.store.getPrincipal(input.name)) throw new DrawbridgeError('CONFLICT', `user "${input.name}" already exists`);
      const token = createApiToken();
      const now = s.now();
      await s.store.createPrincipal(
        { name: input.name, role: input.role, createdAt: now, tokenId: token.id, tokenHash: hashSecret(token.secret), tokenCreatedAt: now },
        { actor: ctx.principal.name, action: 'user.add', details: { user: input.name, role: input.role } },
      );
      sendJson(ctx.res, 201, { name: input.name, role: input.role, token: token.token });
    },
  },
  {
    method: 'DELETE', path: '/v1/users/:name', summary: 'Remove a principal; ends their streams', roles: ['admin'],
    handle: async (s, { res, params, principal }) => {
      const name = assertValidName(params['name'], 'user name');
      const target = await s.store.getPrincipal(name);
      if (!target) throw new DrawbridgeError('NOT_FOUND', `no user "${name}"`);
      if (target.role === 'admin') {
        const admins = (await s.store.listPrincipals()).filter((p) => p.role === 'admin');
        if (admins.length <= 1) throw new DrawbridgeError('INVALID_STATE', `"${name}" is the last admin; add another admin first`);
      }
      const ended = await s.store.removePrincipal(name, { actor: principal.name, action: 'user.remove', details: { user: name } });
      if (!ended) throw new DrawbridgeError('NOT_FOUND', `no user "${name}"`);
      s.access.announceBulkRevocation(ended, `user "${name}" was removed`);
      const removed = new DrawbridgeError('PRINCIPAL_REMOVED', `access ended: user "${name}" was removed`);
      s.relay.endWhere((st) => st.principal === name, removed);
      s.clientLinks.closePrincipal(name, removed);
      sendJson(res, 200, { name, removed: true });
    },
  },
  {
    method: 'POST', path: '/v1/tokens/rotate', summary: "Rotate a token (your own, or any user's as admin); ends streams opened with the old one", roles: ALL_ROLES, body: RotateBody,
    handle: async (s, ctx) => {
      const name = body<z.output<typeof RotateBody>>(ctx).name ?? ctx.principal.name;
      if (name !== ctx.principal.name) requireRole(ctx.principal, ['admin'], "rotating another user's token");
      const token = createApiToken();
      const ok = await s.store.setPrincipalToken(name, token.id, hashSecret(token.secret), s.now(), {
        actor: ctx.principal.name,
        action: 'token.rotate',
        details: { user: name },
      });
      if (!ok) throw new DrawbridgeError('NOT_FOUND', `no user "${name}"`);
      const rotated = new DrawbridgeError('PRINCIPAL_REMOVED', `access ended: the token of "${name}" was rotated`);
      s.relay.endWhere((st) => st.principal === name, rotated);
      s.clientLinks.closePrincipal(name, rotated);
      sendJson(ctx.res, 200, { name, token: token.token });
    },
  },
  // ---- access ----
  {
    method: 'POST', path: '/v1/access', summary: 'Request time-bound access to a device', roles: ['admin', 'operator', 'approver'], body: AccessRequestBody,
    handle: async (s, ctx) => {
      const input = body<z.output<typeof AccessRequestBody>>(ctx);
      assertValidName(input.device, 'device name');
      const request = await s.access.request(ctx.principal, input.device, input.durationMs, input.reason);
      sendJson(ctx.res, 201, publicAccessView(request, s.now()));
    },
  },
  {
    method: 'GET', path: '/v1/access', summary: 'List access requests and grants (?status=pending|active|..., ?mine=true)', roles: ALL_ROLES,
    handle: async (s, { res, url, principal }) => {
      const q = validate(AccessQuerySchema, Object.fromEntries(url.searchParams), 'query');
      const mine = q.mine === 'true' || q.mine === '1' || principal.role === 'operator';
      const now = s.now();
      const records = await s.store.listAccessRequests({
        ...(q.status && q.status !== 'active' ? { status: q.status } : {}),
        ...(q.status === 'active' ? { activeAt: now } : {}),
        ...(mine ? { principal: principal.name } : {}),
        ...(q.device ? { device: q.device } : {}),
        limit: q.limit,
      });
      sendJson(res, 200, { requests: records.map((r) => publicAccessView(r, now)) });
    },
  },
  {
    method: 'GET', path: '/v1/access/:id', summary: 'Show one access request', roles: ALL_ROLES,
    handle: async (s, { res, params, principal }) => {
      const request = await s.access.get(params['id'] as string);
      if (principal.role === 'operator' && request.principal !== principal.name) throw new DrawbridgeError('NOT_FOUND', `no access request "${params['id']}"`);
      sendJson(res, 200, publicAccessView(request, s.now()));
    },
  },
  {
    method: 'POST', path: '/v1/access/:id/approve', summary: 'Approve a pending request (never your own)', roles: ['admin', 'approver'], body: ApproveBody,
    handle: async (s, ctx) => sendJson(ctx.res, 200, publicAccessView(await s.access.approve(ctx.principal, ctx.params['id'] as string, body<z.output<typeof ApproveBody>>(ctx).note), s.now())),
  },
  {
    method: 'POST', path: '/v1/access/:id/deny', summary: 'Deny a pending request, with a reason', roles: ['admin', 'approver'], body: DenyBody,
    handle: async (s, ctx) => sendJson(ctx.res, 200, publicAccessView(await s.access.deny(ctx.principal, ctx.params['id'] as string, body<z.output<typeof DenyBody>>(ctx).reason), s.now())),
  },
  {
    method: 'POST', path: '/v1/access/:id/revoke', summary: 'Revoke an active grant; its streams end at once', roles: ALL_ROLES,
    handle: async (s, ctx) => sendJson(ctx.res, 200, publicAccessView(await s.access.revoke(ctx.principal, ctx.params['id'] as string), s.now())),
  },
  // ---- audit ----
  {
    method: 'GET', path: '/v1/audit', summary: 'Query the audit log (keyset paged by seq)', roles: ['admin', 'auditor'],
    handle: async (s, { res, url }) => {
      const q = validate(AuditQuerySchema, Object.fromEntries(url.searchParams), 'query');
      const records = await s.store.queryAudit({
        ...(q.device ? { device: q.device } : {}),
        ...(q.actor ? { actor: q.actor } : {}),
        ...(q.action ? { action: q.action } : {}),
        ...(q.since ? { since: parseTime(q.since, 'since') as number } : {}),
        ...(q.until ? { until: parseTime(q.until, 'until') as number } : {}),
        ...(q.after !== undefined ? { afterSeq: q.after } : {}),
        ...(q.before !== undefined ? { beforeSeq: q.before } : {}),
        order: q.order ?? 'asc',
        limit: q.limit,
      });
      const last = records[records.length - 1];
      sendJson(res, 200, { records: records.map(auditView), next: records.length === q.limit && last ? last.seq : null });
    },
  },
  {
    method: 'GET', path: '/v1/audit/verify', summary: 'Recompute the hash chain (in a worker thread); names the first changed, removed or inserted record, and says whether the database still holds the head this hub recorded', roles: ['admin', 'auditor'],
    handle: async (s, { res }) => {
      const [chain, head] = await Promise.all([s.store.verifyAudit(), s.anchor.checkHead()]);
      s.metrics.auditHeadBehind.set(head.ok ? 0 : 1);
      sendJson(res, 200, { ...chain, ok: chain.ok && head.ok, chainOk: chain.ok, head });
    },
  },
  {
    method: 'GET', path: '/v1/audit/checkpoint', summary: "A signed checkpoint of the audit chain's head, made now: keep it off this machine", roles: ['admin', 'auditor'],
    handle: async (s, { res }) => sendJson(res, 200, await s.anchor.checkpoint()),
  },
  {
    method: 'GET', path: '/v1/audit/checkpoints', summary: 'The checkpoints this hub issued, newest first', roles: ['admin', 'auditor'],
    handle: async (s, { res }) => sendJson(res, 200, { keyId: s.anchor.keyId, checkpoints: s.anchor.list() }),
  },
  {
    method: 'GET', path: '/v1/audit/export', summary: 'Every audit record as JSON Lines, in order', roles: ['admin', 'auditor'],
    handle: async (s, { res }) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      let after = 0;
      for (;;) {
        // 250 records a batch: a few ms of work between turns of the event loop (2,000 stalled it 60 ms).
        const batch = await s.store.scanAudit(after, 250);
        if (batch.length === 0) break;
        const ok = res.write(batch.map((r) => toJsonText(auditView(r))).join('\n') + '\n');
        after = (batch[batch.length - 1] as AuditRecord).seq;
        // Between batches the event loop serves everything else: export never stalls the hub.
        if (!ok) await new Promise((resolve) => res.once('drain', resolve));
        else await new Promise((resolve) => setImmediate(resolve));
      }
      res.end();
    },
  },
  ...EDGE_ROUTES,
  ...SECRET_ROUTES,
  ...MONITOR_ROUTES,
];

/**
 * Finds the route, then reads the whole (bounded) body, and only then authenticates, checks
 * the role, validates the body and runs the handler. Authorization is decided when the
 * action runs, not when the headers arrived: a body sent slowly cannot carry a request past
 * the removal of its user or the rotation of its token. The check at the headers is only a
 * gate, so that a caller without a valid token cannot make the hub buffer a body.
 */
export async function handleApi(services: HubServices, req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  const route = ROUTES.find((r) => r.method === req.method && matchPath(r.path, url.pathname) !== undefined);
  if (!route) {
    const pathKnown = ROUTES.some((r) => matchPath(r.path, url.pathname) !== undefined);
    if (pathKnown) throw new DrawbridgeError('METHOD_NOT_ALLOWED', `method ${req.method} is not allowed on ${url.pathname}`);
    return false;
  }
  const params = matchPath(route.path, url.pathname) as Params;
  const authorize = async (): Promise<Principal> => {
    if (!route.roles) return ANONYMOUS;
    const principal = await services.auth.authenticate(req);
    requireRole(principal, route.roles, `${route.method} ${route.path}`);
    return principal;
  };
  if (route.roles) await authorize();
  // Unauthenticated routes take small bodies only: strangers cannot make the hub hold much.
  const raw = await readBody(req, route.roles ? (route.maxBodyBytes?.(services) ?? MAX_BODY_BYTES) : MAX_ANONYMOUS_BODY_BYTES);
  const principal = await authorize();
  const ctx: Ctx & { body?: unknown } = { req, res, params, url, principal };
  if (route.body) ctx.body = parseJson(req, raw, route.body);
  await route.handle(services, ctx);
  return true;
}

const pathCache = new Map<string, { pattern: RegExp; keys: string[] }>();

function matchPath(path: string, pathname: string): Params | undefined {
  let compiled = pathCache.get(path);
  if (!compiled) {
    const keys: string[] = [];
    const pattern = new RegExp('^' + path.replace(/:([a-zA-Z]+)/g, (_, k: string) => (keys.push(k), '([^/]+)')) + '$');
    compiled = { pattern, keys };
    pathCache.set(path, compiled);
  }
  const m = compiled.pattern.exec(pathname);
  if (!m) return undefined;
  const params: Params = {};
  compiled.keys.forEach((k, i) => {
    try {
      params[k] = decodeURIComponent(m[i + 1] ?? '');
    } catch {
      params[k] = '';
    }
  });
  return params;
}
