/** files: entries: the template language, config validation, and owner resolution. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentConfigSchema } from '../../src/agent/config.js';
import { resolveOwner } from '../../src/agent/vault/file-renderer.js';
import { parseTemplate, renderTemplate, templateSecrets } from '../../src/agent/vault/template.js';

describe('secret file templates', () => {
  it('render {{ secret "NAME" }} placeholders, several secrets, repeated, binary-safe', () => {
    const parts = parseTemplate('user=app\npassword={{ secret "plant-3/db" }}\nkey={{secret "api"}} again={{  secret  "plant-3/db"  }}\n');
    assert.deepEqual(templateSecrets(parts), ['plant-3/db', 'api']);
    const values = new Map([['plant-3/db', Buffer.from('p@ss')], ['api', Buffer.from([0, 255])]]);
    const out = renderTemplate(parts, (n) => values.get(n)) as Buffer;
    assert.deepEqual(out, Buffer.concat([Buffer.from('user=app\npassword=p@ss\nkey='), Buffer.from([0, 255]), Buffer.from(' again=p@ss\n')]));
    assert.equal(renderTemplate(parts, (n) => (n === 'api' ? undefined : values.get(n))), undefined, 'a missing secret renders nothing');
  });

  it('refuse anything else between braces, bad names, and templates with no or too many secrets', () => {
    for (const [template, reason] of [
      ['x={{ secret "a" }} y={{ env "HOME" }}', /unsupported template syntax/],
      ['x={{ secret a }}', /unsupported template syntax/],
      ['x={{ secret "Bad Name" }}', /not a valid secret name/],
      ['x=}}', /unsupported/],
      ['no placeholders', /uses no secret/],
      [Array.from({ length: 17 }, (_, i) => `{{ secret "s${i}" }}`).join(''), /at most 16/],
    ] as const) {
      assert.throws(() => parseTemplate(template), reason, template);
    }
  });
});

describe('agent config: files and local API', () => {
  const parse = (extra: Record<string, unknown>) => AgentConfigSchema.safeParse({ devices: [], ...extra });

  it('accepts a secret or a template, with mode, owner and a reload argv', () => {
    const ok = parse({ files: [{ path: '/etc/app/db.conf', template: 'p={{ secret "db" }}', mode: '0640', owner: 'root:root', reload: ['/bin/systemctl', 'reload', 'app'] }, { path: 'rel/key.pem', secret: 'tls/key' }] });
    assert.ok(ok.success, JSON.stringify(ok.error?.issues));
    assert.equal(ok.data.files[1]?.mode, '0600', 'files are 0600 unless the config says otherwise');
    assert.equal(ok.data.localApi.socket, 'agent.sock');
    assert.equal(ok.data.localApi.mode, '0600');
  });

  it('refuses every mistake with its path', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ files: [{ path: '/x' }] }, 'files.0.secret'],
      [{ files: [{ path: '/x', secret: 'a', template: '{{ secret "a" }}' }] }, 'files.0.secret'],
      [{ files: [{ path: '/x', template: '{{ nope }}' }] }, 'files.0.template'],
      [{ files: [{ path: '/x', secret: 'a', mode: '999' }] }, 'files.0.mode'],
      [{ files: [{ path: '/x', secret: 'a', owner: 'root; rm -rf /' }] }, 'files.0.owner'],
      [{ files: [{ path: '/x', secret: 'a', reload: [] }] }, 'files.0.reload'],
      [{ files: [{ path: '/x', secret: 'a', shell: 'sh -c' }] }, 'files.0'],
      [{ localApi: { mode: '0666' } }, 'localApi.mode'],
      [{ secrets: { readReportInterval: '1ms' } }, 'secrets.readReportInterval'],
    ];
    for (const [input, path] of cases) {
      const result = parse(input);
      assert.equal(result.success, false, JSON.stringify(input));
      assert.ok(result.error?.issues.some((i) => i.path.join('.').startsWith(path)), `${JSON.stringify(input)}: ${JSON.stringify(result.error?.issues.map((i) => i.path.join('.')))}`);
    }
  });

  it('resolves owners by name or number', () => {
    assert.deepEqual(resolveOwner('root'), { uid: 0, gid: 0 });
    assert.deepEqual(resolveOwner('0:0'), { uid: 0, gid: 0 });
    assert.deepEqual(resolveOwner('1234:5678'), { uid: 1234, gid: 5678 });
    assert.throws(() => resolveOwner('no-such-user-here'), /unknown user/);
  });
});
