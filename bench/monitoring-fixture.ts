/**
 * A quiet edge for the monitoring benchmark: every collector source pointed at files in a
 * temp directory (a /proc with fixed socket tables, account files, an sshd config, a ruleset
 * printed by `cat`, an auth log), so that "nothing changing" really is nothing changing on a
 * shared machine, and the bench changes the edge by writing those files.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface EdgeFixture {
  dir: string;
  authLog: string;
  /** Rewrites the TCP listeners: the base ones plus `extra` ports on 0.0.0.0. */
  setExtraPorts(extra: number[]): void;
  /** The `monitoring:` section of the agent config. */
  monitoring: Record<string, unknown>;
}

const HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
const BASE_PORTS: [string, number][] = [
  ['00000000', 22],
  ['0100007F', 5432],
  ['0100007F', 6379],
  ['00000000', 443],
  ['0100007F', 631],
];

function tcpTable(ports: [string, number][]): string {
  return [HEADER, ...ports.map(([addr, port], i) => `   ${i}: ${addr}:${port.toString(16).toUpperCase().padStart(4, '0')} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 ${100000 + port} 1 0000000000000000 100 0 0 10 0`)].join('\n') + '\n';
}

export function makeEdgeFixture(dir: string, overrides: Record<string, unknown> = {}): EdgeFixture {
  const proc = join(dir, 'proc');
  mkdirSync(join(proc, 'net'), { recursive: true });
  writeFileSync(join(proc, 'net', 'tcp6'), `${HEADER}\n   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 200022 1 0 100 0 0 10 0\n`);
  writeFileSync(join(proc, 'net', 'udp'), `${HEADER}\n  10: 00000000:007B 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 300123 2 0000000000000000 0\n`);
  writeFileSync(join(proc, 'net', 'udp6'), `${HEADER}\n`);
  writeFileSync(join(proc, 'stat'), 'cpu 1 2 3 4\nbtime 1767225600\n');
  const setExtraPorts = (extra: number[]): void => writeFileSync(join(proc, 'net', 'tcp'), tcpTable([...BASE_PORTS, ...extra.map((p): [string, number] => ['00000000', p])]));
  setExtraPorts([]);

  const users = ['root:x:0:0:root:/root:/bin/bash', 'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin', 'bin:x:2:2:bin:/bin:/usr/sbin/nologin', 'sys:x:3:3:sys:/dev:/usr/sbin/nologin'];
  for (let i = 0; i < 20; i++) users.push(`svc${i}:x:${100 + i}:${100 + i}::/nonexistent:/usr/sbin/nologin`);
  users.push('pi:x:1000:1000:,,,:/home/pi:/bin/bash', 'ops:x:1001:1001:,,,:/home/ops:/bin/bash');
  writeFileSync(join(dir, 'passwd'), users.join('\n') + '\n');
  writeFileSync(join(dir, 'group'), 'root:x:0:\nsudo:x:27:pi,ops\nadm:x:4:pi\n');
  writeFileSync(join(dir, 'sshd_config'), 'Port 22\nPermitRootLogin prohibit-password\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM yes\n');
  writeFileSync(
    join(dir, 'ruleset.json'),
    JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
        { table: { family: 'inet', name: 'filter', handle: 1 } },
        { chain: { family: 'inet', table: 'filter', name: 'input', handle: 1, type: 'filter', hook: 'input', prio: 0, policy: 'drop' } },
        { rule: { family: 'inet', table: 'filter', chain: 'input', handle: 4, expr: [{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 22 } }, { accept: null }] } },
      ],
    }),
  );
  const authLog = join(dir, 'auth.log');
  writeFileSync(authLog, '');
  return {
    dir,
    authLog,
    setExtraPorts,
    monitoring: {
      authLog,
      sshdConfig: join(dir, 'sshd_config'),
      ports: { procRoot: proc },
      users: { passwd: join(dir, 'passwd'), group: join(dir, 'group') },
      sshd: { command: null },
      firewall: { command: ['cat', join(dir, 'ruleset.json')] },
      ...overrides,
    },
  };
}

/** The lines sshd writes for one failed attempt: an unknown user, or a wrong password for root. */
export function attemptLines(source: string, port: number, user: string | undefined, at: Date): string[] {
  const stamp = at.toISOString().replace('Z', '+00:00');
  const prefix = `${stamp} edge-1 sshd[${2000 + (port % 5000)}]:`;
  if (user) {
    return [
      `${prefix} Invalid user ${user} from ${source} port ${port}`,
      `${prefix} Failed password for invalid user ${user} from ${source} port ${port} ssh2`,
      `${prefix} Connection closed by invalid user ${user} ${source} port ${port} [preauth]`,
    ];
  }
  return [`${prefix} Failed password for root from ${source} port ${port} ssh2`, `${prefix} Connection closed by authenticating user root ${source} port ${port} [preauth]`];
}
