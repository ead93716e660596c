/**
 * `./setup demo`'s demo, run from the setup script itself with a JAULA_ROOT of its own and this
 * tree's jaula first on PATH (never the /usr/local/bin one): it ends with a guest that has a
 * network interface, shows it from inside (ip addr, ip route) and pings its gateway from inside.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { TestRoot, jaulaBin, projectDir } from './helpers.js';

const t = new TestRoot();
after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

let output = '';
let gw = '';

describe('./setup demo', () => {
  before(() => {
    fs.mkdirSync(t.path('bin'));
    fs.symlinkSync(jaulaBin, t.path('bin/jaula'));
    // The demo makes this root's storage pool: removed after its guest.
    t.onCleanup(() => {
      const r = t.jaula(['pool', 'delete']);
      if (r.code !== 0) throw new Error(r.stderr);
    });
    const r = spawnSync('bash', ['-c', 'source ./setup && demo'], {
      cwd: projectDir,
      env: { ...t.env, PATH: `${t.path('bin')}:${process.env['PATH'] ?? ''}` },
      encoding: 'utf8',
      timeout: 300_000,
    });
    output = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, output);
    const nets = JSON.parse(t.ok(['network', 'list', '--format', 'json']).stdout) as {
      name: string;
      subnet: string;
    }[];
    gw = nets.find((n) => n.name === 'jaula0')?.subnet.split('/')[0] ?? '';
    assert.ok(gw, `the demo's network: ${JSON.stringify(nets)}`);
  });

  it('runs a guest with an interface on the network jaula0, shown from inside', () => {
    const st = JSON.parse(t.ok(['status', 'demo', '--format', 'json']).stdout) as {
      status: string;
      interfaces: string[];
    };
    assert.equal(st.status, 'running');
    assert.match(st.interfaces.join(' '), /^eth0=jaula0:\d+\.\d+\.\d+\.\d+\/\d+/);
    const addr = st.interfaces[0]?.split(':')[1]?.split(',')[0] ?? '';
    assert.match(output, /Inside the guest: jaula exec demo -- ip addr/);
    assert.match(
      output,
      new RegExp(`\\d+: eth0[@:][^\\n]*\\n(.*\\n)*?\\s+inet ${addr.replace(/\./g, '\\.')}`),
    );
    assert.match(output, new RegExp(`default via ${gw.replace(/\./g, '\\.')} dev eth0`));
    assert.match(output, new RegExp(`jaula exec demo -- ping -c 1 -W 2 ${gw.replace(/\./g, '\\.')} `));
  });

  it('pings its gateway from inside', () => {
    assert.match(output, /1 packets transmitted, 1 packets received/);
  });

  it('is idempotent: a second run keeps the guest', () => {
    const pid = (JSON.parse(t.ok(['status', 'demo', '--format', 'json']).stdout) as { pid: number }).pid;
    const r = spawnSync('bash', ['-c', 'source ./setup && demo'], {
      cwd: projectDir,
      env: { ...t.env, PATH: `${t.path('bin')}:${process.env['PATH'] ?? ''}` },
      encoding: 'utf8',
      timeout: 300_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /Building the demo guest|Starting it/);
    assert.equal(
      (JSON.parse(t.ok(['status', 'demo', '--format', 'json']).stdout) as { pid: number }).pid,
      pid,
    );
  });
});
