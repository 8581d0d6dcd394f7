/**
 * The hub's side of edge security monitoring over real links: an edge (driven by hand, see
 * telemetry-edge.ts) reports inventories and login events; the hub applies deltas, asks for a
 * resync on a gap or drift, raises and updates alerts, keeps findings in step with the state,
 * and serves them over REST with roles; bad telemetry is refused with a code, counted, and
 * changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DrawbridgeError } from '../../src/errors.js';
import type { AlertView, AuditView, EdgeView, FindingView, PostureView } from '../../src/protocol/api-types.js';
import { TelemetryInventory } from '../../src/protocol/messages/telemetry.js';
import { checkpointDigest, stateHash } from '../../src/protocol/telemetry-codec.js';
import { ManualClock } from '../../src/util/clock.js';
import { echoServer, startHarness, type Harness } from './stream-harness.js';
import { connectTelemetryEdge, failure, portRow, sshdRow, type TelemetryEdge } from './telemetry-edge.js';

const T0 = Date.now();

describe('monitoring ingest', { timeout: 60_000 }, () => {
  let h: Harness;
  let edge: TelemetryEdge;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  const alerts = async (query = ''): Promise<AlertView[]> => (await h.admin.request<{ alerts: AlertView[] }>('GET', `/v1/alerts${query}`)).alerts;
  const findings = async (query = ''): Promise<FindingView[]> => (await h.admin.request<{ findings: FindingView[] }>('GET', `/v1/findings${query}`)).findings;

  before(async () => {
    h = await startHarness();
    echo = await echoServer();
    const config = await h.enroll('gw-1', `127.0.0.1:${echo.port}`, { edgeName: 'plant-gw', tags: { site: 'plant-3' } });
    edge = await connectTelemetryEdge(h.hub.url, config);
  });
  after(async () => {
    edge?.close();
    await h?.close();
    await echo?.close();
  });

  it('asks for every inventory it does not hold, and accepts full states', async () => {
    const state = await edge.state({ inventories: { ports: { seq: 4, hash: stateHash([]) }, sshd: { seq: 1, hash: stateHash([]) } } });
    assert.deepEqual(state, { inventories: {}, resync: ['ports', 'sshd'] });
    const ports = [portRow('tcp', '0.0.0.0', 22, 'sshd'), portRow('tcp', '127.0.0.1', 5432, 'postgres'), portRow('udp', '::', 5353, null)];
    assert.deepEqual(await edge.full('ports', 4, ports), { applied: true, resync: false });
    assert.deepEqual(await edge.full('sshd', 1, [sshdRow({ permitRootLogin: 'yes', passwordAuthentication: 'yes' })]), { applied: true, resync: false });
    const again = await edge.state({ inventories: { ports: { seq: 4, hash: stateHash(ports) } } });
    assert.deepEqual(again.resync, [], 'the hub holds what the edge has');
    assert.equal(again.inventories?.ports?.seq, 4);
    // Later checkpoints carry one digest: nothing comes back while it matches, the hub's states when it does not.
    const held = again.inventories ?? {};
    assert.deepEqual(await edge.state({ inventories: undefined, digest: checkpointDigest(held) }), { resync: [] });
    const drifted = await edge.state({ inventories: undefined, digest: checkpointDigest({ ...held, ports: { seq: 4, hash: stateHash([]) } }) });
    assert.deepEqual(drifted.inventories, held);
    assert.deepEqual(await alerts(), [], 'a first report is the baseline: no alert');
    const open = (await findings('?status=open')).map((f) => `${f.rule} ${f.facts['port'] ?? f.facts['permitRootLogin'] ?? ''}`).sort();
    assert.deepEqual(open, ['open-port-all-interfaces 22', 'open-port-all-interfaces 5353', 'ssh-password-auth-allowed ', 'ssh-root-login-allowed yes']);
  });

  it('applies a delta and raises new-listening-port; a gap or a drifted result asks for a resync and changes nothing', async () => {
    const ports = [portRow('tcp', '0.0.0.0', 22, 'sshd'), portRow('tcp', '127.0.0.1', 5432, 'postgres'), portRow('udp', '::', 5353, null)];
    const added = portRow('tcp', '0.0.0.0', 4444, 'nc');
    assert.deepEqual(await edge.delta('ports', 6, [added], [], [...ports, added]), { applied: false, resync: true }, 'seq 6 after 4 is a gap');
    assert.deepEqual(await edge.delta('ports', 5, [added], [], ports), { applied: false, resync: true }, 'a hash that does not match the result is drift');
    assert.deepEqual(await alerts(), []);
    assert.deepEqual(await edge.delta('ports', 5, [added], [], [...ports, added]), { applied: true, resync: false });
    const [alert] = await alerts('?rule=new-listening-port');
    assert.ok(alert);
    assert.equal(alert.edge, 'plant-gw');
    assert.equal(alert.severity, 'medium');
    assert.deepEqual(alert.facts, { protocol: 'tcp', address: '0.0.0.0', port: 4444, process: 'nc' });
    assert.ok((await findings('?status=open')).some((f) => f.facts['port'] === 4444));
    // The port closes: its finding resolves by itself; the alert stays for a person to resolve.
    assert.deepEqual(await edge.delta('ports', 6, [], [added.k], ports), { applied: true, resync: false });
    assert.ok((await findings('?status=resolved')).some((f) => f.facts['port'] === 4444));
    assert.equal((await alerts('?rule=new-listening-port'))[0]?.status, 'open');
  });

  it('raises ssh-brute-force at the 8th failure in 120 s and updates the same alert after; a batch sent twice counts once', async () => {
    const seven = Array.from({ length: 7 }, (_, i) => failure('203.0.113.66', i % 2 ? 'root' : 'oracle', T0 + i * 1000, 1, i % 2 ? 'ssh.failure' : 'ssh.invalid-user'));
    assert.deepEqual(await edge.events(1, seven), { accepted: 1 });
    assert.deepEqual(await alerts('?rule=ssh-brute-force'), []);
    await edge.events(2, [failure('203.0.113.66', 'root', T0 + 8000)]);
    const [opened] = await alerts('?rule=ssh-brute-force');
    assert.equal(opened?.count, 8);
    assert.equal(opened?.facts['sourceAddress'], '203.0.113.66');
    await edge.events(3, [failure('203.0.113.66', 'root', T0 + 9000, 5)]);
    assert.deepEqual(await edge.events(3, [failure('203.0.113.66', 'root', T0 + 9000, 5)]), { accepted: 3 }, 'a resent batch is acknowledged');
    const list = await alerts('?rule=ssh-brute-force');
    assert.equal(list.length, 1, 'one alert per source');
    assert.equal(list[0]?.count, 13);
    const shown = await h.admin.request<AlertView>('GET', `/v1/alerts/${list[0]?.id}`);
    assert.ok(shown.evidence && shown.evidence.length >= 2 && shown.evidence[0]?.includes('203.0.113.66'));
  });

  it('raises ssh-login-after-failures and root-login on a successful root login from that source', async () => {
    await edge.events(4, [{ kind: 'ssh.success', t: T0 + 10_000, n: 1, src: '203.0.113.66', user: 'root', method: 'password', line: 'Accepted password for root from 203.0.113.66 port 50000 ssh2' }]);
    const rules = (await alerts('?status=open')).map((a) => a.rule).sort();
    assert.ok(rules.includes('ssh-login-after-failures') && rules.includes('root-login'), rules.join());
    const after = (await alerts('?rule=ssh-login-after-failures'))[0];
    assert.deepEqual(after?.facts['user'], 'root');
    assert.equal(after?.severity, 'critical');
  });

  it('refuses malformed, oversized and invalid telemetry with a code, counts it, and stores nothing', async () => {
    const before = await h.admin.request<PostureView & object>('GET', '/v1/edges/plant-gw').then((e) => (e as unknown as { posture: PostureView }).posture.listeningPorts.length);
    await assert.rejects(
      edge.link.request(TelemetryInventory, { inventory: 'ports', seq: 7, full: false, payload: { deflate: Buffer.from('garbage!').toString('base64') } }),
      (e: DrawbridgeError) => e.code === 'VALIDATION_FAILED',
    );
    await assert.rejects(
      edge.link.request(TelemetryInventory, { inventory: 'ports', seq: 7, full: false, payload: { json: { set: [{ k: 'x', proto: 'sctp', addr: '1', port: 1, proc: null }], removed: [], hash: 'AAAAAAAAAAAAAAAA' } } }),
      (e: DrawbridgeError) => e.code === 'VALIDATION_FAILED' && e.message.includes('proto'),
    );
    const { deflateRawSync } = await import('node:zlib');
    await assert.rejects(
      edge.link.request(TelemetryInventory, { inventory: 'ports', seq: 7, full: false, payload: { deflate: deflateRawSync(Buffer.alloc(4 * 1024 * 1024, 0x61)).toString('base64') } }),
      (e: DrawbridgeError) => e.code === 'PAYLOAD_TOO_LARGE',
    );
    await assert.rejects(edge.events(9, [{ kind: 'ssh.failure', t: -5, n: 1 }]), (e: DrawbridgeError) => e.code === 'VALIDATION_FAILED');
    const { text } = await h.admin.raw('GET', '/metrics');
    assert.match(text, /drawbridge_telemetry_rejected_total\{reason="malformed"\} 3/);
    assert.match(text, /drawbridge_telemetry_rejected_total\{reason="oversized"\} 1/);
    const after = (await h.admin.request<{ posture: PostureView }>('GET', '/v1/edges/plant-gw')).posture.listeningPorts.length;
    assert.equal(after, before);
    // The link lives on: the next good message is served.
    assert.equal((await edge.state()).resync.length, 0);
  });

  it('serves alerts by role: auditors read, approvers acknowledge and resolve, only admins mute; each action audited', async () => {
    const auditor = await h.user('aud', 'auditor');
    const approver = await h.user('appr', 'approver');
    const operator = await h.user('oper', 'operator');
    const [alert] = await alerts('?rule=ssh-brute-force');
    assert.ok(alert);
    assert.equal((await auditor.client.request<{ alerts: AlertView[] }>('GET', '/v1/alerts')).alerts.length > 0, true);
    await assert.rejects(operator.client.request('GET', '/v1/alerts'), (e: DrawbridgeError) => e.code === 'FORBIDDEN');
    await assert.rejects(auditor.client.request('POST', `/v1/alerts/${alert.id}/ack`, {}), (e: DrawbridgeError) => e.code === 'FORBIDDEN');
    const acked = await approver.client.request<AlertView>('POST', `/v1/alerts/${alert.id}/ack`, { note: 'on it' });
    assert.equal(acked.status, 'acked');
    await assert.rejects(approver.client.request('POST', `/v1/alerts/${alert.id}/ack`, {}), (e: DrawbridgeError) => e.code === 'INVALID_STATE');
    const resolved = await approver.client.request<AlertView>('POST', `/v1/alerts/${alert.id}/resolve`, { note: 'source blocked upstream' });
    assert.equal(resolved.status, 'resolved');
    assert.equal(resolved.resolvedBy, 'appr');
    await assert.rejects(h.admin.request('POST', '/v1/alerts/al_0000000000000000/ack', {}), (e: DrawbridgeError) => e.code === 'UNKNOWN_ALERT');
    await assert.rejects(h.admin.request('GET', '/v1/alerts?status=bogus'), (e: DrawbridgeError) => e.code === 'VALIDATION_FAILED');

    const [finding] = await findings('?status=open');
    assert.ok(finding);
    await assert.rejects(approver.client.request('POST', `/v1/findings/${finding.id}/mute`, { reason: 'x' }), (e: DrawbridgeError) => e.code === 'FORBIDDEN');
    await assert.rejects(h.admin.request('POST', `/v1/findings/${finding.id}/mute`, { reason: '  ' }), (e: DrawbridgeError) => e.code === 'VALIDATION_FAILED');
    const muted = await h.admin.request<FindingView>('POST', `/v1/findings/${finding.id}/mute`, { reason: 'lab box, accepted' });
    assert.equal(muted.status, 'muted');
    assert.equal(muted.mute?.reason, 'lab box, accepted');
    const { records } = await h.admin.request<{ records: AuditView[] }>('GET', '/v1/audit?order=desc&limit=50');
    const actions = records.map((r) => `${r.actor} ${r.action}`);
    for (const expected of ['appr alert.ack', 'appr alert.resolve', 'admin finding.mute', 'hub alert.open']) assert.ok(actions.includes(expected), `${expected} in ${actions.join(', ')}`);
    const unmuted = await h.admin.request<FindingView>('POST', `/v1/findings/${finding.id}/unmute`);
    assert.equal(unmuted.status, 'open');
  });

  it('lists edges most attacked first with their alerts and findings, and shows an edge\'s posture', async () => {
    await h.enroll('quiet-1', `127.0.0.1:${echo.port}`, { edgeName: 'a-quiet-edge' });
    const { edges } = await h.admin.request<{ edges: EdgeView[] }>('GET', '/v1/edges');
    assert.deepEqual(edges.map((e) => e.name), ['plant-gw', 'a-quiet-edge'], 'the attacked edge first, though later in the alphabet');
    assert.ok((edges[0]?.monitoring?.openAlerts ?? 0) >= 3);
    assert.ok((edges[0]?.monitoring?.failedLogins24h ?? 0) >= 13);
    assert.equal(edges[1]?.monitoring?.openAlerts, 0);
    const operator = await h.client((await h.admin.request<{ token: string }>('POST', '/v1/users', { name: 'oper2', role: 'operator' })).token);
    const seen = await operator.request<{ edges: EdgeView[] }>('GET', '/v1/edges');
    assert.equal(seen.edges[0]?.monitoring, null, 'operators do not read monitoring');
    const shown = await h.admin.request<{ posture: PostureView }>('GET', '/v1/edges/plant-gw');
    assert.deepEqual(shown.posture.listeningPorts.map((p) => `${p.protocol}/${p.port}`), ['tcp/22', 'tcp/5432', 'udp/5353']);
    assert.equal(shown.posture.sshd?.['permitRootLogin'], 'yes');
    assert.ok(shown.posture.openAlerts.length >= 2);
  });
});

describe('telemetry-silent', { timeout: 60_000 }, () => {
  let h: Harness;
  let clock: ManualClock;
  let edge: TelemetryEdge;
  before(async () => {
    clock = new ManualClock(Date.now());
    // Pings far apart: the hub's clock jumps minutes ahead while the edge's does not.
    h = await startHarness({ clock, config: { limits: { pingInterval: '10m' }, monitoring: { rules: { 'telemetry-silent': { after: '2m' } } } } });
    const config = await h.enroll('quiet', '127.0.0.1:9', { edgeName: 'quiet-edge' });
    edge = await connectTelemetryEdge(h.hub.url, config);
  });
  after(async () => {
    edge?.close();
    await h?.close();
  });

  it('opens when an online edge sends no telemetry for the configured time, and resolves itself when telemetry resumes', async () => {
    await edge.state({ checkpointIntervalMs: 30_000 });
    await clock.advance(60_000);
    assert.deepEqual((await h.admin.request<{ alerts: AlertView[] }>('GET', '/v1/alerts')).alerts, []);
    await clock.advance(90_000);
    const [alert] = (await h.admin.request<{ alerts: AlertView[] }>('GET', '/v1/alerts?rule=telemetry-silent')).alerts;
    assert.equal(alert?.status, 'open');
    assert.equal(alert?.edge, 'quiet-edge');
    await edge.state({ checkpointIntervalMs: 30_000 });
    await h.hub.services.monitor.idle();
    for (let i = 0; i < 100; i++) {
      const [now] = (await h.admin.request<{ alerts: AlertView[] }>('GET', '/v1/alerts?rule=telemetry-silent')).alerts;
      if (now?.status === 'resolved') {
        assert.equal(now.resolvedBy, 'hub');
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.fail('the telemetry-silent alert did not resolve');
  });
});
