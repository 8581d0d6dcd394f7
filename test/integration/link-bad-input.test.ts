/**
 * Bad input on the links, sent by an independent WebSocket implementation (the `ws`
 * library, with real random masks): each gets a precise refusal, close code or error reply,
 * the link lives on where the protocol says so, and the hub keeps serving.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { encodeEnvelope } from '../../src/protocol/control.js';
import { encodeDataHeader } from '../../src/protocol/frames.js';
import type { AuditView } from '../../src/protocol/api-types.js';
import { startHarness, type Harness } from './stream-harness.js';

type Opened = { ws: WebSocket; status: 101 } | { ws?: undefined; status: number; body: string };

function open(h: Harness, path: string, options: { protocol?: string | null; headers?: Record<string, string> } = {}): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const protocols = options.protocol === null ? [] : [options.protocol ?? 'drawbridge.v2'];
    const ws = new WebSocket(`${h.hub.url.replace(/^https/, 'wss')}${path}`, protocols, {
      ca: h.hub.caPem,
      checkServerIdentity: (() => undefined) as unknown as () => boolean,
      perMessageDeflate: false,
      maxPayload: 2 * 1024 * 1024,
      ...(options.headers ? { headers: options.headers } : {}),
    });
    ws.once('open', () => resolve({ ws, status: 101 }));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        ws.on('error', () => undefined);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    ws.once('error', reject);
  });
}

/** Collects text messages and the close of a raw socket. */
function watch(ws: WebSocket): { messages: Record<string, unknown>[]; binary: Buffer[]; closed: Promise<{ code: number; reason: string }> } {
  const messages: Record<string, unknown>[] = [];
  const binary: Buffer[] = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) binary.push(data);
    else messages.push(JSON.parse(data.toString()) as Record<string, unknown>);
  });
  ws.on('error', () => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })));
  return { messages, binary, closed };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), what);
}

async function agentLink(h: Harness): Promise<{ ws: WebSocket } & ReturnType<typeof watch>> {
  const opened = await open(h, '/v1/link/agent');
  assert.equal(opened.status, 101);
  const ws = opened.ws as WebSocket;
  const watched = watch(ws);
  await until(() => watched.messages.some((m) => m['type'] === 'hello'), 'hello');
  return { ws, ...watched };
}

const send = (ws: WebSocket, envelope: Record<string, unknown>): void => ws.send(encodeEnvelope({ v: 2, ...envelope } as never));

