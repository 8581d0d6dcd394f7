/** A small HTTP "diagnostics portal", standing in for a device's web UI in the demo. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';

export const DIAGNOSTICS_MARKER = 'Drawbridge demo: PLC-7 diagnostics portal';

export async function startDiagnosticsServer(): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const started = Date.now();
  const server = createServer((req, res) => {
    if (req.url === '/status.json') {
      const body = JSON.stringify({ device: 'plc-7', uptimeSeconds: Math.round((Date.now() - started) / 1000), temperatureC: 41.5, state: 'RUN' });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const body = `<!doctype html><html><head><title>PLC-7 diagnostics</title></head><body><h1>${DIAGNOSTICS_MARKER}</h1><p>host ${hostname()}, state RUN, served at ${new Date().toISOString()}</p><p><a href="/status.json">status.json</a></p></body></html>\n`;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
