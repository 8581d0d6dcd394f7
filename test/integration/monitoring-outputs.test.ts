/**
 * What leaves the hub about security: signed webhooks for alert.opened and alert.resolved
 * (delivered to a real local HTTP server, signature checked), Prometheus gauges of open
 * alerts by severity and findings, telemetry bytes received; and the allowed ports of a tag.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { AlertView } from '../../src/protocol/api-types.js';
import { signWebhookBody } from '../../src/hub/webhook.js';
import { startHarness, type Harness } from './stream-harness.js';
import { connectTelemetryEdge, failure, portRow, type TelemetryEdge } from './telemetry-edge.js';

const SECRET = 'monitoring-webhook-secret-0123456789';

describe('monitoring outputs', { timeout: 60_000 }, () => {
  let h: Harness;
  let edge: TelemetryEdge;
  let receiver: Server;
  const received: { event: string; signatureOk: boolean; body: { event: string; data: { alert: AlertView } } }[] = [];

  before(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        received.push({ event: String(req.headers['x-drawbridge-event']), signatureOk: req.headers['x-drawbridge-signature'] === signWebhookBody(SECRET, text), body: JSON.parse(text) });
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
    h = await startHarness({
      config: {
        webhook: { url, secret: SECRET },
        monitoring: { baseline: { allowedPorts: [{ tags: { role: 'kiosk' }, ports: ['tcp/443', 22] }] } },
      },
    });
    const config = await h.enroll('kiosk-1', '127.0.0.1:9', { edgeName: 'kiosk-edge', tags: { role: 'kiosk' } });
    edge = await connectTelemetryEdge(h.hub.url, config);
  });
  after(async () => {
    edge?.close();
    await h?.close();
    receiver?.close();
  });

  it('holds an edge to the allowed ports of its tags from its first report', async () => {
    const rows = [portRow('tcp', '0.0.0.0', 22, 'sshd'), portRow('tcp', '0.0.0.0', 443, 'nginx'), portRow('tcp', '0.0.0.0', 8081, 'debugd')];
    await edge.full('ports', 1, rows);
    const { alerts } = await h.admin.request<{ alerts: AlertView[] }>('GET', '/v1/alerts?rule=new-listening-port');
    assert.deepEqual(alerts.map((a) => a.facts['port']), [8081], 'only the port outside the baseline');
    const { findings } = await h.admin.request<{ findings: { facts: Record<string, unknown> }[] }>('GET', '/v1/findings?status=open');
    assert.deepEqual(findings.map((f) => f.facts['port']), [8081]);
  });

  it('sends signed alert.opened and alert.resolved webhooks', async () => {
    await edge.events(1, Array.from({ length: 8 }, (_, i) => failure('198.51.100.23', 'pi', Date.now() + i)));
    await h.hub.services.monitor.idle();
    const { alerts } = await h.admin.request<{ alerts: AlertView[] }>('GET', '/v1/alerts?rule=ssh-brute-force');
    const alert = alerts[0];
    assert.ok(alert);
    await h.admin.request('POST', `/v1/alerts/${alert.id}/resolve`, { note: 'blocked' });
    for (let i = 0; i < 200 && !received.some((r) => r.event === 'alert.resolved'); i++) await new Promise((r) => setTimeout(r, 20));
    const opened = received.find((r) => r.event === 'alert.opened' && r.body.data.alert.rule === 'ssh-brute-force');
    assert.ok(opened, received.map((r) => r.event).join());
    assert.equal(opened.signatureOk, true);
    assert.equal(opened.body.data.alert.facts['sourceAddress'], '198.51.100.23');
    assert.ok(opened.body.data.alert.evidence?.[0]?.includes('198.51.100.23'));
    const resolved = received.find((r) => r.event === 'alert.resolved');
    assert.equal(resolved?.signatureOk, true);
    assert.equal(resolved?.body.data.alert.id, alert.id);
    assert.equal(resolved?.body.data.alert.resolvedBy, 'admin');
  });

  it('exports open alerts by severity, open findings and telemetry bytes to Prometheus', async () => {
    await h.hub.services.monitor.idle();
    const { text } = await h.admin.raw('GET', '/metrics');
    assert.match(text, /drawbridge_alerts_open\{severity="medium",status="open"\} 1/, 'the new-listening-port alert (the brute force was resolved)');
    assert.doesNotMatch(text, /drawbridge_alerts_open\{severity="high"/);
    assert.match(text, /drawbridge_findings_open\{severity="medium"\} 1/);
    const bytes = /drawbridge_telemetry_bytes_received_total\{type="telemetry.events"\} (\d+)/.exec(text);
    assert.ok(bytes && Number(bytes[1]) > 100);
    assert.match(text, /drawbridge_telemetry_events_total 8/);
  });
});
