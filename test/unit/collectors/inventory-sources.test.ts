/** The inventory parsers: /proc/net tables, account files, sshd settings, firewall rulesets, facts. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createTcpServer, type Server } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { bootTime, osName } from '../../../src/agent/collectors/facts.js';
import { FirewallCollector, parseIptablesSave, parseNftJson } from '../../../src/agent/collectors/firewall.js';
import { parseProcNet, PortsCollector, procAddress } from '../../../src/agent/collectors/ports.js';
import { parseSshdDirectives, readSshdConfigFile, SshdCollector, sshdRow } from '../../../src/agent/collectors/sshd-config.js';
import { adminRows, parseGroup, parsePasswd, UsersCollector } from '../../../src/agent/collectors/users.js';

const dir = mkdtempSync(join(tmpdir(), 'db-sources-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('ports', () => {
  it('decodes the kernel\'s little-endian addresses, IPv4 and IPv6', () => {
    assert.equal(procAddress('0100007F'), '127.0.0.1');
    assert.equal(procAddress('00000000'), '0.0.0.0');
    assert.equal(procAddress('00000000000000000000000000000000'), '::');
    assert.equal(procAddress('00000000000000000000000001000000'), '::1');
    assert.equal(procAddress('0000000000000000FFFF00000100007F'), '::ffff:127.0.0.1');
    assert.equal(procAddress('B80D0120000000000000000001000000'), '2001:db8::1');
  });

  it('keeps TCP listeners and unconnected UDP sockets, skipping connections and junk lines', () => {
    const tcp = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0',
      '   1: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 1002 1 0000000000000000 100 0 0 10 0',
      '   2: 0100007F:A2C4 0100007F:0016 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 20 4 30 10 -1',
      'garbage line',
    ].join('\n');
    assert.deepEqual(parseProcNet(tcp, 'tcp'), [
      { proto: 'tcp', addr: '0.0.0.0', port: 22, inode: '1001' },
      { proto: 'tcp', addr: '127.0.0.1', port: 5432, inode: '1002' },
    ]);
    const udp = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
      ' 100: 00000000:007B 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2001 2 0000000000000000 0',
      ' 101: 0100007F:D431 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 2002 2 0000000000000000 0',
    ].join('\n');
    assert.deepEqual(parseProcNet(udp, 'udp'), [{ proto: 'udp', addr: '0.0.0.0', port: 123, inode: '2001' }]);
  });

  it('finds a port opened by this process, with its owner, and reports a new UDP socket only once it has lasted two scans', async () => {
    const server: Server = createTcpServer();
    await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
    const tcpPort = (server.address() as { port: number }).port;
    const sockets: ReturnType<typeof createSocket>[] = [];
    let udpPort = 0;
    try {
      const collector = new PortsCollector('/proc');
      await collector.collect();
      const udp = createSocket('udp4');
      await new Promise<void>((resolve) => udp.bind(0, '0.0.0.0', resolve));
      udpPort = udp.address().port;
      sockets.push(udp);
      const first = await collector.collect();
      assert.ok('rows' in first);
      const tcpRow = first.rows.find((r) => r['proto'] === 'tcp' && r['port'] === tcpPort);
      assert.deepEqual(tcpRow, { k: `tcp/0.0.0.0:${tcpPort}`, proto: 'tcp', addr: '0.0.0.0', port: tcpPort, proc: 'node' });
      assert.equal(first.rows.some((r) => r['port'] === udpPort && r['proto'] === 'udp'), false, 'UDP is debounced');
      const second = await collector.collect();
      assert.ok('rows' in second && second.rows.some((r) => r['port'] === udpPort && r['proto'] === 'udp'));
    } finally {
      server.close();
      for (const s of sockets) s.close();
    }
  });

  it('says what it could not read', async () => {
    const result = await new PortsCollector(join(dir, 'no-proc')).collect();
    assert.ok('error' in result && result.error.includes('cannot read'));
  });
});

describe('users', () => {
  const passwd = [
    'root:x:0:0:root:/root:/bin/bash',
    'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
    'alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash',
    'toor:x:0:0::/root:/bin/sh',
    'wheelie:x:1001:10::/home/w:/bin/zsh',
    '# a comment',
    '+::::::',
    'broken:line',
    'bad:x:notanumber:1::/:/bin/sh',
  ].join('\n');
  const group = ['root:x:0:', 'sudo:x:27:alice,bob', 'wheel:x:10:', 'users:x:100:alice'].join('\n');

  it('parses accounts and skips junk, and finds uid-0 accounts and privileged group members (listed or by primary group)', () => {
    const users = parsePasswd(passwd);
    assert.deepEqual(users.map((u) => u.name), ['root', 'daemon', 'alice', 'toor', 'wheelie']);
    const admins = adminRows(users, parseGroup(group), ['sudo', 'wheel', 'admin']).map((r) => r.k).sort();
    assert.deepEqual(admins, ['sudo:alice', 'sudo:bob', 'uid0:root', 'uid0:toor', 'wheel:wheelie']);
  });

  it('reads the files it is pointed at, and says when it cannot', async () => {
    writeFileSync(join(dir, 'passwd'), passwd);
    writeFileSync(join(dir, 'group'), group);
    const read = await new UsersCollector(join(dir, 'passwd'), join(dir, 'group'), ['sudo']).read();
    assert.ok('rows' in read.users && read.users.rows.length === 5);
    assert.ok('rows' in read.admins && read.admins.rows.some((r) => r.k === 'sudo:alice'));
    const missing = await new UsersCollector(join(dir, 'nope'), join(dir, 'group'), ['sudo']).read();
    assert.ok('error' in missing.users && missing.users.error.includes('ENOENT'));
  });
});

describe('sshd', () => {
  it('reads sshd -T output', () => {
    const row = sshdRow(parseSshdDirectives('port 2222\nport 22\npermitrootlogin without-password\npasswordauthentication no\npermitemptypasswords no\nkbdinteractiveauthentication no\nlistenaddress 0.0.0.0:2222\n', false), 'sshd -T');
    assert.deepEqual(row, { k: 'sshd', permitRootLogin: 'without-password', passwordAuthentication: 'no', permitEmptyPasswords: 'no', kbdInteractiveAuthentication: 'no', ports: '2222,22', listen: '0.0.0.0:2222', from: 'sshd -T' });
  });

  it('reads a config file as sshd does: first value wins, Include followed, Match left out, defaults filled in', async () => {
    mkdirSync(join(dir, 'sshd_config.d'), { recursive: true });
    writeFileSync(join(dir, 'sshd_config.d', '10-hardening.conf'), 'PasswordAuthentication no\n');
    writeFileSync(join(dir, 'sshd_config'), [`Include ${join(dir, 'sshd_config.d')}/*.conf`, '# comment', 'PasswordAuthentication yes', 'PermitRootLogin=yes', 'Port 2200', 'Match User bob', '  PermitEmptyPasswords yes'].join('\n'));
    const row = sshdRow(await readSshdConfigFile(join(dir, 'sshd_config')), 'file');
    assert.equal(row['passwordAuthentication'], 'no', 'the included file came first');
    assert.equal(row['permitRootLogin'], 'yes');
    assert.equal(row['permitEmptyPasswords'], 'no', 'inside Match: not global');
    assert.equal(row['ports'], '2200');
    const defaults = sshdRow(new Map(), 'file');
    assert.equal(defaults['permitRootLogin'], 'prohibit-password');
    assert.equal(defaults['passwordAuthentication'], 'yes');
  });

  it('falls back to the file when sshd -T cannot run, and says why', async () => {
    const result = await new SshdCollector(join(dir, 'sshd_config'), ['/nonexistent/sshd', '-T']).collect();
    assert.ok('rows' in result);
    assert.equal(result.rows[0]?.['from'], 'file');
    assert.match(result.note ?? '', /could not run: ENOENT/);
    const none = await new SshdCollector(join(dir, 'missing_config'), null).collect();
    assert.ok('error' in none);
  });
});

describe('firewall', () => {
  const nft = (policy: string, rules: unknown[][]) =>
    JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { table: { family: 'inet', name: 'filter', handle: 1 } },
        { chain: { family: 'inet', table: 'filter', name: 'input', handle: 1, type: 'filter', hook: 'input', prio: 0, policy } },
        { chain: { family: 'inet', table: 'filter', name: 'output', handle: 2, type: 'filter', hook: 'output', prio: 0, policy: 'accept' } },
        ...rules.map((expr) => ({ rule: { family: 'inet', table: 'filter', chain: 'input', handle: 3, expr } })),
      ],
    });

  it('summarises an nftables ruleset', () => {
    const strict = parseNftJson(nft('drop', [[{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 22 } }, { accept: null }]]));
    assert.deepEqual(strict, { backend: 'nftables', inputPolicy: 'drop', acceptAll: false, dropRules: 0, inputChains: 1 });
    const open = parseNftJson(nft('drop', [[{ counter: { packets: 0, bytes: 0 } }, { accept: null }]]));
    assert.equal(open.acceptAll, true);
    const rejecting = parseNftJson(nft('accept', [[{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 23 } }, { reject: null }]]));
    assert.deepEqual({ policy: rejecting.inputPolicy, drops: rejecting.dropRules }, { policy: 'accept', drops: 1 });
    assert.equal(parseNftJson('{"nftables":[{"metainfo":{}}]}').inputPolicy, 'none');
    assert.throws(() => parseNftJson('{"x":1}'));
  });

  it('summarises iptables-save output', () => {
    const text = ['*nat', ':INPUT ACCEPT [0:0]', 'COMMIT', '*filter', ':INPUT DROP [0:0]', ':FORWARD DROP [0:0]', '-A INPUT -i lo -j ACCEPT', '-A INPUT -p tcp --dport 23 -j REJECT', 'COMMIT'].join('\n');
    assert.deepEqual(parseIptablesSave(text), { backend: 'iptables', inputPolicy: 'drop', acceptAll: false, dropRules: 1, inputChains: 1 });
    assert.equal(parseIptablesSave('*filter\n:INPUT DROP [0:0]\n-A INPUT -m comment --comment "allow all" -j ACCEPT\nCOMMIT').acceptAll, true);
    assert.deepEqual(parseIptablesSave(''), { backend: 'none', inputPolicy: 'none', acceptAll: false, dropRules: 0, inputChains: 0 });
  });

  it('runs a configured command and says when it fails', async () => {
    writeFileSync(join(dir, 'ruleset.json'), nft('drop', []));
    const ok = await new FirewallCollector(['cat', join(dir, 'ruleset.json')]).collect();
    assert.ok('rows' in ok && ok.rows[0]?.['inputPolicy'] === 'drop');
    const failed = await new FirewallCollector(['cat', join(dir, 'missing.json')]).collect();
    assert.ok('error' in failed && failed.error.includes('failed'));
  });
});

describe('facts', () => {
  it('reads the OS name and the boot time to the minute', () => {
    assert.equal(osName('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'), 'Debian GNU/Linux 12 (bookworm)');
    assert.equal(osName('PRETTY_NAME=Alpine\n'), 'Alpine');
    assert.equal(bootTime('cpu 1 2 3\nbtime 1767225659\n'), 1767225600_000);
  });
});
