/**
 * Secrets through the real binaries, the "Done when": put -> an allowed edge holds
 * it within 2 s -> an app reads it over the socket (curl) -> a new version -> the app reads
 * v2 and the rendered file changes -> hub stopped, agent restarted -> the app still reads
 * it -> deny -> it is gone from the edge; no value in clear in the hub's or the agent's
 * directory (or their logs); `secrets status` shows the versions held.
 */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanup, freePort, runCli, runProgram, spawnCli, startHubProcess, stopProcess, tempDir, waitFor, type HubProcess } from '../helpers.js';
import { filesContaining } from '../plaintext-scan.js';

const NAME = 'plant-3/db-password';
const V1 = 'e2e-pw-one-91c2';
const V2 = 'e2e-pw-two-5ab0';

async function cli(env: Record<string, string>, args: string[], input?: string): Promise<string> {
  const result = await runCli(args, { env, ...(input !== undefined ? { input } : {}) });
  assert.equal(result.code, 0, `drawbridge ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/** The app: curl on the agent's Unix socket with its token. */
async function appRead(socket: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const result = await runProgram('curl', ['-s', '-w', '\n%{http_code}', '--unix-socket', socket, '-H', `Authorization: Bearer ${token}`, `http://agent/v1/secrets/${NAME}`]);
  const text = result.stdout.toString();
  const at = text.lastIndexOf('\n');
  return { status: Number(text.slice(at + 1)), body: text.slice(0, at) ? (JSON.parse(text.slice(0, at)) as Record<string, unknown>) : {} };
}

describe('secrets end to end (real processes)', { timeout: 120_000 }, () => {
  after(() => cleanup());

  it('delivers, serves, renders, survives the hub going away, and removes on deny, with nothing in clear on disk', async () => {
    const dataDir = tempDir('db-hub-sec-');
    const port = await freePort();
    let hub: HubProcess = await startHubProcess({ dataDir, port });
    const agentDir = tempDir('db-agent-sec-');
    const config = join(agentDir, 'agent.yaml');
    const rendered = join(tempDir('db-rendered-'), 'app', 'db.conf');

    const added = JSON.parse(await cli(hub.env, ['devices', 'add', 'kiosk-1', '--json'])) as { enrollmentToken: string };
    await cli({}, ['agent', 'enroll', added.enrollmentToken, '--target', '127.0.0.1:9', '--config', config, '--edge-name', 'kiosk']);
    // A rendered file, and a short reconnect backoff: the hub comes back within the test.
    appendFileSync(config, ['files:', `  - path: ${rendered}`, `    template: "password={{ secret \\"${NAME}\\" }}\\n"`, '    mode: "0600"', 'limits:', '  reconnectMaxDelay: 500ms', ''].join('\n'));
    const app = JSON.parse(await cli({}, ['agent', 'app-token', 'add', 'billing', '--secret', NAME, '--config', config, '--json'])) as { app: string; token: string };
    assert.equal(app.app, 'billing');
    const socket = join(dirname(config), 'agent.sock');

    let agent = await spawnCli(['agent', 'run', '--config', config]);
    await waitFor(() => agent.stderr().includes('"device online"'), 15_000, 'agent online');

    // put -> allow -> held within 2 s -> the app reads it
    assert.deepEqual(JSON.parse(await cli(hub.env, ['secrets', 'put', NAME, '--value-stdin', '--json'], V1)), { name: NAME, version: 1 });
    await cli(hub.env, ['secrets', 'allow', NAME, '--device', 'kiosk-1']);
    await waitFor(async () => (await appRead(socket, app.token)).status === 200, 2000, 'the edge to hold the secret within 2 s');
    assert.deepEqual((await appRead(socket, app.token)).body, { name: NAME, version: 1, value: V1 });
    await waitFor(() => existsSync(rendered) && readFileSync(rendered, 'utf8') === `password=${V1}\n`, 5000, 'the file rendered');

    // a new version: the app reads v2 and the rendered file changes
    assert.equal((JSON.parse(await cli(hub.env, ['secrets', 'put', NAME, '--value-stdin', '--json', '--cas', '1'], V2)) as { version: number }).version, 2);
    await waitFor(async () => (await appRead(socket, app.token)).body['value'] === V2, 5000, 'the app to read v2');
    await waitFor(() => readFileSync(rendered, 'utf8') === `password=${V2}\n`, 5000, 'the file to change');
    await waitFor(async () => {
      const status = JSON.parse(await cli(hub.env, ['secrets', 'status', NAME, '--json'])) as { name: string; edges: { edge: string; devices: string[]; version: number; deliveredAt: string; lastReadAt: string | null }[] };
      return status.name === NAME && status.edges.length === 1 && status.edges[0]?.edge === 'kiosk' && status.edges[0].version === 2 && status.edges[0].deliveredAt !== null && status.edges[0].devices.includes('kiosk-1');
    }, 5000, 'secrets status to show version 2 held');

    // hub stopped, agent restarted: the app still reads it, and so does the agent's own CLI
    await stopProcess(hub.child);
    await stopProcess(agent.child);
    agent = await spawnCli(['agent', 'run', '--config', config]);
    await waitFor(() => existsSync(socket) && agent.stderr().includes('local API listening'), 10_000, 'the restarted agent serving');
    assert.deepEqual((await appRead(socket, app.token)).body, { name: NAME, version: 2, value: V2 });
    assert.equal(await cli({}, ['agent', 'secrets', 'get', NAME, '--config', config]), V2);

    // the hub back: deny -> gone from the edge (the socket says 404, the file is removed)
    hub = await startHubProcess({ dataDir, port });
    await waitFor(() => agent.stderr().includes('"edge online"'), 20_000, 'the agent back online');
    await cli(hub.env, ['secrets', 'deny', NAME, '--device', 'kiosk-1']);
    await waitFor(async () => (await appRead(socket, app.token)).status === 404, 5000, 'the secret gone from the edge');
    await waitFor(() => !existsSync(rendered), 5000, 'the rendered file removed');
    assert.deepEqual(JSON.parse(await cli({}, ['agent', 'secrets', 'list', '--config', config, '--json'])), []);

    // no value in clear anywhere in the hub's or the agent's directory, nor in their logs
    for (const value of [V1, V2]) {
      assert.deepEqual(filesContaining([dataDir, agentDir], value), [], value);
      assert.ok(!hub.stderr().includes(value) && !agent.stderr().includes(value), 'no value in the logs');
    }
    await stopProcess(agent.child);
  });
});
