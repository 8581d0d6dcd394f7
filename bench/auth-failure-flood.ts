/**
 * Audit growth under a flood of failed authentications from rotating source addresses
 * (real loopback addresses 127.x.y.z, each a TLS connection with a bad token): how many
 * audit records the hub writes per failure, and that every failure is still counted.
 * Before aggregation it was one record per failure.
 *
 *   node dist/bench/auth-failure-flood.js [--failures N]
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { parseArgs } from 'node:util';
import { startHub } from '../src/hub/hub.js';
import { silentLogger } from '../src/util/logger.js';

const { values } = parseArgs({ options: { failures: { type: 'string', default: '3000' } } });
const failures = Number(values.failures);
const dataDir = mkdtempSync(join(tmpdir(), 'db-bench-flood-'));
const hub = await startHub({ dataDir, host: '127.0.0.1', port: 0, logger: silentLogger() });

const attempt = (i: number): Promise<void> =>
  new Promise((resolve) => {
    // A source address of its own per attempt (net.connect's localAddress, passed through by tls).
    const options = { host: '127.0.0.1', port: hub.port, ca: hub.caPem, localAddress: `127.${10 + (i >> 16)}.${(i >> 8) & 255}.${(i & 255) || 1}` };
    const socket = connect(options, () => {
      socket.end(`GET /v1/whoami HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer dbp_0123456789abcdef_${'x'.repeat(43)}\r\nconnection: close\r\n\r\n`);
    });
    socket.on('data', () => undefined);
    socket.on('close', () => resolve());
    socket.on('error', () => resolve());
  });

const started = Date.now();
for (let i = 0; i < failures; i += 50) await Promise.all(Array.from({ length: Math.min(50, failures - i) }, (_, j) => attempt(i + j + 1)));
const seconds = (Date.now() - started) / 1000;
await hub.close(); // writes the open aggregation windows
const db = new Database(join(dataDir, 'drawbridge.db'), { readonly: true });
const rows = db.prepare("SELECT details FROM audit WHERE action = 'auth.failure'").all() as { details: string }[];
db.close();
rmSync(dataDir, { recursive: true, force: true });
const counted = rows.reduce((sum, r) => sum + Number((JSON.parse(r.details) as { count?: number }).count ?? 1), 0);
process.stdout.write(
  JSON.stringify({ failures, sources: failures, seconds, failuresPerSecond: Math.round(failures / seconds), auditRecords: rows.length, recordsPerFailure: Number((rows.length / failures).toFixed(4)), failuresCounted: counted }) + '\n',
);
