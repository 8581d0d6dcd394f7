/**
 * Edges over the REST API: the hosts agents run on, each with its own keys. Listing (most
 * attacked first, with open alerts and findings), showing (with the virtual devices it hosts,
 * the secrets it holds and its security posture), disabling, enabling and removing.
 *
 * Secrets: disabling an edge closes its link, so it receives nothing new, but its encrypted
 * cache stays (apps keep working, as while the hub is away; enabling it again brings it up
 * to date at its next link-up). Removing an online edge first takes back every secret it
 * holds (it is entitled to none once removed), then closes its link.
 */
import { DrawbridgeError } from '../../errors.js';
import type { EdgeView } from '../../protocol/api-types.js';
import { edgeSecretViews } from './secrets.js';
import type { EdgeRecord } from '../../store/store.js';
import { assertValidName } from '../../util/names.js';
import { sendJson } from '../http.js';
import type { RouteSpec } from '../api.js';
import type { HubServices } from '../services.js';
import type { Principal } from '../principals.js';
import { MONITOR_READERS } from './monitoring.js';

/** How long removing an online edge waits for it to confirm it dropped every secret it held. */
const SECRETS_WITHDRAWAL_WAIT_MS = 5000;

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

export function edgeView(services: HubServices, edge: EdgeRecord, devices: string[], monitoring?: EdgeView['monitoring']): EdgeView {
  const connection = services.registry.getEdge(edge.id);
  return {
    id: edge.id,
    name: edge.name,
    enabled: edge.enabled,
    online: connection !== undefined,
    hostname: edge.hostname,
    agentVersion: connection?.agentVersion ?? edge.agentVersion,
    remoteAddress: connection?.remoteAddress ?? edge.remoteAddress,
    lastSeenAt: connection ? iso(services.now()) : iso(edge.lastSeenAt),
    createdAt: new Date(edge.createdAt).toISOString(),
    devices,
    devicesOnline: connection ? connection.devices.size : 0,
    ...(monitoring !== undefined ? { monitoring } : {}),
  };
}

const mayReadMonitoring = (principal: Principal): boolean => (MONITOR_READERS as readonly string[]).includes(principal.role);
const NO_ACTIVITY = { openAlerts: 0, alertsBySeverity: {}, openFindings: 0, failedLogins24h: 0 };

/** Most attacked first: open alerts, then failed logins in the last day, then name. */
function byAttack(a: EdgeView, b: EdgeView): number {
  const x = a.monitoring ?? NO_ACTIVITY;
  const y = b.monitoring ?? NO_ACTIVITY;
  return y.openAlerts - x.openAlerts || y.failedLogins24h - x.failedLogins24h || y.openFindings - x.openFindings || a.name.localeCompare(b.name);
}

export async function requireEdge(services: HubServices, name: string): Promise<EdgeRecord> {
  assertValidName(name, 'edge name');
  const edge = await services.store.getEdgeByName(name);
  if (!edge) throw new DrawbridgeError('UNKNOWN_EDGE', `unknown edge "${name}"`);
  return edge;
}

