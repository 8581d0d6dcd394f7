/**
 * The vault over the REST API. Admins write and read values; auditors see metadata, status
 * and the audit log only; operators and approvers see nothing of the vault. A value only
 * ever travels as base64 in a request or an admin's read, never in a listing.
 */
import { z } from 'zod';
import { DrawbridgeError } from '../../errors.js';
import type { EdgeSecretView, SecretDetailView, SecretStatusView, SecretVersionView, SecretView } from '../../protocol/api-types.js';
import type { DeliveryRecord, SecretRecord, SecretVersionRecord } from '../../store/vault-store.js';
import type { AccessTarget, VaultService } from '../../vault/vault-service.js';
import { sendJson, validate } from '../http.js';
import type { RouteSpec } from '../api.js';
import type { HubServices } from '../services.js';

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());
const version = z.number().int().min(1).max(2 ** 31 - 1);

export const PutSecretBody = z.strictObject({
  /** The value, base64 (values may be binary: keys, certificates in DER) */
  valueBase64: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64'),
  /** Check-and-set: refuse unless this is the current version (0: the secret must not exist) */
  cas: z.number().int().min(0).max(2 ** 31 - 1).optional(),
});
export const VersionBody = z.strictObject({ version: version.optional() });
export const DestroyBody = z.strictObject({ version });
export const AccessBody = z
  .strictObject({ edge: z.string().max(63).optional(), device: z.string().max(63).optional(), tag: z.string().max(200).optional() })
  .refine((b) => [b.edge, b.device, b.tag].filter((x) => x !== undefined).length === 1, 'give exactly one of edge, device or tag');
const ValueQuery = z.strictObject({ version: z.coerce.number().int().min(1).max(2 ** 31 - 1).optional() });

function vault(services: HubServices): VaultService {
  if (!services.vault) throw new DrawbridgeError('UNSUPPORTED', 'this hub has no vault');
  return services.vault;
}

function versionView(v: SecretVersionRecord): SecretVersionView {
  return { version: v.version, createdAt: new Date(v.createdAt).toISOString(), createdBy: v.createdBy, size: v.size, deletedAt: iso(v.deletedAt), destroyedAt: iso(v.destroyedAt) };
}

function isLive(latest: SecretVersionRecord | undefined): boolean {
  return latest !== undefined && latest.deletedAt === null && latest.destroyedAt === null;
}

function secretView(s: SecretRecord & { versions: number; rules: number; latest: SecretVersionRecord | undefined }): SecretView {
  return {
    name: s.name,
    currentVersion: s.currentVersion,
    live: isLive(s.latest),
    versions: s.versions,
    rules: s.rules,
    createdAt: new Date(s.createdAt).toISOString(),
    updatedAt: new Date(s.updatedAt).toISOString(),
  };
}

export function edgeSecretViews(held: readonly DeliveryRecord[]): EdgeSecretView[] {
  return held.map((d) => ({ name: d.name, version: d.version, deliveredAt: new Date(d.deliveredAt).toISOString(), lastReadAt: iso(d.lastReadAt), reads: d.reads }));
}

function targetOf(body: z.output<typeof AccessBody>): AccessTarget {
  if (body.edge !== undefined) return { edge: body.edge };
  if (body.device !== undefined) return { device: body.device };
  return { tag: body.tag as string };
}

const name = (params: Record<string, string>): string => params['name'] as string;
/** The validated body (handleApi parsed it with the route's schema). */
const bodyOf = <T>(ctx: object): T => (ctx as { body: T }).body;

