/**
 * Hostile images are hostile templates: every layer is checked member by member before anything
 * is written (path traversal, absolute paths, writes through symlinks, whiteouts out of their
 * layer or through a symlink, hard links out of the tree, size and entry bounds, digests that do
 * not match), refused with the member named; nothing lands outside the store, no layer is
 * stored, no blob kept. Device nodes are stored but refused for an unprivileged guest. Imports
 * from files: an OCI layout directory, an oci-archive, a docker save archive.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestRoot } from './helpers.js';
import { busyboxMembers, layerTar, ociLayout, type Member } from './ocikit.js';

const t = new TestRoot();
after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

const base = layerTar(busyboxMembers());
const SLEEP = { Cmd: ['/bin/sleep', '100000'] };
const lib = (...p: string[]): string => t.path('var/lib/jaula', ...p);
const ls = (d: string): string[] => (fs.existsSync(d) ? fs.readdirSync(d) : []);
const outside = t.path('outside');
let n = 0;

/** Import an image whose top layer is `members`; its result. */
function importLayer(members: Member[], extra: string[] = []): { code: number; stderr: string } {
  const dir = ociLayout(t.path(`h${++n}`), 'v1', [{ layers: [base, layerTar(members)], config: SLEEP }]);
  return t.jaula(['image', 'import', dir, '--name', `localhost/h${n}:v1`, ...extra]);
}

function refused(members: Member[], why: RegExp, extra: string[] = []): void {
  const layers = ls(lib('layers')).length;
  const blobs = ls(lib('images/blobs/sha256')).length;
  const r = importLayer(members, extra);
  assert.notEqual(r.code, 0, 'refused');
  assert.match(r.stderr, why);
  assert.ok(!fs.existsSync(outside), 'nothing written outside the store');
  assert.equal(ls(lib('layers')).length, layers, 'no layer stored, no leftover');
  assert.equal(ls(lib('images/blobs/sha256')).length, blobs, 'the refused blob is not kept');
  assert.equal(t.jaula(['image', 'inspect', `localhost/h${n}:v1`]).code, 4, 'no image recorded');
}

describe('hostile images', () => {
  before(() => {
    // The base layer every case stacks on, stored first (a refused case stores nothing more).
    const dir = ociLayout(t.path('base'), 'v1', [{ layers: [base], config: SLEEP }]);
    t.ok(['image', 'import', dir, '--name', 'localhost/base:v1']);
  });

  it('refuses an absolute path', () =>
    refused([{ path: `${outside}/x`, data: 'x' }], /the member ".*outside\/x" has an absolute path/));

  it('refuses a path that climbs out ("..")', () =>
    refused(
      [{ path: 'a/../../../outside', data: 'x' }],
      /the member "a\/\.\.\/\.\.\/\.\.\/outside" contains "\.\."/,
    ));

  it('refuses a whiteout that escapes its layer (../.wh.x)', () =>
    refused([{ path: '../.wh.outside' }], /the member "\.\.\/\.wh\.outside" contains "\.\."/));

  it('refuses a write through a symlink the layer made', () =>
    refused(
      [
        { path: 'lnk', type: 'symlink', linkname: t.root },
        { path: 'lnk/outside', data: 'x' },
      ],
      /the member "lnk\/outside" would be written through the symlink "lnk"/,
    ));

  it('refuses a whiteout through a symlink', () =>
    refused(
      [{ path: 'lnk', type: 'symlink', linkname: t.root }, { path: 'lnk/.wh.outside' }],
      /the member "lnk\/\.wh\.outside" would be written through the symlink "lnk"/,
    ));

  it('refuses a hard link out of the tree', () =>
    refused(
      [{ path: 'h', type: 'hardlink', linkname: '../../../etc/shadow' }],
      /the member "\.\.\/\.\.\/\.\.\/etc\/shadow" contains "\.\."/,
    ));

  it('refuses a whiteout that is not a regular file', () =>
    refused(
      [{ path: 'etc/.wh.passwd', type: 'symlink', linkname: '/etc/shadow' }],
      /the member "etc\/\.wh\.passwd" is a whiteout that is not a regular file/,
    ));

  it('refuses a layer larger than the bound, or with more members', () => {
    refused([{ path: 'big', data: Buffer.alloc(8192, 1) }], /more than 4096 bytes/, [
      '--max-layer-size',
      '4K',
    ]);
    refused(
      [1, 2, 3, 4].map((i): Member => ({ path: `f${i}`, data: 'x' })),
      /more than 3 members/,
      ['--max-layer-files', '3'],
    );
  });

  it('refuses a blob whose bytes are not its digest, a config that is not its digest, a layer that is not its diff ID', () => {
    const dir = ociLayout(t.path('bad-blob'), 'v1', [
      { layers: [layerTar([{ path: 'a', data: 'a' }])], config: SLEEP },
    ]);
    const m = JSON.parse(fs.readFileSync(join(dir, 'index.json'), 'utf8')) as {
      manifests: { digest: string }[];
    };
    const man = JSON.parse(
      fs.readFileSync(join(dir, 'blobs/sha256', m.manifests[0]?.digest.slice(7) ?? ''), 'utf8'),
    ) as { layers: { digest: string }[]; config: { digest: string } };
    const layer = join(dir, 'blobs/sha256', man.layers[0]?.digest.slice(7) ?? '');
    const good = fs.readFileSync(layer);
    fs.writeFileSync(layer, Buffer.concat([good.subarray(0, 20), Buffer.from('spoilt'), good.subarray(26)]));
    const r = t.jaula(['image', 'import', dir, '--name', 'localhost/bad:v1']);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /layer 1\/1 of ".*bad-blob" is refused: its digest is sha256:[0-9a-f]{64}, not sha256:/,
    );
    fs.writeFileSync(layer, good);
    const cfgFile = join(dir, 'blobs/sha256', man.config.digest.slice(7));
    fs.writeFileSync(cfgFile, fs.readFileSync(cfgFile, 'utf8').replace('sleep', 'sleeq'));
    const r2 = t.jaula(['image', 'import', dir, '--name', 'localhost/bad:v1']);
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /config is refused: its digest is sha256:[0-9a-f]{64}, not sha256:/);
    const zero = `sha256:${'0'.repeat(64)}`;
    const lie = ociLayout(t.path('bad-diffid'), 'v1', [
      { layers: [layerTar([{ path: 'b', data: 'b' }])], config: SLEEP, diffIds: [zero] },
    ]);
    const r3 = t.jaula(['image', 'import', lie, '--name', 'localhost/bad:v1']);
    assert.notEqual(r3.code, 0);
    assert.match(
      r3.stderr,
      new RegExp(
        `layer 1/1 of ".*bad-diffid" is refused: its content's digest is sha256:[0-9a-f]{64}, not ${zero}`,
      ),
    );
    assert.equal(ls(lib('layers')).filter((x) => x.startsWith('.')).length, 0, 'no half-made layer');
    assert.equal(t.jaula(['image', 'inspect', 'localhost/bad:v1']).code, 4);
  });

  it('refuses a hard link through a symlink the layer made', () =>
    refused(
      [
        { path: 'root', type: 'symlink', linkname: '/' },
        { path: 'h', type: 'hardlink', linkname: 'root/etc/shadow' },
      ],
      /the hard link "h" points at "root\/etc\/shadow", through a symlink/,
    ));

  it('stores device nodes, but refuses them to an unprivileged guest, naming the member', () => {
    const r = importLayer([
      { path: 'dev', type: 'dir' },
      { path: 'dev/mem2', type: 'char', dev: [1, 1], mode: 0o600 },
    ]);
    assert.equal(r.code, 0, r.stderr);
    const b = t.jaula(['build', 'dv', '-m', 'oci', '--', '-i', `localhost/h${n}:v1`]);
    assert.notEqual(b.code, 0);
    assert.match(
      b.stderr,
      /refused for an unprivileged guest: its layer sha256-[0-9a-f]+ holds 1 device node \("dev\/mem2"/,
    );
    assert.ok(!fs.existsSync(t.path('etc/jaula/guests/dv')), 'no half-made guest');
  });
});

