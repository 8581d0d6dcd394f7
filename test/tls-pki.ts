/**
 * Real certificates for tests, made with openssl: a root CA (standing in for a corporate
 * root or a public CA) and leaf certificates for chosen names, all P-256.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCa {
  dir: string;
  name: string;
  certFile: string;
  keyFile: string;
  pem: string;
}

export interface TestLeaf {
  /** leaf + CA, as a hub's --tls-cert file */
  chainFile: string;
  keyFile: string;
  pem: string;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

export function makeCa(dir: string, name: string): TestCa {
  openssl(['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return { dir, name, certFile: join(dir, `${name}.pem`), keyFile: join(dir, `${name}.key`), pem: readFileSync(join(dir, `${name}.pem`), 'utf8') };
}

/** A server certificate signed by `ca` for `altNames` (e.g. ['DNS:localhost', 'IP:127.0.0.1']). */
export function issueLeaf(ca: TestCa, name: string, altNames: string[], options: { keyFile?: string } = {}): TestLeaf {
  const { dir } = ca;
  const keyFile = options.keyFile ?? join(dir, `${name}.key`);
  const keyArgs = options.keyFile ? ['-key', keyFile] : [...EC, '-keyout', keyFile];
  openssl(['req', '-new', ...keyArgs, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  writeFileSync(join(dir, `${name}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${altNames.join(',')}\n`);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], dir);
  const pem = readFileSync(join(dir, `${name}.pem`), 'utf8');
  const chainFile = join(dir, `${name}-chain.pem`);
  writeFileSync(chainFile, pem + ca.pem);
  return { chainFile, keyFile, pem };
}

/** An intermediate CA signed by `root`; leaves it issues carry the chain leaf, intermediate, root. */
export function makeIntermediate(root: TestCa, name: string): TestCa {
  const { dir } = root;
  openssl(['req', '-new', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  writeFileSync(join(dir, `${name}.ext`), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', root.certFile, '-CAkey', root.keyFile, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], dir);
  return { dir, name, certFile: join(dir, `${name}.pem`), keyFile: join(dir, `${name}.key`), pem: readFileSync(join(dir, `${name}.pem`), 'utf8') + root.pem };
}
