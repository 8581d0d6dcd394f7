/**
 * drawbridge demo: the whole product on one machine with embedded defaults. Starts a hub,
 * a stand-in device web portal, an agent hosting a virtual device for it, a client
 * tunnel, and fetches the page through hub and agent; then delivers a secret to the edge
 * and reads it as an app would, and raises a security alert from an sshd log line on the
 * edge.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startAgent, type AgentHandle } from '../agent/agent.js';
import { enrollDevice } from '../agent/enroll.js';
import { AppTokenStore } from '../agent/vault/app-tokens.js';
import { localApiRequest } from '../agent/vault/local-client.js';
import { dump as stringifyYaml, load as parseYaml } from 'js-yaml';
import { HubClient } from '../client/hub-client.js';
import { openTunnel, type TunnelHandle } from '../client/tunnel.js';
import { readAdminToken, startHub, type HubHandle } from '../hub/hub.js';
import { createLogger } from '../util/logger.js';
import { DIAGNOSTICS_MARKER, startDiagnosticsServer } from './diagnostics-server.js';

export interface DemoOptions {
  dataDir?: string;
  port?: number;
  out?: (line: string) => void;
}

export interface DemoHandle {
  ok: boolean;
  hub: HubHandle;
  tunnel: TunnelHandle;
  close(): Promise<void>;
}

/** Polls `check` until it returns a value, or fails with `what` after `timeoutMs`. */
async function waitFor<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function fetchText(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/', timeout: 10_000, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out fetching through the tunnel')));
    req.on('error', reject);
  });
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoHandle> {
  const out = options.out ?? ((line: string) => process.stdout.write(line + '\n'));
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'drawbridge-demo-'));
  // The demo's own lines tell the story; warnings (an alert opening is one) only with DRAWBRIDGE_LOG_LEVEL.
  const logger = createLogger('demo', process.env['DRAWBRIDGE_LOG_LEVEL'] || 'error');
  const cleanups: (() => Promise<void>)[] = [];
  // A temporary directory the demo made for itself goes when the demo ends; a given one stays.
  if (!options.dataDir) cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
  const close = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };
  try {
    const t0 = performance.now();
    out('starting a hub, a stand-in device portal, an agent and a client tunnel on this machine ...');
    const hub = await startHub({ dataDir: join(dataDir, 'hub'), host: '127.0.0.1', port: options.port ?? 0, logger });
    cleanups.push(() => hub.close());
    out(`1. hub        ${hub.url}  (data ${hub.dataDir}, CA pin ${hub.caPin})`);

    const portal = await startDiagnosticsServer();
    cleanups.push(() => portal.close());
    out(`2. device web portal (stand-in) on 127.0.0.1:${portal.port}`);

    const adminToken = hub.bootstrapAdminToken ?? readAdminToken(hub.dataDir);
    const client = await HubClient.connect({ hubUrl: hub.url, token: adminToken, caPin: hub.caPin }, { cacheDir: join(dataDir, 'client') });
    cleanups.push(async () => client.close());
    const device = 'demo-plc-web';
    const existing = await client.request<{ devices: { name: string }[] }>('GET', '/v1/devices');
    if (existing.devices.some((d) => d.name === device)) await client.request('DELETE', `/v1/devices/${device}`);
    const added = await client.request<{ enrollmentToken: string }>('POST', '/v1/devices', { name: device, tags: { site: 'demo', env: 'lab' } });
    out(`3. registered virtual device "${device}"`);

    const configPath = join(dataDir, 'agent', 'agent.yaml');
    await enrollDevice({ token: added.enrollmentToken, target: `127.0.0.1:${portal.port}`, configPath });
    // The edge's sshd log, for the monitoring step: a file of the demo's own.
    const authLog = join(dataDir, 'agent', 'auth.log');
    writeFileSync(authLog, '');
    const agentConfig = parseYaml(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(configPath, stringifyYaml({ ...agentConfig, monitoring: { authLog } }), { mode: 0o600 });
    const agent: AgentHandle = await startAgent({ configPath, logger });
    cleanups.push(() => agent.close());
    await agent.waitOnline(15_000);
    out(`4. agent enrolled (edge and device keys generated on the edge; one link to the hub) and online; config ${configPath}`);

    const tunnel = await openTunnel({ client, device });
    cleanups.push(() => tunnel.close());
    out(`5. client tunnel listening on ${tunnel.host}:${tunnel.port} -> ${device}`);

    const t1 = performance.now();
    const page = await fetchText(tunnel.port);
    const fetchMs = performance.now() - t1;
    const ok = page.status === 200 && page.body.includes(DIAGNOSTICS_MARKER);
    out(`6. GET http://${tunnel.host}:${tunnel.port}/ through hub and agent: HTTP ${page.status}, ${page.body.length} bytes in ${fetchMs.toFixed(1)} ms -> ${ok ? 'OK' : 'FAILED'}`);
    if (ok) out(`   "${DIAGNOSTICS_MARKER}"`);

    // Secrets: a value put in the hub's vault reaches the edge end-to-end encrypted, and an
    // app on the edge reads it from the agent's local socket with its own token.
    const secret = 'demo/api-key';
    const edgeName = (await client.request<{ edges: { name: string }[] }>('GET', '/v1/edges')).edges[0]?.name ?? '';
    const put = await client.request<{ version: number }>('POST', `/v1/secrets/${encodeURIComponent(secret)}`, { valueBase64: Buffer.from('demo-value-1f3a').toString('base64') });
    await client.request('POST', `/v1/secrets/${encodeURIComponent(secret)}/allow`, { edge: edgeName });
    await waitFor(async () => {
      const status = await client.request<{ edges: { version: number | null }[] }>('GET', `/v1/secrets/${encodeURIComponent(secret)}/status`);
      return status.edges.some((e) => e.version === put.version) ? true : undefined;
    }, 10_000, 'the secret on the edge');
    const agentDir = join(dataDir, 'agent');
    const appToken = new AppTokenStore(join(agentDir, 'app-tokens.json')).add('demo-app', [secret], Date.now());
    const read = await localApiRequest<{ version: number; value: string }>(join(agentDir, 'agent.sock'), appToken, `/v1/secrets/${encodeURIComponent(secret)}`);
    const secretOk = read.version === put.version && read.value === 'demo-value-1f3a';
    out(`7. secret "${secret}" v${put.version} put in the vault, delivered sealed to edge "${edgeName}", read by an app over ${join(agentDir, 'agent.sock')} -> ${secretOk ? 'OK' : 'FAILED'}`);

    // Monitoring: eight failed SSH logins from one source in the edge's auth log open an
    // ssh-brute-force alert on the hub within seconds.
    const stamp = new Date().toUTCString().slice(8, 11) + ' ' + new Date().getUTCDate().toString().padStart(2) + ' ' + new Date().toISOString().slice(11, 19);
    for (let i = 0; i < 8; i++) appendFileSync(authLog, `${stamp} demo sshd[4242]: Failed password for root from 203.0.113.7 port ${50000 + i} ssh2\n`);
    const t2 = performance.now();
    const alert = await waitFor(async () => {
      const { alerts } = await client.request<{ alerts: { rule: string; count: number; severity: string }[] }>('GET', `/v1/alerts?edge=${edgeName}&status=open`);
      return alerts.find((a) => a.rule === 'ssh-brute-force');
    }, 15_000, 'the brute-force alert');
    out(`8. 8 failed SSH logins from 203.0.113.7 written to the edge's auth log -> alert ssh-brute-force (${alert.severity}) open on the hub after ${((performance.now() - t2) / 1000).toFixed(1)} s`);
    out(`   whole demo took ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    out('');
    out('Try it yourself (in another terminal):');
    out(`  curl http://${tunnel.host}:${tunnel.port}/status.json`);
    out(`  drawbridge login --hub ${hub.url} --token "$(cat ${hub.adminTokenFile})" --ca-pin ${hub.caPin}`);
    out(`  drawbridge devices list ; drawbridge edges list`);
    out(`  drawbridge connect ${device} --listen 127.0.0.1:8080     # then open http://127.0.0.1:8080/`);
    out(`  drawbridge secrets status ${secret} ; drawbridge alerts list ; drawbridge findings list`);
    out(`  drawbridge sessions list ; drawbridge audit tail ; drawbridge audit verify`);
    return { ok: ok && secretOk, hub, tunnel, close };
  } catch (error) {
    await close();
    throw error;
  }
}
