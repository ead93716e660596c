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
import { TestRoot, buildSkeleton, inGuestNet, makeNetwork } from './helpers.js';

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

const inNet = (name: string, script: string): number => inGuestNet(t, name, script);

describe('port forwards', () => {
  const any = freePort();
  let lo = freePort();
  while (lo === any) lo = freePort();
  before(() => {
    gw = makeNetwork(t, 'np');
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

describe("the seed's interface syntax on a host device", () => {
  const dev = `jtr${t.tag.slice(0, 6)}`;
  const lan = `jl${t.tag}`;
  let base = '';
  const guestIp = (): string => `${base}.5`;
  let devsBefore: string[] = [];
  before(() => {
    // The host device of the seed's "eth1" (a veth pair: this kernel has no dummy driver) with
    // the host's own address on that network, and a namespace on its other end as the network.
    for (let i = 0; i < 20 && !base; i++) {
      const b = `10.${100 + Math.floor(Math.random() * 40)}.${Math.floor(Math.random() * 250)}`;
      if (
        !spawnSync('ip', ['-4', 'route', 'show', 'to', 'match', `${b}.5`], {
          encoding: 'utf8',
        }).stdout.includes(b)
      )
        base = b;
    }
    t.onCleanup(() => {
      spawnSync('ip', ['link', 'del', dev]);
      spawnSync('ip', ['netns', 'del', lan]);
    });
    const ip = (...a: string[]): void => assert.equal(spawnSync('ip', a).status, 0, `ip ${a.join(' ')}`);
    ip('link', 'add', dev, 'type', 'veth', 'peer', 'name', `${dev}p`);
    ip('netns', 'add', lan);
    ip('link', 'set', `${dev}p`, 'netns', lan);
    ip('addr', 'add', `${base}.1/24`, 'dev', dev);
    ip('link', 'set', dev, 'up');
    ip('-n', lan, 'addr', 'add', `${base}.9/24`, 'dev', `${dev}p`);
    ip('-n', lan, 'link', 'set', `${dev}p`, 'up');
    buildSkeleton(t, 'vs01', ['--interface', `vs01=${dev}:${guestIp()}/24`]);
  });

  it("routes the address to the guest (and says so): the host and the device's network reach it", () => {
    devsBefore = t.devices();
    t.ok(['start', 'vs01']);
    assert.equal(
      t.sh('vs01', 'mkdir -p /www && echo hello-vs01 > /www/index.html && httpd -p 80 -h /www').code,
      0,
    );
    const r = spawnSync('curl', ['-s', '-m', '5', `http://${guestIp()}/index.html`], { encoding: 'utf8' });
    assert.equal(r.stdout, 'hello-vs01\n', `the host reaches the guest: ${r.stderr} (curl exit ${r.status})`);
    assert.equal(spawnSync('ping', ['-c', '1', '-w', '10', guestIp()]).status, 0, 'the host pings it');
    // (one reply within 10 s: the device's proxy ARP answers after a random delay of up to 0.8 s)
    assert.equal(
      spawnSync('ip', ['netns', 'exec', lan, 'ping', '-c', '1', '-w', '10', guestIp()]).status,
      0,
      "a machine on the device's network reaches it (proxy ARP)",
    );
    assert.match(t.sh('vs01', 'ip route').stdout, /default via 169\.254\.0\.1 dev vs01 onlink/);
    assert.match(
      t.sh('vs01', 'ip -4 addr show vs01').stdout,
      new RegExp(`inet ${guestIp().replace(/\./g, '\\.')}/24`),
    );
    // (the seed's form made a macvlan, which the host cannot reach: now the config says routed)
    const s = JSON.parse(t.ok(['list', '--format', 'json']).stdout) as {
      name: string;
      interfaces: string[];
    }[];
    assert.match(
      s.find((g) => g.name === 'vs01')?.interfaces[0] ?? '',
      /^vs01=jtr\w+:[\d.]+\/24,mode=routed,/,
    );
  });

  it('leaves nothing on the host device when the guest stops', () => {
    t.ok(['stop', 'vs01']);
    assert.equal(
      spawnSync('ip', ['neigh', 'show', 'proxy', 'dev', dev], { encoding: 'utf8' }).stdout.trim(),
      '',
    );
    assert.deepEqual(t.devices(), devsBefore, 'its veth is gone');
  });
});

describe('addresses and networks', () => {
  it('refuses an address outside the network with a hint to make one', () => {
    const r = t.jaula(['build', 'x1', '-m', 'skeleton', '-q', '--interface', '192.168.39.1/24']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /outside the subnet of network "jaula0"/);
    assert.match(r.stderr, /jaula network create lan --subnet 192\.168\.39\.254\/24 --nat/);
    const p = t.jaula([
      'build',
      'x2',
      '-m',
      'skeleton',
      '-q',
      '--interface',
      `eth0=np:${gw.replace(/\.1$/, '.77')}/16`,
    ]);
    assert.equal(p.code, 2, p.stderr);
    assert.match(p.stderr, /another prefix than network "np".*\/24, or "auto"/);
    assert.equal(t.jaula(['list', '--format', 'json']).stdout.includes('"x1"'), false, 'nothing was built');
  });

  it('makes the default network as its help says: with NAT', () => {
    assert.match(t.ok(['network', '--help']).stdout, /10\.88\.0\.1\/16 with NAT;[^]*with NAT too/);
    buildSkeleton(t, 'd1', ['--interface', 'eth0=jaula0:auto']);
    const nets = JSON.parse(t.ok(['network', 'list', '--format', 'json']).stdout) as {
      name: string;
      nat: boolean;
    }[];
    assert.equal(nets.find((n) => n.name === 'jaula0')?.nat, true);
  });
});
