/** sshd login lines in the formats of Debian/Ubuntu, RHEL, journald and sshd -E; junk gives nothing. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { looksBinary, parseAuthLine, parseSshdMessage } from '../../../src/agent/collectors/auth-log-parser.js';

const NOW = Date.UTC(2026, 2, 3, 10, 0, 30);
const pick = (line: string) => {
  const e = parseAuthLine(line, NOW);
  return e && { kind: e.kind, user: e.user, src: e.src, method: e.method };
};

describe('auth log parser', () => {
  it('reads Debian/Ubuntu auth.log lines (traditional syslog format)', () => {
    assert.deepEqual(pick('Mar  3 10:00:01 web1 sshd[1234]: Failed password for root from 203.0.113.5 port 51234 ssh2'), { kind: 'ssh.failure', user: 'root', src: '203.0.113.5', method: 'password' });
    assert.deepEqual(pick('Mar  3 10:00:02 web1 sshd[1234]: Failed password for invalid user admin from 203.0.113.5 port 51240 ssh2'), { kind: 'ssh.failure', user: 'admin', src: '203.0.113.5', method: 'password' });
    assert.deepEqual(pick('Mar  3 10:00:02 web1 sshd[1234]: Invalid user admin from 203.0.113.5 port 51240'), { kind: 'ssh.invalid-user', user: 'admin', src: '203.0.113.5', method: undefined });
    assert.deepEqual(pick('Mar  3 10:00:03 web1 sshd[1234]: Accepted publickey for deploy from 198.51.100.7 port 40000 ssh2: ED25519 SHA256:9mGk2hS/a+b1cdeFGHij0klMNopqrSTUvwxYZ0123AB'), { kind: 'ssh.success', user: 'deploy', src: '198.51.100.7', method: 'publickey' });
    assert.deepEqual(pick('Mar  3 10:00:04 web1 sshd[1234]: Connection closed by authenticating user root 203.0.113.5 port 51234 [preauth]'), { kind: 'ssh.preauth-close', user: 'root', src: '203.0.113.5', method: undefined });
    assert.deepEqual(pick('Mar  3 10:00:04 web1 sshd[1234]: Connection closed by 203.0.113.5 port 51234 [preauth]'), { kind: 'ssh.preauth-close', user: undefined, src: '203.0.113.5', method: undefined });
    assert.deepEqual(pick('Mar  3 10:00:05 web1 sshd[1234]: error: maximum authentication attempts exceeded for root from 203.0.113.5 port 51234 ssh2 [preauth]'), { kind: 'ssh.too-many', user: 'root', src: '203.0.113.5', method: undefined });
    assert.deepEqual(pick('Mar  3 10:00:05 web1 sshd[1234]: Disconnecting authenticating user root 203.0.113.5 port 51234: Too many authentication failures [preauth]'), { kind: 'ssh.too-many', user: 'root', src: '203.0.113.5', method: undefined });
  });

  it('reads Ubuntu 24.04 lines (ISO 8601 timestamps, sshd-session) and takes a plausible timestamp', () => {
    const line = '2026-03-03T10:00:01.123456+00:00 web1 sshd-session[1234]: Failed password for root from 2001:db8::5 port 2222 ssh2';
    const event = parseAuthLine(line, NOW);
    assert.equal(event?.kind, 'ssh.failure');
    assert.equal(event?.src, '2001:db8::5');
    assert.equal(event?.t, Date.parse('2026-03-03T10:00:01.123Z'));
    assert.equal(event?.line, line);
    // A timestamp far from now (a skewed clock, a replayed file) is not believed.
    assert.equal(parseAuthLine('2019-01-01T00:00:00+00:00 web1 sshd[1]: Invalid user x from 192.0.2.1 port 1', NOW)?.t, NOW);
  });

  it('reads RHEL /var/log/secure lines', () => {
    assert.deepEqual(pick('Mar  3 10:00:01 rhel9 sshd[2345]: Failed password for invalid user test from 192.0.2.44 port 39222 ssh2'), { kind: 'ssh.failure', user: 'test', src: '192.0.2.44', method: 'password' });
    assert.deepEqual(pick('Mar  3 10:00:01 rhel9 sshd[2345]: Accepted password for root from 192.0.2.44 port 39223 ssh2'), { kind: 'ssh.success', user: 'root', src: '192.0.2.44', method: 'password' });
    assert.deepEqual(pick('Mar  3 10:00:01 rhel9 sshd[2345]: Failed keyboard-interactive/pam for root from 192.0.2.44 port 39224 ssh2'), { kind: 'ssh.failure', user: 'root', src: '192.0.2.44', method: 'keyboard-interactive/pam' });
  });

  it('reads bare lines as sshd -E writes them, and journald MESSAGE fields', () => {
    assert.deepEqual(pick('Failed password for root from 127.0.0.1 port 35206 ssh2'), { kind: 'ssh.failure', user: 'root', src: '127.0.0.1', method: 'password' });
    assert.deepEqual(pick('Connection closed by invalid user nosuchuser 127.0.0.1 port 53664 [preauth]'), { kind: 'ssh.preauth-close', user: 'nosuchuser', src: '127.0.0.1', method: undefined });
    assert.equal(parseSshdMessage('Invalid user oracle from 192.0.2.9 port 4242', 5)?.t, 5);
  });

  it('ignores other programs, other sshd lines, PAM duplicates and junk', () => {
    for (const line of [
      'Mar  3 10:00:07 web1 sudo:   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls',
      'Mar  3 10:00:06 web1 sshd[1234]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root',
      'Mar  3 10:00:01 rhel9 sshd[2345]: pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)',
      'Mar  3 10:00:01 web1 sshd[1]: Server listening on 0.0.0.0 port 22.',
      'Mar  3 10:00:01 web1 cron[1]: Failed password for root from 10.0.0.1 port 1 ssh2',
      '',
      '\u0000\u0001\u0002garbage\u0000\u0000\u0000\u0000',
      'x'.repeat(20_000),
    ]) {
      assert.equal(parseAuthLine(line, NOW), undefined, line.slice(0, 60));
    }
    assert.equal(looksBinary('\u0000\u0000\u0000ab'), true);
    assert.equal(looksBinary('Failed password for root from 1.2.3.4 port 5 ssh2'), false);
  });

  it('cannot be made to blame another address through a crafted user name', () => {
    const line = 'Mar  3 10:00:02 web1 sshd[1]: Failed password for invalid user x from 10.0.0.1 port 1 ssh2 from 203.0.113.9 port 4711 ssh2';
    assert.deepEqual(pick(line), { kind: 'ssh.failure', user: 'x from 10.0.0.1 port 1 ssh2', src: '203.0.113.9', method: 'password' });
    assert.equal(pick('Mar  3 10:00:02 web1 sshd[1]: Invalid user a from 10.0.0.1 from 203.0.113.9 port 22')?.src, '203.0.113.9');
  });

  it('keeps evidence printable and bounded', () => {
    const event = parseAuthLine(`Failed password for ro\u001b[31mot from 192.0.2.1 port 1 ssh2`, NOW);
    assert.equal(event?.line?.includes('\u001b'), false);
    const long = parseAuthLine(`Invalid user ${'u'.repeat(100)} from 192.0.2.1 port 1${' '.repeat(600)}`, NOW);
    assert.ok(long && (long.line?.length ?? 0) <= 512);
  });
});
