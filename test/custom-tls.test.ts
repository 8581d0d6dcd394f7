/**
 * A hub on an operator-supplied certificate (--tls-cert/--tls-key) from a private PKI with
 * an intermediate: the printed pin is that of the last certificate in the chain file (the
 * root), enrollment tokens carry it, and agents and clients that pin it work end to end;
 * a wrong pin is refused.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addDeviceWithAgent, cleanup, runCli, startEchoServer, startHubProcess, tempDir, type HubProcess } from './helpers.js';

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** root -> intermediate -> leaf (P-256), leaf valid for localhost and 127.0.0.1 */
function makePki(dir: string): { chain: string; key: string; rootPin: string } {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'root.key', '-out', 'root.pem', '-days', '2', '-subj', '/CN=Test Root', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', ...ec, '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/CN=Test Intermediate'], dir);
  writeFileSync(join(dir, 'int.ext'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
  openssl(['x509', '-req', '-in', 'int.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-CAcreateserial', '-out', 'int.pem', '-days', '2', '-extfile', 'int.ext'], dir);
  openssl(['req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost'], dir);
  writeFileSync(join(dir, 'leaf.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'int.pem', '-CAkey', 'int.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'leaf.ext'], dir);
  const chain = join(dir, 'chain.pem');
  writeFileSync(chain, ['leaf.pem', 'int.pem', 'root.pem'].map((f) => readFileSync(join(dir, f), 'utf8')).join(''));
  const rootPin = 'sha256:' + createHash('sha256').update(new X509Certificate(readFileSync(join(dir, 'root.pem'))).raw).digest('hex');
  return { chain, key: join(dir, 'leaf.key'), rootPin };
}

describe('hub with an operator-supplied certificate chain', () => {
  let hub: HubProcess;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let pki: ReturnType<typeof makePki>;

  before(async () => {
    pki = makePki(tempDir('db-pki-'));
    hub = await startHubProcess({ extraArgs: ['--tls-cert', pki.chain, '--tls-key', pki.key] });
    echo = await startEchoServer();
  });

  after(async () => {
    await cleanup();
    await echo?.close();
  });

  it('prints the pin of the chain root, and agents and clients pinning it work end to end', async () => {
    assert.equal(hub.caPin, pki.rootPin);
    await addDeviceWithAgent(hub, 'custom-tls', `127.0.0.1:${echo.port}`);
    const through = await runCli(['proxy', 'custom-tls'], { env: hub.env, input: 'over a private PKI' });
    assert.equal(through.code, 0, through.stderr);
    assert.equal(through.stdout, 'over a private PKI');
  });

  it('refuses a client whose pin is not in the chain', async () => {
    const wrong = 'sha256:' + 'ab'.repeat(32);
    const refused = await runCli(['devices', 'list'], { env: { ...hub.env, DRAWBRIDGE_CA_PIN: wrong, DRAWBRIDGE_CONFIG_DIR: tempDir() } });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /\[TLS_PIN_MISMATCH\]\n$/);
  });
});