describe('bad input on links', { timeout: 60_000 }, () => {
  let h: Harness;

  before(async () => {
    h = await startHarness({ config: { limits: { authTimeout: '1s', authFailuresPerMinute: 1000, authFailureAuditWindow: '1s' } } });
  });

  after(async () => {
    await h?.close();
  });

  it('refuses an upgrade without the link protocol (400 PROTOCOL_ERROR), to an unknown path (404), and a client link without a valid token (401)', async () => {
    const noProtocol = await open(h, '/v1/link/agent', { protocol: null });
    assert.equal(noProtocol.status, 400);
    assert.match((noProtocol as { body: string }).body, /"code":"PROTOCOL_ERROR".*drawbridge\.v2/);
    const unknown = await open(h, '/v1/nowhere');
    assert.equal(unknown.status, 404);
    const anonymous = await open(h, '/v1/link/client');
    assert.equal(anonymous.status, 401);
    assert.match((anonymous as { body: string }).body, /"code":"UNAUTHENTICATED"/);
    const forged = await open(h, '/v1/link/client', { headers: { authorization: 'Bearer dbp_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } });
    assert.equal(forged.status, 401);
  });

  it('ignores an unknown message type and answers an unknown request with UNSUPPORTED; the link stays open', async () => {
    const link = await agentLink(h);
    send(link.ws, { type: 'telepathy', body: { x: 1 } });
    send(link.ws, { type: 'telepathy.ask', id: 3, body: {} });
    await until(() => link.messages.some((m) => m['re'] === 3), 'reply to 3');
    assert.equal((link.messages.find((m) => m['re'] === 3)?.['body'] as { code: string }).code, 'UNSUPPORTED');
    assert.equal(link.ws.readyState, WebSocket.OPEN);
    link.ws.close();
  });

  it('answers a request with bad fields VALIDATION_FAILED naming the field, and one sent too early INVALID_STATE', async () => {
    const link = await agentLink(h);
    send(link.ws, { type: 'edge.auth', id: 1, body: { edge: 'zz', signature: 'x', agentVersion: '1', hostname: 'h', capabilities: [], extra: 1 } });
    send(link.ws, { type: 'device.attach', id: 2, body: { devices: [{ name: 'a', signature: 'x', target: 'h:1', maxStreams: 1 }] } });
    await until(() => link.messages.filter((m) => m['type'] === 'error').length === 2, 'two error replies');
    const one = link.messages.find((m) => m['re'] === 1)?.['body'] as { code: string; message: string };
    assert.equal(one.code, 'VALIDATION_FAILED');
    assert.match(one.message, /edge/);
    assert.equal((link.messages.find((m) => m['re'] === 2)?.['body'] as { code: string }).code, 'INVALID_STATE');
    link.ws.close();
  });

  it('refuses control characters in what an agent reports (host name, version, device target), naming the field', async () => {
    const link = await agentLink(h);
    const edge = '0123456789abcdef0123456789abcdef';
    send(link.ws, { type: 'edge.auth', id: 1, body: { edge, signature: 'AAAA', agentVersion: '1.0\u001b[2J', hostname: 'plc', capabilities: [] } });
    send(link.ws, { type: 'edge.auth', id: 2, body: { edge, signature: 'AAAA', agentVersion: '1.0', hostname: 'plc\u001b]0;owned\u0007', capabilities: [] } });
    send(link.ws, { type: 'device.attach', id: 3, body: { devices: [{ name: 'dev-1', signature: 'AAAA', target: '127.0.0.1:22\u009b2J', maxStreams: 1 }] } });
    await until(() => link.messages.filter((m) => m['type'] === 'error').length === 3, 'three error replies');
    const reply = (id: number): { code: string; message: string } => link.messages.find((m) => m['re'] === id)?.['body'] as { code: string; message: string };
    for (const [id, field, found] of [[1, 'agentVersion', 'x1b'], [2, 'hostname', 'x1b'], [3, 'devices.0.target', 'x9b']] as const) {
      assert.equal(reply(id).code, 'VALIDATION_FAILED');
      assert.ok(reply(id).message.includes(`${field} must not contain control characters (found \\${found}`), reply(id).message);
    }
    link.ws.close();
  });

  it('closes 1008 PROTOCOL_ERROR on a malformed envelope, 1009 on a text message over 1 MiB, 1003 on a fragmented message', async () => {
    const cases: [string, (ws: WebSocket) => void, number, RegExp][] = [
      ['not JSON', (ws) => ws.send('{"v":2,"type":'), 1008, /^PROTOCOL_ERROR: control message is not valid JSON/],
      ['wrong version', (ws) => ws.send(JSON.stringify({ v: 1, type: 'hello' })), 1008, /^PROTOCOL_ERROR: invalid control envelope/],
      ['over 1 MiB', (ws) => ws.send(JSON.stringify({ v: 2, type: 'x', body: { pad: 'y'.repeat(1024 * 1024) } })), 1009, /PROTOCOL_ERROR/],
      ['fragmented', (ws) => ws.send('{"v":2,', { fin: false }), 1003, /fragmented/],
    ];
    for (const [what, misbehave, code, reason] of cases) {
      const link = await agentLink(h);
      misbehave(link.ws);
      const closed = await link.closed;
      assert.equal(closed.code, code, what);
      assert.match(closed.reason, reason, what);
    }
  });

  it('answers stream frames for streams that do not exist with RESET, and stays open', async () => {
    const link = await agentLink(h);
    const data = Buffer.from('who is there');
    link.ws.send(Buffer.concat([encodeDataHeader(42, data.length, false).subarray(2), data]));
    await until(() => link.binary.length > 0, 'a RESET');
    const reset = link.binary[0] as Buffer;
    assert.equal(reset[0], 3, 'RESET');
    assert.equal(reset.readUInt32BE(1), 42);
    assert.match(reset.subarray(5).toString(), /^PROTOCOL_ERROR/);
    assert.equal(link.ws.readyState, WebSocket.OPEN);
    link.ws.close();
  });

  it('refuses an unknown edge with EDGE_AUTH_FAILED and closes; counts it as a failed authentication', async () => {
    const link = await agentLink(h);
    send(link.ws, { type: 'edge.auth', id: 1, body: { edge: 'ab'.repeat(16), signature: Buffer.alloc(64).toString('base64'), agentVersion: '1', hostname: 'h', capabilities: [] } });
    const closed = await link.closed;
    assert.equal((link.messages.find((m) => m['re'] === 1)?.['body'] as { code: string }).code, 'EDGE_AUTH_FAILED');
    assert.equal(closed.code, 4401);
    assert.match(closed.reason, /^EDGE_AUTH_FAILED/);
  });

  it('closes a link that never authenticates after the time limit, and counts it as a failure', async () => {
    const link = await agentLink(h);
    const closed = await link.closed;
    assert.equal(closed.code, 4408);
    assert.match(closed.reason, /^TIMEOUT: no authentication within the time limit/);
    // Failures are audited in aggregate, once the source's window (1 s here) ends.
    const audited = async (): Promise<boolean> => {
      const { records } = await h.admin.request<{ records: AuditView[] }>('GET', '/v1/audit?action=auth.failure&order=desc&limit=20');
      return records.some((r) => JSON.stringify(r.details).includes('no edge authentication within the time limit'));
    };
    for (let i = 0; i < 100 && !(await audited()); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(await audited(), 'audited as a failed authentication');
  });

  it('still serves: a real agent and stream work afterwards', async () => {
    const { echoServer } = await import('./stream-harness.js');
    const echo = await echoServer();
    await h.startAgent(await h.enroll('after-dev', `127.0.0.1:${echo.port}`));
    const { connect } = await import('node:net');
    const { port } = await h.tunnel(h.admin, 'after-dev');
    const back = await new Promise<string>((resolve, reject) => {
      const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      let got = '';
      s.on('data', (c: Buffer) => (got += c.toString()));
      s.on('end', () => {
        s.end();
        resolve(got);
      });
      s.on('error', reject);
      s.on('connect', () => s.end('still serving'));
    });
    assert.equal(back, 'still serving');
    await echo.close();
  });
});
