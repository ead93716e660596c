/**
 * OCI images: pulled from a real registry (Debian's docker-registry on loopback, images made
 * here byte by byte and pushed with skopeo), imported from files, built into guests. Whiteouts and
 * opaque directories become overlayfs ones; layers are stored once; a manifest list resolves to
 * this host's platform; an unchanged image costs one manifest request; a dropped transfer
 * resumes; a blob that does not match its digest is refused; the image's config is honoured
 * (its command under jaula-init, Env, WorkingDir, User; its port serves).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeNetwork, TestRoot } from './helpers.js';
import {
  busyboxMembers,
  freePort,
  layerTar,
  ociLayout,
  push,
  startProxy,
  startRegistry,
  type Registry,
} from './ocikit.js';

const t = new TestRoot();
let reg: Registry;
after(async () => {
  await reg?.stop();
  assert.deepEqual(t.cleanup(), [], 'nothing is left behind');
});

const base = layerTar(busyboxMembers());
const SLEEP = { Cmd: ['/bin/sleep', '100000'] };
const layersDir = (): string[] =>
  fs.readdirSync(t.path('var/lib/jaula/layers')).filter((n) => !n.startsWith('.'));
const stored = (): string[] => fs.readdirSync(t.path('var/lib/jaula/layers'));

function pushed(name: string, specs: Parameters<typeof ociLayout>[2], all = false): string {
  const dir = ociLayout(t.path('oci', name), 'v1', specs);
  push(dir, 'v1', `${reg.host}/${name}:v1`, { all });
  return `${reg.host}/${name}:v1`;
}

describe('images from a registry', () => {
  let multi = '';
  before(async () => {
    reg = await startRegistry(t, 'plain');
    const l2 = layerTar([
      { path: 'etc/app', type: 'dir' },
      { path: 'etc/app/a', data: 'a\n' },
      { path: 'etc/app/b', data: 'b\n' },
      { path: 'data', type: 'dir', uid: 1234, gid: 2345 },
      { path: 'data/old', type: 'dir' },
      { path: 'data/old/x', data: 'x\n' },
      { path: 'data/old/y', data: 'y\n' },
    ]);
    const l3 = layerTar([
      { path: 'etc/app/.wh.b' },
      { path: 'data/old/.wh..wh..opq' },
      { path: 'data/old/z', data: 'z\n' },
      { path: 'data/new', data: 'new\n', mode: 0o640, uid: 1234, gid: 2345 },
    ]);
    multi = pushed('multi', [
      {
        layers: [base, l2, l3],
        config: {
          Entrypoint: ['/bin/sh', '-c'],
          Cmd: ['env > report; id >> report; pwd >> report; exec sleep 100000'],
          Env: ['GREETING=hello', 'PATH=/bin'],
          WorkingDir: '/data',
          User: 'app',
          StopSignal: 'SIGINT',
        },
      },
    ]);
  });

  it('pulls a multi-layer image: whiteouts and opaque directories become overlayfs ones', () => {
    const r = t.ok(['image', 'pull', multi]);
    assert.match(r.stdout, /Pulled image ".*multi:v1" \(sha256:[0-9a-f]{64}, 3 layers/);
    assert.match(r.stderr, /MiB at [0-9.]+ MiB\/s/, 'progress shows bytes and rate');
    const info = JSON.parse(t.ok(['image', 'inspect', multi, '--format', 'json']).stdout) as {
      layers: { layer: string }[];
      user: string;
    };
    assert.equal(info.layers.length, 3);
    assert.equal(info.user, 'app');
    const top = t.path('var/lib/jaula/layers', info.layers[2]?.layer ?? '', 'tree');
    const wh = fs.lstatSync(join(top, 'etc/app/b'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'the whiteout is a char device 0/0');
    assert.ok(!fs.existsSync(join(top, 'etc/app/.wh.b')), 'the .wh. file is gone');
    const x = spawnSync(
      'getfattr',
      ['--only-values', '-n', 'trusted.overlay.opaque', join(top, 'data/old')],
      { encoding: 'utf8' },
    );
    assert.equal(x.stdout, 'y', 'the opaque directory is marked');
    assert.ok(!fs.existsSync(join(top, 'data/old/.wh..wh..opq')));
  });

  it("builds a guest that sees the layers' union and runs the image's command as its User, with its Env and WorkingDir", async () => {
    const r = t.ok(['build', 'm1', '-m', 'oci', '--', '-i', multi]);
    assert.match(r.stderr, /command: \["\/bin\/sh","-c","env > report; .*"\] as 1234:2345/);
    t.ok(['start', 'm1']);
    try {
      assert.equal(t.sh('m1', 'ls /etc/app').stdout, 'a\n', 'the whiteout hides b');
      assert.equal(t.sh('m1', 'ls /data/old').stdout, 'z\n', 'the opaque directory hides x and y');
      let report = '';
      await t.until('the command wrote its report', () => {
        report = t.sh('m1', 'cat /data/report').stdout;
        return /^\/data$/m.test(report);
      });
      assert.match(report, /^GREETING=hello$/m);
      assert.match(report, /^PATH=\/bin$/m, "the image's PATH replaces jaula's");
      assert.match(
        report,
        /^uid=1234\(app\) gid=2345\(app\) groups=2345\(app\)$/m,
        "it runs as the image's User",
      );
      assert.match(report, /^\/data$/m, 'in its WorkingDir');
    } finally {
      t.ok(['stop', 'm1']);
    }
    const cfg = fs.readFileSync(t.path('etc/jaula/guests/m1/config.toml'), 'utf8');
    assert.match(cfg, /stop_signal = "SIGINT"/);
  });

  it("builds dir and reflink guests from it: the layers' union copied into their own trees (reflink: cloned from one pool copy), whiteouts applied", async () => {
    t.loopFs('xfs', t.path('var/lib/jaula/reflink'));
    const trees = { md: t.guestRoot('md'), mr: t.path('var/lib/jaula/reflink/guests/mr/rootfs') };
    for (const [g, storage] of [
      ['md', 'dir'],
      ['mr', 'reflink'],
    ] as const) {
      const r = t.ok(['build', g, '-m', 'oci', '--storage', storage, '--', '-i', multi]);
      assert.match(
        r.stderr,
        g === 'md'
          ? /Copied the image's 3 layers \(.*\) into the guest's tree/
          : /Copied the image's 3 layers \(.*\) into the reflink pool's copy of the image\n.*Cloned the pool's copy/,
      );
      const tree = trees[g];
      assert.deepEqual(fs.readdirSync(join(tree, 'etc/app')), ['a'], `${g}: the whiteout removed b`);
      assert.deepEqual(fs.readdirSync(join(tree, 'data/old')), ['z'], `${g}: the opaque dir hid x and y`);
      const st = fs.statSync(join(tree, 'data/new'));
      assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [1234, 2345, 0o640], `${g}: owner and mode kept`);
      const odd = spawnSync('find', [tree, '-type', 'c', '-o', '-name', '.wh.*'], { encoding: 'utf8' });
      assert.equal(odd.stdout, '', `${g}: no whiteout is left in the tree`);
      const x = spawnSync('getfattr', ['-d', '-m', 'trusted.overlay', '-R', tree], { encoding: 'utf8' });
      assert.equal(x.stdout, '', `${g}: no overlay xattr is left in the tree`);
      assert.doesNotMatch(fs.readFileSync(t.path('etc/jaula/guests', g, 'config.toml'), 'utf8'), /layers/);
    }
    // Each guest sees what the overlay guest m1 sees, file for file (owners, modes, sizes, links;
    // directories' sizes are their filesystem's).
    const listing = (g: string): string =>
      t.sh(
        g,
        'find / -xdev | grep -v "^/data/report$" | sort | while read f; do if [ -d "$f" ]; then stat -c "%n %f %u:%g" "$f"; else stat -c "%n %f %u:%g %s %N" "$f"; fi; done',
      ).stdout;
    for (const g of ['m1', 'md', 'mr']) t.ok(['start', g]);
    try {
      const want = listing('m1');
      assert.match(want, /^\/data\/new 81a0 1234:2345 4 /m);
      for (const g of ['md', 'mr']) {
        assert.equal(listing(g), want, `${g} sees the union m1 sees`);
        await t.until(`${g}'s command ran as the image's User`, () =>
          /^uid=1234\(app\)/m.test(t.sh(g, 'cat /data/report').stdout),
        );
      }
    } finally {
      for (const g of ['m1', 'md', 'mr']) t.ok(['stop', g]);
    }
    // Another reflink guest clones the pool's copy: no file data copied.
    const pool = t.path('var/lib/jaula/reflink');
    const used = (): number => {
      spawnSync('sync', ['-f', pool]);
      const f = fs.statfsSync(pool);
      return (f.blocks - f.bfree) * f.bsize;
    };
    const u0 = used();
    const r2 = t.ok(['build', 'mr2', '-m', 'oci', '--storage', 'reflink', '--', '-i', multi]);
    assert.doesNotMatch(r2.stderr, /Copied/);
    assert.match(r2.stderr, /Cloned the pool's copy of the image into the guest's tree/);
    const grew = used() - u0;
    assert.ok(grew < fs.statSync('/bin/busybox').size / 2, `the pool grew by ${grew} bytes`);
    assert.equal(fs.readdirSync(join(pool, 'images')).length, 1, 'one pool copy of the image');
    for (const g of ['md', 'mr', 'mr2']) t.ok(['delete', g]);
  });

  it('stores a layer two images share once; du shows it as shared by their guests', () => {
    const before = layersDir().length;
    const other = pushed('other', [
      { layers: [base, layerTar([{ path: 'other', data: 'o\n' }])], config: SLEEP },
    ]);
    const r = t.ok(['image', 'pull', other]);
    assert.match(r.stderr, /layer 1\/2 .*already stored/);
    assert.equal(layersDir().length, before + 1, 'only the new layer is stored');
    t.ok(['build', 'o1', '-m', 'oci', '-q', '--', '-i', other]);
    const du = JSON.parse(t.ok(['du', 'm1', 'o1', '--format', 'json']).stdout) as {
      guests: { name: string; sharedBytes: number }[];
    };
    const bb = fs.statSync('/bin/busybox').size;
    for (const g of du.guests)
      assert.ok(g.sharedBytes >= bb, `${g.name} shares the base layer: ${JSON.stringify(du)}`);
    const list = t.ok(['image', 'list']).stdout;
    assert.match(list, /multi:v1/);
    assert.match(list, /other:v1/);
    t.ok(['delete', 'o1']);
  });

  it("resolves a manifest list to this host's platform", () => {
    const ml = pushed(
      'multiarch',
      [
        {
          layers: [base, layerTar([{ path: 'platform', data: 'amd64\n' }])],
          config: SLEEP,
          architecture: 'amd64',
        },
        {
          layers: [base, layerTar([{ path: 'platform', data: 'arm64\n' }])],
          config: SLEEP,
          architecture: 'arm64',
        },
      ],
      true,
    );
    const i = JSON.parse(
      t.ok(['image', 'pull', ml, '-q']).stdout.length
        ? t.ok(['image', 'inspect', ml, '--format', 'json']).stdout
        : '{}',
    ) as {
      platform: string;
      layers: { layer: string }[];
    };
    assert.equal(i.platform, 'linux/amd64');
    const top = t.path('var/lib/jaula/layers', i.layers[1]?.layer ?? '', 'tree', 'platform');
    assert.equal(fs.readFileSync(top, 'utf8'), 'amd64\n');
  });

  it('pulls an unchanged image with one manifest request, and resumes a transfer cut mid-blob', async () => {
    const big = layerTar([
      { path: 'big', data: Buffer.alloc(3 << 20, 7) },
      { path: 'rnd', data: fs.readFileSync('/bin/busybox') },
    ]);
    pushed('resume', [{ layers: [base, big], config: SLEEP, plain: true }]);
    const p = await startProxy(reg.host, 'cut', 256 << 10);
    try {
      const ref = `${p.host}/resume:v1`;
      const r = await t.jaulaAsync(['image', 'pull', ref]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /dropped at .*resuming/);
      assert.ok(
        p.requests.some((q) => /\/blobs\/sha256:.* bytes=[0-9]+-$/.test(q)),
        `a Range request: ${p.requests.join('\n')}`,
      );
      p.requests.length = 0;
      const again = await t.jaulaAsync(['image', 'pull', ref]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, /up to date/);
      assert.deepEqual(
        p.requests.filter((q) => q.startsWith('GET /v2/resume')),
        ['GET /v2/resume/manifests/v1'],
      );
    } finally {
      await p.stop();
    }
  });

  it('refuses a blob whose bytes do not match its digest, and removes the partial blob', async () => {
    pushed('spoilt', [{ layers: [base, layerTar([{ path: 's', data: 's\n' }])], config: SLEEP }]);
    const p = await startProxy(reg.host, 'corrupt');
    const n = stored().length;
    try {
      const r = await t.jaulaAsync(['image', 'pull', `${p.host}/spoilt:v1`]);
      assert.notEqual(r.code, 0);
      assert.match(
        r.stderr,
        /config of ".*spoilt:v1" is refused: its bytes .* have the digest sha256:[0-9a-f]+, not sha256:/,
      );
      assert.match(r.stderr, /partial blob was removed/);
    } finally {
      await p.stop();
    }
    assert.deepEqual(fs.readdirSync(t.path('var/lib/jaula/images/blobs/.partial')), []);
    assert.equal(stored().length, n, 'no layer stored');
    assert.equal(t.jaula(['image', 'inspect', `${p.host}/spoilt:v1`]).code, 4);
  });

  it("serves an application image's command on its port, suggested as --forward", async () => {
    const web = pushed('web', [
      {
        layers: [
          base,
          layerTar([
            { path: 'www', type: 'dir' },
            { path: 'www/index.html', data: 'hello from an image\n' },
          ]),
        ],
        config: { Cmd: ['/bin/httpd', '-f', '-p', '8080', '-h', '/www'], ExposedPorts: { '8080/tcp': {} } },
      },
    ]);
    makeNetwork(t, 'inet');
    const port = freePort();
    const r = t.ok([
      'build',
      'w1',
      '-m',
      'oci',
      '--interface',
      'eth0=inet:auto',
      '--forward',
      `127.0.0.1:${port}:8080`,
      '--',
      '-i',
      web,
    ]);
    assert.match(r.stderr, /exposes 8080\/tcp: forward it from the host with --forward HOSTPORT:8080\/tcp/);
    t.ok(['start', 'w1']);
    try {
      let body = '';
      await t.until('the guest answers', () => {
        body = spawnSync('curl', ['-s', '-m', '2', `http://127.0.0.1:${port}/index.html`], {
          encoding: 'utf8',
        }).stdout;
        return body.length > 0;
      });
      assert.equal(body, 'hello from an image\n');
    } finally {
      t.ok(['stop', 'w1']);
    }
  });

  it('publishes a stopped guest (jaula image push) that skopeo copies and a pull gets back: every file, owner, mode and xattr', async () => {
    const src = pushed('pbase', [
      {
        layers: [
          base,
          layerTar([
            { path: 'etc/gone', data: 'g\n' },
            { path: 'opq', type: 'dir' },
            { path: 'opq/old', data: 'o\n' },
          ]),
        ],
        config: SLEEP,
      },
    ]);
    t.ok(['build', 'p1', '-m', 'oci', '-q', '--', '-i', src]);
    t.ok(['start', 'p1']);
    const script =
      'mkdir -p /srv && echo secret > /srv/f && chown 1234:2345 /srv/f && chmod 4750 /srv/f && ln /srv/f /srv/hard && ' +
      'ln -s ../etc/passwd /srv/link && rm /etc/gone && rm -rf /opq && mkdir /opq && echo n > /opq/new && mkdir -m 1777 /srv/tmp';
    assert.equal(t.sh('p1', script).code, 0);
    t.ok(['stop', 'p1']);
    spawnSync('setfattr', ['-n', 'user.note', '-v', 'kept', join(t.guestRoot('p1'), 'srv/f')]);
    const listing = (g: string): string =>
      t.sh(
        g,
        'find / -xdev | sort | while read f; do stat -c "%n %f %u:%g %s %h %N" "$f"; done; md5sum /srv/f /etc/passwd',
      ).stdout;
    t.ok(['start', 'p1']);
    const before = listing('p1');
    t.ok(['stop', 'p1']);
    const r = t.ok(['image', 'push', 'p1', `${reg.host}/pushed:v1`]);
    assert.match(
      r.stderr,
      /layer 1\/3: mounted from ".*" \(the registry has it\)/,
      'the base layer is not sent again',
    );
    assert.match(r.stderr, /layer 2\/3: mounted from "pbase"/, "nor the image's own");
    assert.match(r.stderr, /layer 3\/3: sent/, "the guest's changes are a new layer");
    const copy = spawnSync(
      'skopeo',
      [
        'copy',
        '--quiet',
        '--src-tls-verify=false',
        '--dest-tls-verify=false',
        `docker://${reg.host}/pushed:v1`,
        `docker://${reg.host}/copied:v1`,
      ],
      { encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(copy.status, 0, copy.stderr);
    t.ok(['image', 'pull', `${reg.host}/copied:v1`]);
    const i = JSON.parse(t.ok(['image', 'inspect', `${reg.host}/copied:v1`, '--format', 'json']).stdout) as {
      layers: { layer: string }[];
      cmd: string[];
    };
    assert.deepEqual(i.cmd, ['/bin/sleep', '100000']);
    const top = t.path('var/lib/jaula/layers', i.layers[2]?.layer ?? '', 'tree');
    const x = spawnSync('getfattr', ['--only-values', '-n', 'user.note', join(top, 'srv/f')], {
      encoding: 'utf8',
    });
    assert.equal(x.stdout, 'kept', 'the xattr came back');
    t.ok(['build', 'p2', '-m', 'oci', '-q', '--', '-i', `${reg.host}/copied:v1`]);
    t.ok(['start', 'p2']);
    try {
      const after = listing('p2');
      const strip = (s: string): string =>
        s.replace(/^\/(proc|sys|dev|run|tmp|etc\/hostname|etc\/hosts|etc\/mtab) .*$/gm, ''); // (mounts, jaula's own files)
      assert.equal(strip(after), strip(before));
      assert.doesNotMatch(after, /^\/etc\/gone /m, 'the whiteout came back as one');
      assert.match(after, /^\/opq\/new /m);
      assert.doesNotMatch(after, /^\/opq\/old /m, 'the opaque directory came back as one');
    } finally {
      t.ok(['stop', 'p2']);
    }
    t.ok(['delete', 'p1']);
    t.ok(['delete', 'p2']);
  });

  it('refuses to delete an image a guest uses; once unused, its own layers go and shared ones stay', () => {
    const r = t.jaula(['image', 'delete', multi]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /is used by guest "m1".*delete it first/);
    t.ok(['delete', 'm1']);
    const n = layersDir().length;
    t.ok(['image', 'delete', multi]);
    assert.equal(layersDir().length, n - 2, 'its two own layers are removed, the shared base stays');
    assert.deepEqual(fs.readdirSync(t.path('var/lib/jaula/reflink/images')), [], "the pool's copy goes too");
    assert.equal(t.jaula(['image', 'inspect', multi]).code, 4);
  });
});
