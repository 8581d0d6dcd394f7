/**
 * startHub: wires the store, PKI, registry, relay, access control and API onto one
 * HTTPS + WSS port, and returns a handle whose close() shuts down in stages.
 */
import { mkdirSync, existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { networkInterfaces } from 'node:os';
import { join, resolve } from 'node:path';
import { DrawbridgeError } from '../errors.js';
import { createApiToken, hashSecret } from '../protocol/tokens.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import type { Store } from '../store/store.js';
import { checkUpgradeRequest, completeUpgrade, refuseUpgrade } from '../transport/upgrade.js';
import { systemClock, type Clock } from '../util/clock.js';
import { writeFileAtomic } from '../util/files.js';
import { createLogger, type Logger } from '../util/logger.js';
import { VERSION } from '../version.js';
import { AuditAnchor } from '../audit/anchor.js';
import { AccessService } from './access.js';
import { AuditAggregator } from './audit-aggregator.js';
import { LocalDeviceBus } from './bus.js';
import { handleApi } from './api.js';
import { CertificateRenewal } from './certificate-renewal.js';
import { lockDataDir, type DataDirLock } from './data-dir-lock.js';
import { ensureHubPki, loadUserTls, serverContextOptions } from './certificates.js';
import { defaultHubConfig, loadHubConfigFile, type HubConfig } from './config.js';
import { TrustedProxies, trustProxiesOn } from './client-address.js';
import { ClientLinks } from './client-links.js';
import { ConnectionGuard } from './connection-guard.js';
import { EdgeRegistry } from './edge-registry.js';
import { tightenDataDir, warnIfConfigReadable } from './file-modes.js';
import { bearerToken, clientAddress, sendError, sendJson } from './http.js';
import { HubMetrics } from './metrics.js';
import { buildOpenApi } from './openapi.js';
import { ANONYMOUS, PrincipalAuth, requireRole } from './principals.js';
import { AuthFailureLimiter } from './rate-limiter.js';
import { Relay } from './relay.js';
import type { HubServices } from './services.js';
import { MonitorMetrics } from '../monitor/metrics.js';
import { MonitorService } from '../monitor/monitor-service.js';
import { SqliteMonitorRepository } from '../store/sqlite/monitor-repository.js';
import { WebhookSender } from './webhook.js';
import { openVault } from '../vault/open-vault.js';
import { SecretDelivery } from '../vault/delivery.js';

export interface HubOptions {
  dataDir: string;
  /** default 0.0.0.0 */
  host?: string;
  /** default 8443; 0 picks a free port */
  port?: number;
  /** The URL agents and clients are told to dial; derived from the listen address if absent. */
  publicUrl?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** Parsed config; if absent, DATA_DIR/hub.yaml is loaded when present, else defaults. */
  config?: HubConfig;
  configFile?: string;
  logger?: Logger;
  /** Time and timers (a ManualClock in tests); defaults to the system clock. */
  clock?: Clock;
  /** Milliseconds to let streams drain at shutdown before they are cut. */
  shutdownGraceMs?: number;
}

export interface HubHandle {
  /** The URL the hub listens on (https://host:port) */
  url: string;
  publicUrl: string;
  port: number;
  caPin: string;
  caPem: string;
  dataDir: string;
  /** Set only on the first start, when the bootstrap admin token was created. */
  bootstrapAdminToken?: string;
  adminTokenFile: string;
  tlsCreated: boolean;
  services: HubServices;
  close(): Promise<void>;
}

function defaultPublicHost(host: string): string {
  if (host !== '0.0.0.0' && host !== '::') return host.includes(':') ? `[${host}]` : host;
  // A wildcard bind: advertise the first external IPv4 address, so agents on the LAN can dial it.
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

export async function startHub(options: HubOptions): Promise<HubHandle> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const logger = options.logger ?? createLogger('hub');
  tightenDataDir(dataDir, logger);
  // One hub per data directory: a second one is refused here, before it touches anything.
  const lock = lockDataDir(dataDir, `${options.host ?? '0.0.0.0'}:${options.port ?? 8443}`);
  try {
    return await startLockedHub(options, dataDir, logger, lock);
  } catch (error) {
    lock.release();
    throw error;
  }
}

async function startLockedHub(options: HubOptions, dataDir: string, logger: Logger, lock: DataDirLock): Promise<HubHandle> {
  const clock = options.clock ?? systemClock;
  const now = (): number => clock.now();
  const hubYaml = options.configFile ?? join(dataDir, 'hub.yaml');
  const fromFile = !options.config && (Boolean(options.configFile) || existsSync(hubYaml));
  const config = options.config ?? (fromFile ? loadHubConfigFile(hubYaml) : defaultHubConfig());
  if (fromFile) warnIfConfigReadable(hubYaml, config, logger);
  const host = options.host ?? '0.0.0.0';
  const requestedPort = options.port ?? 8443;

  const publicHosts = options.publicUrl ? [new URL(options.publicUrl).hostname] : [defaultPublicHost(host)];
  let tlsCreated = false;
  const tls = options.tlsCertFile && options.tlsKeyFile
    ? loadUserTls(options.tlsCertFile, options.tlsKeyFile)
    : await ensureHubPki(dataDir, publicHosts).then((t) => {
        tlsCreated = t.created;
        return t;
      });
  // The hub's own certificate is renewed before it expires (or names the wrong host), at
  // start and daily; an operator's --tls-cert is the operator's to renew.
  const renewal = options.tlsCertFile && options.tlsKeyFile ? undefined : new CertificateRenewal({ dataDir, hosts: publicHosts, clock, logger }, tls);
  await renewal?.check();

  // The pin agents and clients get (enrollment tokens, start-up output): the CA, or with a
  // certificate from a public CA the server's own public key.
  if (config.server.advertisedPin === 'spki' && renewal) {
    throw new DrawbridgeError('CONFIG_INVALID', "server.advertisedPin: spki needs --tls-cert and --tls-key; the hub's own certificate is pinned by its CA");
  }
  const pin = config.server.advertisedPin === 'spki' ? tls.keyPin : tls.caPin;

  const sqlite = new SqliteStore({ path: join(dataDir, 'drawbridge.db'), now });
  const store: Store = sqlite;
  const orphaned = await store.closeOrphanedSessions(now(), 'hub restarted');
  if (orphaned > 0) logger.warn({ orphaned }, 'closed sessions left open by a previous run');

  // Bootstrap: the first admin and its token, printed once and kept at mode 0600.
  const adminTokenFile = join(dataDir, 'admin.token');
  let bootstrapAdminToken: string | undefined;
  if ((await store.listPrincipals()).length === 0) {
    const token = createApiToken();
    const t = now();
    await store.createPrincipal(
      { name: 'admin', role: 'admin', createdAt: t, tokenId: token.id, tokenHash: hashSecret(token.secret), tokenCreatedAt: t },
      { actor: 'hub', action: 'user.add', details: { user: 'admin', role: 'admin', bootstrap: true } },
    );
    writeFileAtomic(adminTokenFile, token.token + '\n', 0o600);
    bootstrapAdminToken = token.token;
  }

  const vault = await openVault({ dataDir, store, settings: config.vault, now, logger });

  const metrics = new HubMetrics();
  const limiter = new AuthFailureLimiter(config.limits.authFailuresPerMinute, now);
  const failureAudit = new AuditAggregator({
    windowMs: config.limits.authFailureAuditWindow,
    maxKeys: config.limits.authFailureAuditSources,
    clock,
    write: (entry) => store.appendAudit(entry),
    onError: (error) => logger.error({ err: error }, 'could not audit failed authentications'),
  });
  const auth = new PrincipalAuth(store, limiter, metrics, logger, failureAudit);
  const relay = new Relay(store, config, metrics, logger, clock);
  const webhook = new WebhookSender(config.webhook, logger);
  const access = new AccessService(store, config, relay, webhook, logger, now);
  const registry = new EdgeRegistry(store, config, pin, relay, metrics, logger, {
    onAuthFailure: (source, kind, subject, reason, error) => auth.refusal(source, kind, reason, error, kind === 'device' ? subject : undefined),
  }, clock, VERSION);
  // Secret delivery rides on edge links: registered before any agent can connect.
  const delivery = new SecretDelivery(vault, store, clock, logger);
  registry.use(delivery);
  const bus = new LocalDeviceBus(registry);
  const anchor = new AuditAnchor(dataDir, store, tls.caPin, clock, logger, (checkpoint) => webhook.fire('audit.checkpoint', { ...checkpoint }));
  metrics.auditHeadBehind.set((await anchor.checkHead()).ok ? 0 : 1);
  // The head file follows the newest record every minute; checkpoints as configured.
  anchor.start(60_000, config.audit.checkpointInterval);
  // Edge security monitoring rides on edge links under the `telemetry` capability.
  const monitor = new MonitorService({
    store,
    monitorStore: new SqliteMonitorRepository(sqlite),
    config: config.monitoring,
    metrics: new MonitorMetrics(metrics.registry),
    webhook,
    logger,
    clock,
  });
  if (config.monitoring.enabled) {
    registry.use(monitor);
    monitor.start();
  }
  const clientLinks = new ClientLinks(store, config, registry, bus, relay, access, metrics, logger, clock, VERSION, failureAudit);

  const services: HubServices = {
    store, config, logger, metrics, registry, clientLinks, bus, relay, access, auth, anchor, vault, secretDelivery: delivery, monitor,
    publicUrl: options.publicUrl ?? '',
    caPin: pin,
    caPem: tls.caPem,
    version: VERSION,
    now,
    clock,
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'https://hub.invalid');
    const run = async (): Promise<void> => {
      if (req.method === 'GET' && url.pathname === '/healthz') {
        // Anyone may learn that the hub is up; its version and counts are operational
        // intelligence, for admin and auditor tokens only.
        const caller = bearerToken(req) ? await auth.authenticate(req) : ANONYMOUS;
        if (caller.role !== 'admin' && caller.role !== 'auditor') {
          sendJson(res, 200, { status: 'ok' });
          return;
        }
        sendJson(res, 200, { status: 'ok', version: VERSION, edgesOnline: registry.edgeCount, devicesOnline: registry.size, activeStreams: relay.size, auditHeadOk: anchor.status.ok });
        return;
      }
      if (req.method === 'GET' && url.pathname === '/metrics') {
        // Device and stream counts are operational intelligence: not for anonymous callers by default.
        if (!config.metrics.public) requireRole(await auth.authenticate(req), ['admin', 'auditor'], 'reading /metrics');
        const text = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
        return;
      }
      if (req.method === 'GET' && url.pathname === '/v1/openapi.json') {
        sendJson(res, 200, buildOpenApi(VERSION, services.publicUrl));
        return;
      }
      if (req.method === 'GET' && url.pathname === '/v1/ca.pem') {
        res.writeHead(200, { 'content-type': 'application/x-pem-file' });
        res.end(tls.caPem);
        return;
      }
      if (!(await handleApi(services, req, res, url))) {
        throw new DrawbridgeError('NOT_FOUND', `no such endpoint: ${req.method} ${url.pathname}`);
      }
    };
    run().catch((error: unknown) => {
      if (error instanceof DrawbridgeError) {
        const retry = (error.details as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds;
        sendError(res, error, retry ? { 'retry-after': String(retry) } : {});
        return;
      }
      logger.error({ err: error, method: req.method, path: url.pathname }, 'request failed');
      // A store that cannot be written (busy, full disk, read-only) means the action and its
      // audit record did not land: say so, rather than a bare internal error.
      const code = String((error as { code?: unknown }).code ?? '');
      sendError(res, code.startsWith('SQLITE_') ? new DrawbridgeError('AUDIT_UNAVAILABLE', `the store could not be written (${code}); the action was refused`) : new DrawbridgeError('INTERNAL'));
    });
  };

  const server: Server = createServer(
    {
      ...serverContextOptions(renewal?.tls ?? tls),
      // A TLS handshake that stalls is cut, so idle sockets cannot pile up.
      handshakeTimeout: 10_000,
      headersTimeout: config.server.headersTimeout,
      requestTimeout: config.server.requestTimeout,
      // Node checks those two bounds only this often (30 s by default): check every second.
      connectionsCheckingInterval: 1000,
      keepAliveTimeout: 65_000,
    },
    onRequest,
  );
  renewal?.start((renewed) => server.setSecureContext(serverContextOptions(renewed)));
  server.on('tlsClientError', () => undefined);
  // Upgraded sockets leave the HTTP server's books: track every socket for the final cut.
  const openSockets = new Set<Duplex>();
  const trustedProxies = new TrustedProxies(config.server.trustedProxies);
  new ConnectionGuard({
    maxConnections: config.server.maxConnections,
    maxConnectionsPerAddress: config.server.maxConnectionsPerAddress,
    firstRequestTimeoutMs: config.server.firstRequestTimeout,
    trustedProxies,
    clock,
    metrics,
    onFirstRequestTimeout: (source) => auth.recordFailure(source, 'connection', 'no request after the TLS handshake'),
  }).attach(server);
  server.on('secureConnection', (socket: Duplex) => {
    trustProxiesOn(socket, trustedProxies);
    openSockets.add(socket);
    socket.once('close', () => openSockets.delete(socket));
  });

  // Links: one WebSocket per agent (/v1/link/agent) and per client (/v1/link/client).
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    const source = clientAddress(req);
    const url = new URL(req.url ?? '/', 'https://hub.invalid');
    const refuse = (error: DrawbridgeError): void => {
      const retry = (error.details as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds;
      refuseUpgrade(socket, error, retry ? { 'retry-after': String(retry) } : {});
    };
    const invalid = checkUpgradeRequest(req);
    if (url.pathname !== '/v1/link/agent' && url.pathname !== '/v1/link/client') {
      refuse(new DrawbridgeError('NOT_FOUND', `no WebSocket endpoint at ${url.pathname}`));
      return;
    }
    if (invalid) {
      refuse(invalid);
      return;
    }
    if (url.pathname === '/v1/link/agent') {
      // No failure-budget check here: an agent proves itself after the upgrade, and a valid
      // edge is never refused because others failed from its address (a site's NAT); edge
      // and device failures are counted there and answered 429 once over the budget.
      if (!registry.canAcceptHandshake()) {
        refuse(new DrawbridgeError('TOO_MANY_PENDING', 'too many agents are authenticating; retry shortly'));
        return;
      }
      completeUpgrade(req, socket);
      registry.accept(socket as Socket, head, req, source);
      return;
    }
    auth.authenticate(req).then(
      (principal) => {
        if (socket.destroyed) return;
        completeUpgrade(req, socket);
        clientLinks.accept(socket as Socket, head, principal, source);
      },
      (error: unknown) => refuse(error instanceof DrawbridgeError ? error : new DrawbridgeError('INTERNAL')),
    );
  });

  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(requestedPort, host, () => {
      server.off('error', reject);
      resolvePromise();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : requestedPort;
  const listenHost = host.includes(':') ? `[${host}]` : host;
  services.publicUrl = (options.publicUrl ?? `https://${defaultPublicHost(host)}:${port}`).replace(/\/+$/, '');

  // Requests expire unreviewed (grants end on time in the relay's own sweep).
  let sweeping = false;
  // Every timer goes through the clock, so tests drive expiry and sweeps with a ManualClock.
  const accessTimer = clock.setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    access.sweep().catch((error: unknown) => logger.error({ err: error }, 'access sweep failed')).finally(() => {
      sweeping = false;
    });
  }, 500);
  const limiterTimer = clock.setInterval(() => limiter.sweep(), 60_000);
  const maintainTimer = clock.setInterval(() => void store.maintain().catch((error: unknown) => logger.warn({ err: error }, 'store upkeep failed')), 3_600_000);
  for (const t of [accessTimer, limiterTimer, maintainTimer]) t.unref();

  logger.info({ url: `https://${listenHost}:${port}`, publicUrl: services.publicUrl, caPin: pin, dataDir }, 'hub listening');
  lock.announce(`https://${listenHost}:${port}`);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      for (const t of [accessTimer, limiterTimer, maintainTimer]) clock.clearInterval(t);
      relay.stop();
      delivery.stop();
      monitor.stop();
      renewal?.stop();
      // Stage 1: stop accepting. Stage 2: end streams and links. Stage 3: cut what is left.
      const serverClosed = new Promise<void>((r) => server.close(() => r()));
      const shuttingDown = new DrawbridgeError('HUB_SHUTTING_DOWN');
      relay.closeAll(shuttingDown);
      registry.closeAll(shuttingDown);
      clientLinks.closeAll(shuttingDown);
      await new Promise((r) => setTimeout(r, Math.min(options.shutdownGraceMs ?? 200, 5000)));
      server.closeAllConnections();
      for (const socket of openSockets) socket.destroy();
      await serverClosed;
      await anchor.stop().catch((error: unknown) => logger.warn({ err: error }, 'could not record the audit head at shutdown'));
      await monitor.idle();
      await failureAudit.close();
      await webhook.flush().catch(() => undefined);
      await services.bus.close();
      await store.close();
      lock.release();
    })();
    return closing;
  };

  return {
    url: `https://${listenHost === '0.0.0.0' || listenHost === '[::]' ? '127.0.0.1' : listenHost}:${port}`,
    publicUrl: services.publicUrl,
    port,
    caPin: pin,
    caPem: tls.caPem,
    dataDir,
    ...(bootstrapAdminToken ? { bootstrapAdminToken } : {}),
    adminTokenFile,
    tlsCreated,
    services,
    close,
  };
}

/** Reads the bootstrap admin token kept in the data directory. */
export function readAdminToken(dataDir: string): string {
  return readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
}