export const SECRET_ROUTES: RouteSpec[] = [
  {
    method: 'GET', path: '/v1/secrets', summary: 'List secrets (metadata only, never values)', roles: ['admin', 'auditor'],
    handle: async (s, { res }) => sendJson(res, 200, { secrets: (await vault(s).repo.listSecrets()).map(secretView) }),
  },
  {
    method: 'POST', path: '/v1/secrets/:name', summary: 'Write a new version of a secret (check-and-set with "cas")', roles: ['admin'], body: PutSecretBody,
    // base64 of the largest value, plus room for the rest of the JSON
    maxBodyBytes: (s) => Math.ceil(s.config.vault.maxValueBytes / 3) * 4 + 1024,
    handle: async (s, ctx) => {
      const input = bodyOf<z.output<typeof PutSecretBody>>(ctx);
      const value = Buffer.from(input.valueBase64, 'base64');
      sendJson(ctx.res, 201, await vault(s).put(ctx.principal.name, name(ctx.params), value, input.cas));
    },
  },
  {
    method: 'GET', path: '/v1/secrets/:name', summary: 'Show a secret: versions and access rules (no value)', roles: ['admin', 'auditor'],
    handle: async (s, { res, params }) => {
      const v = vault(s);
      const { secret, versions } = await v.versions(name(params));
      const rules = await v.rules(secret.name);
      const view: SecretDetailView = {
        name: secret.name,
        currentVersion: secret.currentVersion,
        live: isLive(versions.find((x) => x.version === secret.currentVersion)),
        createdAt: new Date(secret.createdAt).toISOString(),
        updatedAt: new Date(secret.updatedAt).toISOString(),
        versions: versions.map(versionView),
        rules: rules.map((r) => ({ kind: r.kind, subject: r.shown, createdAt: new Date(r.createdAt).toISOString(), createdBy: r.createdBy })),
      };
      sendJson(res, 200, view);
    },
  },
  {
    method: 'GET', path: '/v1/secrets/:name/value', summary: 'Read a value (?version=N; default the current one); audited with the version', roles: ['admin'],
    handle: async (s, { res, params, url, principal }) => {
      const q = validate(ValueQuery, Object.fromEntries(url.searchParams), 'query');
      const read = await vault(s).read(principal.name, name(params), q.version);
      sendJson(res, 200, { name: read.name, version: read.version, valueBase64: read.value.toString('base64') });
      read.value.fill(0);
    },
  },
  {
    method: 'POST', path: '/v1/secrets/:name/delete', summary: 'Soft-delete a version (default the current one); edges drop the secret', roles: ['admin'], body: VersionBody,
    handle: async (s, ctx) => sendJson(ctx.res, 200, await vault(s).remove(ctx.principal.name, name(ctx.params), bodyOf<z.output<typeof VersionBody>>(ctx).version)),
  },
  {
    method: 'POST', path: '/v1/secrets/:name/undelete', summary: 'Restore a soft-deleted version (default the current one)', roles: ['admin'], body: VersionBody,
    handle: async (s, ctx) => sendJson(ctx.res, 200, await vault(s).undelete(ctx.principal.name, name(ctx.params), bodyOf<z.output<typeof VersionBody>>(ctx).version)),
  },
  {
    method: 'POST', path: '/v1/secrets/:name/destroy', summary: 'Destroy a version for good (its sealed value is erased)', roles: ['admin'], body: DestroyBody,
    handle: async (s, ctx) => sendJson(ctx.res, 200, await vault(s).destroy(ctx.principal.name, name(ctx.params), bodyOf<z.output<typeof DestroyBody>>(ctx).version)),
  },
  {
    method: 'POST', path: '/v1/secrets/:name/allow', summary: 'Let an edge receive the secret: by edge, by one of its devices, or by a device tag', roles: ['admin'], body: AccessBody,
    handle: async (s, ctx) => sendJson(ctx.res, 200, await vault(s).allow(ctx.principal.name, name(ctx.params), targetOf(bodyOf<z.output<typeof AccessBody>>(ctx)))),
  },
  {
    method: 'POST', path: '/v1/secrets/:name/deny', summary: 'Remove an allow rule; edges no longer allowed drop the secret', roles: ['admin'], body: AccessBody,
    handle: async (s, ctx) => sendJson(ctx.res, 200, await vault(s).deny(ctx.principal.name, name(ctx.params), targetOf(bodyOf<z.output<typeof AccessBody>>(ctx)))),
  },
  {
    method: 'GET', path: '/v1/secrets/:name/status', summary: 'Every edge allowed the secret: the version it holds, when it got it, when an app last read it', roles: ['admin', 'auditor'],
    handle: async (s, { res, params }) => {
      const status = await vault(s).status(name(params));
      const view: SecretStatusView = {
        name: status.secret.name,
        currentVersion: status.secret.currentVersion,
        edges: status.edges.map((e) => ({
          edge: e.edge,
          devices: e.devices,
          version: e.version,
          deliveredAt: iso(e.deliveredAt),
          lastReadAt: iso(e.lastReadAt),
          reads: e.reads,
          allowed: e.allowed,
          paused: e.paused,
          wantedVersion: e.wantedVersion,
          online: s.registry.getEdge(e.edgeId) !== undefined,
        })),
      };
      sendJson(res, 200, view);
    },
  },
  {
    method: 'POST', path: '/v1/vault/rekey', summary: 'Rotate the key-encryption key: re-wrap every data key with a new one', roles: ['admin'],
    handle: async (s, { res, principal }) => sendJson(res, 200, await vault(s).rekey(principal.name)),
  },
];
