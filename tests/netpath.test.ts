/**
 * The network as a user meets it: port forwards that answer on the host's loopback (and a guest
 * that still cannot reach the host's loopback services), the seed's interface syntax for an
 * address on a host device (routed, reachable from the host), addresses outside a network's
 * subnet refused with a hint, and help that says what the default network is. All traffic goes
 * to this test's own guests and namespaces, and to listeners it makes itself.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { TestRoot, buildSkeleton } from './helpers.js';

const t = new TestRoot('jaula-netpath-');
let gw = '';

after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

/** A random free TCP port of the host (no listener), for forwards this test owns. */
function freePort(): number {
  const used = spawnSync('ss', ['-Htan'], { encoding: 'utf8' }).stdout;
  for (;;) {
    const p = 20000 + Math.floor(Math.random() * 20000);
    if (!used.includes(`:${p} `)) return p;
  }
}

const inNet = (name: string, script: string): number =>
  spawnSync('nsenter', [`--net=${t.path('run/jaula/netns', name)}`, 'sh', '-c', script], {
    stdio: 'ignore',
    timeout: 30_000,
  }).status ?? 1;

describe('port forwards', () => {
  const any = freePort();
  let lo = freePort();
  while (lo === any) lo = freePort();
  before(() => {
    for (let i = 0; i < 20 && !gw; i++) {
      const base = `10.${150 + Math.floor(Math.random() * 40)}.${Math.floor(Math.random() * 250)}`;
      const r = t.jaula([
        'network',
        'create',
        'np',
        '--subnet',
        `${base}.1/24`,
        '--bridge',
        `jn${t.tag.slice(0, 6)}`,
      ]);
      if (r.code === 0) gw = `${base}.1`;
    }
    assert.ok(gw, 'made a network');
    buildSkeleton(t, 'web', [
      '--interface',
      'eth0=np:auto',
      '--forward',
      `${any}:80`,
      '--forward',
      `127.0.0.1:${lo}:80`,
    ]);
    t.ok(['start', 'web']);
    assert.equal(
      t.sh('web', 'mkdir -p /www && echo hello-web > /www/index.html && httpd -p 80 -h /www').code,
      0,
    );
  });

  it("answer on the host's loopback, as on its other addresses", () => {
    for (const url of [
      `http://127.0.0.1:${any}/index.html`,
      `http://${gw}:${any}/index.html`,
      `http://127.0.0.1:${lo}/index.html`,
    ]) {
      const r = spawnSync('curl', ['-s', '-m', '5', url], { encoding: 'utf8' });
      assert.equal(r.stdout, 'hello-web\n', `${url}: ${r.stderr} (curl exit ${r.status})`);
    }
    const r = spawnSync('curl', ['-s', '-m', '2', `http://${gw}:${lo}/index.html`], { encoding: 'utf8' });
    assert.notEqual(r.stdout, 'hello-web\n', 'a forward on 127.0.0.1 answers there only');
  });

  it("do not open the host's loopback to the guest", async () => {
    // The guest's namespace is made to route 127.0.0.0/8 out through its bridge (what a guest
    // with its own sysctls could do): the host's loopback services stay out of its reach.
    const port = freePort();
    const srv = spawn(
      'python3',
      [
        '-c',
        `import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.9', ${port})); s.listen(1)
print('up', flush=True); s.settimeout(4)
try:
  c, a = s.accept(); print('reached', flush=True)
except Exception: print('not reached', flush=True)`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let said = '';
    srv.stdout.on('data', (b: Buffer) => (said += b.toString()));
    await t.until('the listener', () => said.includes('up'));
    const rc = inNet(
      'web',
      `echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet && echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet && ip route add 127.0.0.9/32 via ${gw} dev eth0 && timeout 3 bash -c 'echo > /dev/tcp/127.0.0.9/${port}'`,
    );
    await t.until('the listener to end', () => said.includes('reached'), 10_000);
    assert.notEqual(rc, 0, 'the connection fails');
    assert.match(said, /not reached/);
  });
});