describe('images from files', () => {
  const top = layerTar([
    { path: 'hello', data: 'from a file\n', mode: 0o600, uid: 7, gid: 8, xattrs: { 'user.note': 'kept' } },
  ]);

  function check(ref: string): void {
    const i = JSON.parse(t.ok(['image', 'inspect', ref, '--format', 'json']).stdout) as {
      layers: { layer: string }[];
    };
    const f = join(lib('layers', i.layers[1]?.layer ?? '', 'tree', 'hello'));
    const st = fs.statSync(f);
    assert.equal(fs.readFileSync(f, 'utf8'), 'from a file\n');
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o600, 7, 8]);
    const x = spawnSync('getfattr', ['--only-values', '-n', 'user.note', f], { encoding: 'utf8' });
    assert.equal(x.stdout, 'kept');
  }

  it('imports an OCI layout directory and an oci-archive', () => {
    const dir = ociLayout(t.path('layout'), 'v1', [{ layers: [base, top], config: SLEEP }]);
    t.ok(['image', 'import', dir, '--name', 'localhost/fromdir:v1']);
    check('localhost/fromdir:v1');
    const tar = t.path('layout.tar');
    assert.equal(spawnSync('tar', ['-C', dir, '-cf', tar, '.']).status, 0);
    t.ok(['image', 'import', tar, '--name', 'localhost/fromtar:v1']);
    check('localhost/fromtar:v1');
  });

  it('imports a docker save archive (its RepoTags name it)', () => {
    const d = t.path('dsave');
    fs.mkdirSync(d);
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    const layers = [base, top].map((l) => {
      fs.mkdirSync(join(d, sha(l)));
      fs.writeFileSync(join(d, sha(l), 'layer.tar'), l);
      return `${sha(l)}/layer.tar`;
    });
    const cfg = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: SLEEP,
        rootfs: { type: 'layers', diff_ids: [base, top].map((l) => `sha256:${sha(l)}`) },
      }),
    );
    fs.writeFileSync(join(d, `${sha(cfg)}.json`), cfg);
    fs.writeFileSync(
      join(d, 'manifest.json'),
      JSON.stringify([{ Config: `${sha(cfg)}.json`, RepoTags: ['saved/app:2'], Layers: layers }]),
    );
    const tar = t.path('dsave.tar');
    assert.equal(spawnSync('tar', ['-C', d, '-cf', tar, '.']).status, 0);
    const r = t.ok(['image', 'import', tar]);
    assert.match(r.stdout, /Imported image "docker.io\/saved\/app:2"/);
    check('saved/app:2');
    t.ok(['build', 'fromsave', '-m', 'oci', '-q', '--', '-i', 'saved/app:2']);
    t.ok(['start', 'fromsave']);
    try {
      assert.equal(t.sh('fromsave', 'cat /hello').stdout, 'from a file\n');
    } finally {
      t.ok(['delete', '--force', 'fromsave']);
    }
  });
});
