/**
 * The local API for apps on the edge: HTTP + JSON on a Unix domain socket (the agent still
 * opens no TCP port), mode 0600 (or 0660 for a group of app users).
 *
 *   GET /v1/secrets            the secrets this token may read that the edge holds
 *   GET /v1/secrets/NAME       {"name","version","value"}   (NAME may contain "/")
 *
 * Every request carries `Authorization: Bearer TOKEN`, a per-app token that names the
 * secrets its app may read. A missing, wrong or removed token gets 401; a secret the token
 * does not name, 403; one the edge does not hold, 404. Reads are counted per app and
 * version and reported to the hub in batches. Values come from the encrypted cache, so
 * apps keep reading while the hub is away.
 */
import { connect } from 'node:net';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import { DrawbridgeError } from '../../errors.js';
import { writeFileAtomic } from '../../util/files.js';
import type { Logger } from '../../util/logger.js';
import { valueJson } from '../../util/value-json.js';
import { assertSecretName } from '../../vault/names.js';
import { AppTokenStore, LOCAL_ADMIN_APP, type AppEntry } from './app-tokens.js';
import type { EdgeSecrets } from './edge-secrets.js';

/** Concurrent connections to the socket: apps on one host, not a crowd. */
const MAX_CONNECTIONS = 256;
/** Refused requests logged per minute; beyond, only counted (a misconfigured app must not flood the log). */
const REFUSALS_LOGGED_PER_MINUTE = 10;

export interface LocalApiOptions {
  socketPath: string;
  mode: number;
  tokens: AppTokenStore;
  secrets: EdgeSecrets;
  /** The token of the agent's own CLI (every secret), written here at mode 0600. */
  adminTokenFile: string;
  logger: Logger;
}

export interface LocalApiHandle {
  socketPath: string;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(payload), 'cache-control': 'no-store' });
  res.end(payload);
}

function sendError(res: ServerResponse, error: DrawbridgeError): void {
  send(res, error.status, { error: { code: error.code, message: error.message } });
}

/** Refuses to start over a live socket (another agent) or over something that is not a socket. */
async function clearStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new DrawbridgeError('CONFIG_INVALID', `${path} exists and is not a socket; refusing to replace it (localApi.socket)`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => (probe.destroy(), resolve(true)));
    probe.once('error', () => resolve(false));
  });
  if (live) throw new DrawbridgeError('CONFIG_INVALID', `${path} is in use: is another agent running with this config?`);
  unlinkSync(path);
}

export async function startLocalApi(options: LocalApiOptions): Promise<LocalApiHandle> {
  const { tokens, secrets, logger } = options;
  ensureAdminToken(tokens, options.adminTokenFile);
  let refusals = 0;
  let refusalWindow = 0;
  const refuse = (res: ServerResponse, error: DrawbridgeError, app?: string): void => {
    const minute = Math.floor(Date.now() / 60_000);
    if (minute !== refusalWindow) {
      refusalWindow = minute;
      refusals = 0;
    }
    if (++refusals <= REFUSALS_LOGGED_PER_MINUTE) logger.warn({ app, errorCode: error.code, err: error.message }, 'local API request refused');
    sendError(res, error);
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const header = req.headers.authorization;
    const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    const entry = token ? tokens.authenticate(token) : undefined;
    if (!entry) return refuse(res, new DrawbridgeError('UNAUTHENTICATED', 'missing, wrong or revoked app token (Authorization: Bearer TOKEN)'));
    const url = new URL(req.url ?? '/', 'http://agent.invalid');
    if (url.pathname !== '/v1/secrets' && !url.pathname.startsWith('/v1/secrets/')) return refuse(res, new DrawbridgeError('NOT_FOUND', `no such endpoint: ${url.pathname.slice(0, 100)}`), entry.app);
    if (req.method !== 'GET') return refuse(res, new DrawbridgeError('METHOD_NOT_ALLOWED', 'the local API is read-only: use GET'), entry.app);
    if (url.pathname === '/v1/secrets') {
      send(res, 200, { secrets: secrets.list().filter((s) => mayRead(entry, s.name)).map((s) => ({ name: s.name, version: s.version, receivedAt: new Date(s.receivedAt).toISOString() })) });
      return;
    }
    let name: string;
    try {
      name = assertSecretName(decodeURIComponent(url.pathname.slice('/v1/secrets/'.length)));
    } catch (error) {
      return refuse(res, error instanceof DrawbridgeError ? error : new DrawbridgeError('INVALID_NAME'), entry.app);
    }
    if (!mayRead(entry, name)) return refuse(res, new DrawbridgeError('FORBIDDEN', `the token of app "${entry.app}" does not name secret "${name}"`), entry.app);
    const held = secrets.get(name);
    if (!held) return sendError(res, new DrawbridgeError('UNKNOWN_SECRET', `this edge does not hold secret "${name}"`));
    try {
      secrets.countRead(entry.app, held.name, held.version);
      send(res, 200, valueJson(held.name, held.version, held.value));
    } finally {
      held.value.fill(0);
    }
  };

  const server: Server = createServer({ headersTimeout: 10_000, requestTimeout: 10_000 }, (req, res) => {
    // No request here has a body; one that sends one is not read.
    try {
      handle(req, res);
    } catch (error) {
      logger.error({ err: error }, 'local API request failed');
      if (!res.headersSent) sendError(res, error instanceof DrawbridgeError ? error : new DrawbridgeError('INTERNAL'));
    }
  });
  server.maxConnections = MAX_CONNECTIONS;
  await clearStaleSocket(options.socketPath);
  // The socket is created with no permission for others, then set to its mode.
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(umask);
  }
  chmodSync(options.socketPath, options.mode);
  logger.info({ socket: options.socketPath, mode: options.mode.toString(8) }, 'local API listening');
  return {
    socketPath: options.socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function mayRead(entry: AppEntry, name: string): boolean {
  return entry.secrets.includes('*') || entry.secrets.includes(name);
}

/** The agent CLI's own token: made at the first start, kept at mode 0600 for whoever can read the agent's files. */
function ensureAdminToken(tokens: AppTokenStore, path: string): void {
  if (existsSync(path) && tokens.list().some((e) => e.app === LOCAL_ADMIN_APP)) return;
  tokens.remove(LOCAL_ADMIN_APP);
  const token = tokens.add(LOCAL_ADMIN_APP, ['*'], Date.now());
  writeFileAtomic(path, token + '\n', 0o600);
}