export const EDGE_ROUTES: RouteSpec[] = [
  {
    method: 'GET', path: '/v1/edges', summary: 'List edges (agent hosts) and the devices each hosts', roles: ['admin', 'operator', 'approver', 'auditor'],
    handle: async (s, { res, principal }) => {
      const summaries = mayReadMonitoring(principal) ? await s.monitor.summaries() : undefined;
      // Each edge's devices by index, with the event loop free between edges: reading every
      // device of the hub to group them stalled it for tens of ms at 10,000 devices.
      const edges: EdgeView[] = [];
      for (const edge of await s.store.listEdges()) {
        const devices = (await s.store.devicesOfEdge(edge.id)).map((d) => d.name);
        edges.push(edgeView(s, edge, devices, summaries ? (summaries.get(edge.id) ?? NO_ACTIVITY) : null));
        await new Promise((resolve) => setImmediate(resolve));
      }
      sendJson(res, 200, { edges: edges.sort(byAttack) });
    },
  },
  {
    method: 'GET', path: '/v1/edges/:name', summary: 'Show one edge', roles: ['admin', 'operator', 'approver', 'auditor'],
    handle: async (s, { res, params, principal }) => {
      const edge = await requireEdge(s, params['name'] as string);
      const devices = (await s.store.devicesOfEdge(edge.id)).map((d) => d.name);
      // The secrets it holds: vault metadata, for admins and auditors only.
      const secrets = s.vault && (principal.role === 'admin' || principal.role === 'auditor') ? { secrets: edgeSecretViews(await s.vault.heldBy(edge.id)) } : {};
      const readsMonitoring = mayReadMonitoring(principal);
      const summary = readsMonitoring ? ((await s.monitor.summaries()).get(edge.id) ?? NO_ACTIVITY) : null;
      const posture = readsMonitoring ? await s.monitor.posture(edge.id) : null;
      sendJson(res, 200, { ...edgeView(s, edge, devices, summary), signingKey: edge.signingKey, encryptionKey: edge.encryptionKey, ...secrets, posture });
    },
  },
  {
    method: 'POST', path: '/v1/edges/:name/disable', summary: 'Disable an edge: ends its link and every stream of its devices, refuses reconnects', roles: ['admin'],
    handle: async (s, { res, params, principal }) => {
      const edge = await requireEdge(s, params['name'] as string);
      await s.store.setEdgeEnabled(edge.id, false, { actor: principal.name, action: 'edge.disable', details: { edge: edge.name, edgeId: edge.id } });
      s.registry.disconnectEdge(edge.id, 'EDGE_DISABLED', `edge "${edge.name}" was disabled by ${principal.name}`);
      sendJson(res, 200, edgeView(s, { ...edge, enabled: false }, (await s.store.devicesOfEdge(edge.id)).map((d) => d.name)));
    },
  },
  {
    method: 'POST', path: '/v1/edges/:name/enable', summary: 'Enable an edge (its agent reconnects by itself)', roles: ['admin'],
    handle: async (s, { res, params, principal }) => {
      const edge = await requireEdge(s, params['name'] as string);
      await s.store.setEdgeEnabled(edge.id, true, { actor: principal.name, action: 'edge.enable', details: { edge: edge.name, edgeId: edge.id } });
      sendJson(res, 200, edgeView(s, { ...edge, enabled: true }, (await s.store.devicesOfEdge(edge.id)).map((d) => d.name)));
    },
  },
  {
    method: 'DELETE', path: '/v1/edges/:name', summary: "Remove an edge: forgets its keys and ends its link; its devices stay registered but must be enrolled again", roles: ['admin'],
    handle: async (s, { res, params, principal }) => {
      const edge = await requireEdge(s, params['name'] as string);
      const devices = (await s.store.devicesOfEdge(edge.id)).map((d) => d.name);
      await s.store.removeEdge(edge.id, { actor: principal.name, action: 'edge.remove', details: { edge: edge.name, edgeId: edge.id, devices } });
      const reason = `edge "${edge.name}" was removed by ${principal.name}`;
      // Its devices left with it: their streams end now. The link stays only while the edge
      // gives back its secrets (the removal above made it entitled to none), then closes.
      for (const device of devices) s.registry.detach(device, 'EDGE_REMOVED', reason);
      if (s.secretDelivery) await s.secretDelivery.whenEmpty(edge.id, SECRETS_WITHDRAWAL_WAIT_MS);
      s.registry.disconnectEdge(edge.id, 'EDGE_REMOVED', reason);
      // What it still holds: an edge that was offline, or did not answer in time, keeps its encrypted cache.
      const left = s.vault ? (await s.vault.heldBy(edge.id)).map((d) => d.name) : [];
      sendJson(res, 200, { name: edge.name, removed: true, devicesUnenrolled: devices, secretsLeftOnEdge: left });
    },
  },
];
