import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { logLine, runDaemon } from './main.js';
import { parseListen } from './server.js';

describe('jaulad --listen', () => {
  it('takes IP addresses and tells loopback apart', () => {
    assert.deepEqual(parseListen('127.0.0.1:7440'), { host: '127.0.0.1', port: 7440, loopback: true });
    assert.deepEqual(parseListen('127.9.9.9:0'), { host: '127.9.9.9', port: 0, loopback: true });
    assert.deepEqual(parseListen('localhost:1'), { host: '127.0.0.1', port: 1, loopback: true });
    assert.deepEqual(parseListen('[::1]:7440'), { host: '::1', port: 7440, loopback: true });
    assert.deepEqual(parseListen('[::ffff:127.0.0.1]:80'), {
      host: '::ffff:127.0.0.1',
      port: 80,
      loopback: true,
    });
    assert.deepEqual(parseListen('0.0.0.0:7443'), { host: '0.0.0.0', port: 7443, loopback: false });
    assert.deepEqual(parseListen('[::]:7443'), { host: '::', port: 7443, loopback: false });
    assert.deepEqual(parseListen('10.0.0.1:7443'), { host: '10.0.0.1', port: 7443, loopback: false });
  });

  it('refuses names, odd forms and ports out of range', () => {
    for (const l of [
      '127.0.0.1.invalid:7440',
      'example.com:80',
      '127.0.0.1',
      '127.0.0.1:65536',
      '::1:80',
      '[127.0.0.1]:80',
      '[::1]',
      ' 127.0.0.1:80',
      '127.0.0.1:80 ',
      '127.1:80',
    ])
      assert.throws(() => parseListen(l), { code: 'usage' }, l);
  });
});

describe("jaulad's options", () => {
  it('refuses the options of --listen without it, naming them, before anything starts', async () => {
    await assert.rejects(runDaemon(['--allow-moves', '--allow-guests']), {
      code: 'usage',
      message: '--allow-guests, --allow-moves: options of --listen (TCP), which was not given',
    });
    await assert.rejects(runDaemon(['--allow-movess']), {
      code: 'usage',
      message: /Unknown option "--allow-movess"/,
    });
  });
});

describe("jaulad's log", () => {
  it('keeps one record per line: what a request carries cannot start a record of its own', () => {
    assert.equal(logLine('attach exec x\njaulad: forged'), 'jaulad: attach exec x\n  jaulad: forged\n');
    assert.equal(logLine('a\rb\u001b[2Kc'), 'jaulad: a\\x0db\\x1b[2Kc\n');
  });
});
