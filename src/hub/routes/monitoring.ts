/**
 * Edge security monitoring over the REST API: alerts (list, show, acknowledge, resolve) and
 * findings (list, mute, unmute).
 *
 * Roles: admins, auditors and approvers read (approvers judge access to edges, so they
 * should see which are under attack); admins and approvers acknowledge and resolve alerts
 * (reviewing is their job); only admins mute a finding, since a mute accepts a risk.
 */
import { z } from 'zod';
import { ALERT_RULES } from '../../monitor/config.js';
import { alertView, findingView } from '../../monitor/views.js';
import type { Role } from '../../store/store.js';
import { nameSchema, plainText } from '../../util/schemas.js';
import { sendJson, validate } from '../http.js';
import type { RouteSpec } from '../api.js';
import type { HubServices } from '../services.js';

export const MONITOR_READERS: readonly Role[] = ['admin', 'auditor', 'approver'];
const REVIEWERS: readonly Role[] = ['admin', 'approver'];
const MAX_NOTE = 1000;

const AlertQuerySchema = z.strictObject({
  edge: nameSchema.optional(),
  status: z.enum(['open', 'acked', 'resolved']).optional(),
  rule: z.enum(ALERT_RULES).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(500),
});
const FindingQuerySchema = z.strictObject({
  edge: nameSchema.optional(),
  status: z.enum(['open', 'resolved', 'muted']).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(500),
});
export const AlertNoteBody = z.strictObject({ note: plainText({ min: 1, max: MAX_NOTE }).optional() });
export const MuteBody = z.strictObject({ reason: plainText({ max: MAX_NOTE }).refine((reason) => reason.trim().length > 0, 'a reason is required') });

/** The validated body the dispatcher put on the context (the route declares its schema). */
function bodyOf<T>(ctx: object): T {
  return (ctx as { body: T }).body;
}

/** Filters by edge: its id while it exists (names may be reused), else the name the records keep. */
async function edgeFilter(s: HubServices, name: string | undefined): Promise<{ edgeId?: string; edgeName?: string }> {
  if (!name) return {};
  const edge = await s.store.getEdgeByName(name);
  return edge ? { edgeId: edge.id } : { edgeName: name };
}

export const MONITOR_ROUTES: RouteSpec[] = [
  {
    method: 'GET', path: '/v1/alerts', summary: 'List security alerts, newest activity first (?edge=, ?status=open|acked|resolved, ?rule=)', roles: MONITOR_READERS,
    handle: async (s, { res, url }) => {
      const q = validate(AlertQuerySchema, Object.fromEntries(url.searchParams), 'query');
      const alerts = await s.monitor.listAlerts({ ...(await edgeFilter(s, q.edge)), ...(q.status ? { status: q.status } : {}), ...(q.rule ? { rule: q.rule } : {}), limit: q.limit });
      sendJson(res, 200, { alerts: alerts.map((a) => alertView(a)) });
    },
  },
  {
    method: 'GET', path: '/v1/alerts/:id', summary: 'Show one alert with its evidence', roles: MONITOR_READERS,
    handle: async (s, { res, params }) => sendJson(res, 200, alertView(await s.monitor.requireAlert(params['id'] as string), true)),
  },
  {
    method: 'POST', path: '/v1/alerts/:id/ack', summary: 'Acknowledge an open alert (someone is on it)', roles: REVIEWERS, body: AlertNoteBody,
    handle: async (s, ctx) => {
      const { res, params, principal } = ctx;
      const { note } = bodyOf<z.output<typeof AlertNoteBody>>(ctx);
      sendJson(res, 200, alertView(await s.monitor.transitionAlert(principal.name, params['id'] as string, 'acked', note), true));
    },
  },
  {
    method: 'POST', path: '/v1/alerts/:id/resolve', summary: 'Resolve an open or acknowledged alert; the rule firing again opens a new one', roles: REVIEWERS, body: AlertNoteBody,
    handle: async (s, ctx) => {
      const { res, params, principal } = ctx;
      const { note } = bodyOf<z.output<typeof AlertNoteBody>>(ctx);
      sendJson(res, 200, alertView(await s.monitor.transitionAlert(principal.name, params['id'] as string, 'resolved', note), true));
    },
  },
  {
    method: 'GET', path: '/v1/findings', summary: 'List findings (recommendations) (?edge=, ?status=open|resolved|muted)', roles: MONITOR_READERS,
    handle: async (s, { res, url }) => {
      const q = validate(FindingQuerySchema, Object.fromEntries(url.searchParams), 'query');
      const findings = await s.monitor.listFindings({ ...(await edgeFilter(s, q.edge)), ...(q.status ? { status: q.status } : {}), limit: q.limit });
      sendJson(res, 200, { findings: findings.map(findingView) });
    },
  },
  {
    method: 'GET', path: '/v1/findings/:id', summary: 'Show one finding', roles: MONITOR_READERS,
    handle: async (s, { res, params }) => sendJson(res, 200, findingView(await s.monitor.requireFinding(params['id'] as string))),
  },
  {
    method: 'POST', path: '/v1/findings/:id/mute', summary: 'Mute a finding on its edge, with a reason (audited); it stays muted if it resolves and comes back', roles: ['admin'], body: MuteBody,
    handle: async (s, ctx) => {
      const { res, params, principal } = ctx;
      const { reason } = bodyOf<z.output<typeof MuteBody>>(ctx);
      sendJson(res, 200, findingView(await s.monitor.muteFinding(principal.name, params['id'] as string, reason)));
    },
  },
  {
    method: 'POST', path: '/v1/findings/:id/unmute', summary: 'Unmute a finding (audited)', roles: ['admin'],
    handle: async (s, { res, params, principal }) => sendJson(res, 200, findingView(await s.monitor.muteFinding(principal.name, params['id'] as string, null))),
  },
];
