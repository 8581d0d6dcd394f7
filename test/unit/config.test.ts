/** Hub and agent configuration: validated once, unknown keys refused, every problem reported with its path. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadAgentConfig, parseTarget } from '../../src/agent/config.js';
import { DrawbridgeError } from '../../src/errors.js';
import { defaultHubConfig, loadHubConfigFile, parseHubConfig } from '../../src/hub/config.js';

const dir = mkdtempSync(join(tmpdir(), 'db-unit-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function configInvalid(fn: () => unknown, ...messages: RegExp[]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof DrawbridgeError, String(error));
    assert.equal(error.code, 'CONFIG_INVALID');
    for (const m of messages) assert.match(error.message, m);
    return true;
  });
}

describe('hub config', () => {
  it('has safe defaults, every limit on', () => {
    const config = defaultHubConfig();
    assert.equal(config.access.maxDuration, 8 * 3_600_000);
    assert.equal(config.limits.maxStreamsPerDevice, 64);
    assert.equal(config.limits.streamConnectTimeout, 15_000);
    assert.equal(config.limits.streamWindow, 512 * 1024);
    assert.equal(config.limits.authFailuresPerMinute, 20);
    assert.equal(config.webhook, undefined);
    assert.deepEqual(parseHubConfig(null, 'x'), config);
  });

  it('reads durations and nested lists', () => {
    const config = parseHubConfig(
      { access: { maxDuration: '1h30m', autoApprove: [{ tags: { site: 'lab' }, maxDuration: '15m' }] }, limits: { streamConnectTimeout: '2s', streamWindow: '1MiB' } },
      'hub.yaml',
    );
    assert.equal(config.access.maxDuration, 5_400_000);
    assert.deepEqual(config.access.autoApprove, [{ tags: { site: 'lab' }, maxDuration: 900_000 }]);
    assert.equal(config.limits.streamConnectTimeout, 2000);
    assert.equal(config.limits.streamWindow, 1024 * 1024);
  });

  it('refuses unknown keys at any depth, naming them', () => {
    configInvalid(() => parseHubConfig({ limit: {} }, 'hub.yaml'), /hub\.yaml is invalid/, /limit/);
    configInvalid(() => parseHubConfig({ limits: { maxStreams: 5 } }, 'hub.yaml'), /limits/, /maxStreams/);
    configInvalid(() => parseHubConfig({ access: { autoApprove: [{ tags: {}, maxDuration: '1h', when: 'always' }] } }, 'hub.yaml'), /access\.autoApprove\.0/, /when/);
  });

  it('refuses bad durations with the path and the reason', () => {
    configInvalid(() => parseHubConfig({ limits: { authTimeout: '10 seconds' } }, 'hub.yaml'), /limits\.authTimeout: invalid duration "10 seconds"/);
    configInvalid(() => parseHubConfig({ access: { requestTtl: 3600 } }, 'hub.yaml'), /access\.requestTtl/);
  });

  it('reports every problem at once', () => {
    configInvalid(
      () => parseHubConfig({ limits: { pingInterval: 'soon', maxStreamsPerDevice: 0 }, webhook: { url: 'ftp://x', secret: 'short' } }, 'hub.yaml'),
      /limits\.pingInterval/, /limits\.maxStreamsPerDevice/, /webhook\.url/, /webhook\.secret/,
    );
  });

  it('loads YAML files, refusing bad YAML and missing files clearly', () => {
    assert.equal(loadHubConfigFile(write('ok.yaml', 'limits:\n  maxStreamsPerDevice: 3\n')).limits.maxStreamsPerDevice, 3);
    assert.equal(loadHubConfigFile(write('empty.yaml', '')).limits.maxStreamsPerDevice, 64);
    configInvalid(() => loadHubConfigFile(write('bad.yaml', 'limits: [\n')), /is not valid YAML/);
    configInvalid(() => loadHubConfigFile(write('unknown.yaml', 'limitz: {}\n')), /unknown\.yaml is invalid/, /limitz/);
    configInvalid(() => loadHubConfigFile(join(dir, 'missing.yaml')), /cannot read hub config/);
  });
});

describe('agent config', () => {
  const device = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
    name: 'plc-7',
    hubUrl: 'https://hub.example:8443',
    caPin: 'sha256:' + 'ab'.repeat(32),
    target: '127.0.0.1:22',
    keyFile: 'keys/plc-7.key',
    ...over,
  });
  const yaml = (value: unknown): string => JSON.stringify(value); // JSON is YAML

  it('loads a valid file with defaults', () => {
    const config = loadAgentConfig(write('agent.yaml', yaml({ devices: [device()] })));
    assert.equal(config.devices[0]?.maxStreams, 64);
    assert.equal(config.limits.connectTimeout, 10_000);
  });

  it('refuses unknown keys, bad targets, bad pins and bad durations, naming each', () => {
    configInvalid(() => loadAgentConfig(write('a1.yaml', yaml({ devices: [device({ port: 22 })] }))), /devices\.0/, /port/);
    configInvalid(() => loadAgentConfig(write('a2.yaml', yaml({ devices: [device({ target: 'localhost' })] }))), /devices\.0\.target: must be HOST:PORT/);
    configInvalid(() => loadAgentConfig(write('a3.yaml', yaml({ devices: [device({ caPin: 'abc' })] }))), /devices\.0\.caPin/);
    configInvalid(() => loadAgentConfig(write('a4.yaml', yaml({ devices: [device({ hubUrl: 'http://hub' })] }))), /devices\.0\.hubUrl/);
    configInvalid(() => loadAgentConfig(write('a5.yaml', yaml({ limits: { connectTimeout: 'forever' } }))), /limits\.connectTimeout: invalid duration/);
    configInvalid(() => loadAgentConfig(write('a6.yaml', yaml({ devices: [device({ name: 'PLC' })] }))), /devices\.0\.name/);
    configInvalid(() => loadAgentConfig(write('a7.yaml', yaml({ devices: [device({ maxStreams: 0 })] }))), /devices\.0\.maxStreams/);
  });

  it('refuses a device listed twice', () => {
    configInvalid(() => loadAgentConfig(write('dup.yaml', yaml({ devices: [device(), device({ target: '127.0.0.1:23' })] }))), /device "plc-7" is listed twice/);
  });

  it('explains a missing file, and allows it when asked', () => {
    configInvalid(() => loadAgentConfig(join(dir, 'nope.yaml')), /does not exist; enroll a device first/);
    assert.deepEqual(loadAgentConfig(join(dir, 'nope.yaml'), { allowMissing: true }).devices, []);
  });
});

describe('parseTarget', () => {
  it('reads host:port, names and bracketed IPv6', () => {
    assert.deepEqual(parseTarget('127.0.0.1:22'), { host: '127.0.0.1', port: 22 });
    assert.deepEqual(parseTarget('plc-7.local:65535'), { host: 'plc-7.local', port: 65535 });
    assert.deepEqual(parseTarget('[::1]:8080'), { host: '::1', port: 8080 });
  });

  it('refuses the rest with VALIDATION_FAILED', () => {
    for (const bad of ['', '127.0.0.1', ':22', '127.0.0.1:0', '127.0.0.1:65536', '::1:22', 'host:22/x', 'a b:22', 'http://x:80']) {
      assert.throws(() => parseTarget(bad), (error: unknown) => error instanceof DrawbridgeError && error.code === 'VALIDATION_FAILED', bad);
    }
  });
});
