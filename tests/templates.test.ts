/**
 * Stored templates: save from a stopped guest, export to .tar/.tar.gz/.tar.zst and import again
 * keeping owners, modes, xattrs, hard links, device nodes, fifos and symlinks; hostile archives
 * refused with nothing written; export reads nothing outside the template; delete refused while
 * a guest stacks the template. Layers: a guest's changes saved as a layer (whiteouts kept) and
 * stacked on another guest, added and removed at the next start.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameTree, TestRoot } from './helpers.js';
import { makeTar } from './tarwriter.js';

const t = new TestRoot();
after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

const tree = (name: string): string => t.path('var/lib/jaula/templates', name, 'tree');
const CMD = ['--initstyle', 'cmd', '--cmd', '/bin/sleep 100000'];

const sh = (...argv: string[]): void => {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
};

describe('templates: save, export, import', () => {
  before(() => {
    t.ok(['build', 'tsrc', '-m', 'skeleton', '-q', '--storage', 'dir']);
    const d = join(t.path('var/lib/jaula/guests/tsrc/rootfs'), 'data');
    fs.mkdirSync(join(d, 'sticky'), { recursive: true });
    fs.writeFileSync(join(d, 'owned'), 'owned by 1234:5678\n');
    fs.chownSync(join(d, 'owned'), 1234, 5678);
    fs.chmodSync(join(d, 'owned'), 0o640);
    fs.writeFileSync(join(d, 'suid'), '#!/bin/sh\n');
    fs.chmodSync(join(d, 'suid'), 0o4755);
    fs.chmodSync(join(d, 'sticky'), 0o1777);
    fs.writeFileSync(join(d, 'x'), 'with xattrs\n');
    sh('setfattr', '-n', 'user.k', '-v', 'v', join(d, 'x'));
    sh('setfattr', '-n', 'trusted.t', '-v', '1', join(d, 'x'));
    fs.writeFileSync(join(d, 'hl1'), 'one inode, two names\n');
    fs.linkSync(join(d, 'hl1'), join(d, 'hl2'));
    sh('mknod', join(d, 'null'), 'c', '1', '3');
    sh('mknod', join(d, 'blk'), 'b', '7', '200');
    sh('mkfifo', join(d, 'fifo'));
    fs.symlinkSync('../etc/passwd', join(d, 'rel'));
    fs.symlinkSync('/etc/shadow', join(d, 'abs'));
    sh('truncate', '-s', '10M', join(d, 'sparse'));
  });

  it('saves a stopped guest (and refuses a running one), with progress', () => {
    t.ok(['start', 'tsrc']);
    const r = t.jaula(['template', 'save', 'tsrc', 'full']);
    assert.equal(r.code, 6);
    assert.match(r.stderr, /is running: stop it first/);
    t.ok(['stop', 'tsrc']);
    const s = t.ok(['template', 'save', 'tsrc', 'full']);
    assert.match(s.stdout, /Saved template "full" from guest "tsrc"/);
    assert.match(s.stderr, /Saving guest "tsrc"/);
    assertSameTree(
      t.path('var/lib/jaula/guests/tsrc/rootfs'),
      tree('full'),
      'the template is the guest tree',
    );
    const list = JSON.parse(t.ok(['template', 'list', '--format', 'json']).stdout) as { name: string }[];
    assert.deepEqual(
      list.map((x) => x.name),
      ['full'],
    );
  });

  for (const ext of ['tar', 'tar.gz', 'tar.zst'])
    it(`round-trips through a .${ext}: owners, modes, xattrs, hard links, devices, fifos, symlinks`, () => {
      const file = t.path(`full.${ext}`);
      t.ok(['template', 'export', 'full', file, '-q']);
      const magic = fs.readFileSync(file).subarray(0, 4);
      if (ext === 'tar.gz') assert.equal(magic[0], 0x1f);
      if (ext === 'tar.zst') assert.equal(magic.readUInt32LE(0), 0xfd2fb528);
      const name = `from-${ext.replace('.', '-')}`;
      const r = t.ok(['template', 'import', file, name]);
      assert.match(r.stdout, new RegExp(`Imported template "${name}"`));
      assertSameTree(tree('full'), tree(name), `imported from .${ext}`);
    });

  it('builds guests from a stored template by name, and they see it all', () => {
    // It holds device nodes: privileged guests only.
    const r = t.jaula(['build', 'unpriv', '-m', 'template', '-q', ...CMD, '--', '-t', 'from-tar-zst']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /holds 2 device nodes \(only privileged guests/);
    assert.equal(fs.existsSync(t.path('etc/jaula/guests/unpriv')), false);
    const P = ['-q', '--privileged', ...CMD];
    t.ok(['build', 'ov', '-m', 'template', ...P, '--', '-t', 'from-tar-zst']);
    t.ok(['build', 'pl', '-m', 'template', '--storage', 'dir', ...P, '--', '-t', 'from-tar-zst']);
    for (const g of ['ov', 'pl']) {
      const out = t.ok([
        'run',
        g,
        '--',
        '/bin/sh',
        '-c',
        'stat -c "%a %u:%g %h %F" /data/owned /data/suid /data/hl1 /data/null',
      ]).stdout;
      assert.equal(
        out,
        '640 1234:5678 1 regular file\n4755 0:0 1 regular file\n644 0:0 2 regular file\n644 0:0 1 character special file\n',
        g,
      );
    }
    assert.equal(
      fs.existsSync(t.path('var/lib/jaula/guests/ov/upper/data')),
      false,
      'overlay: nothing copied',
    );
  });

  it('exports only what is inside the template (its symlinks stay symlinks)', () => {
    const list = spawnSync('tar', ['-tvf', t.path('full.tar')], { encoding: 'utf8' }).stdout;
    assert.match(list, /\.\/data\/abs -> \/etc\/shadow/);
    const shadow = spawnSync('tar', ['-xOf', t.path('full.tar'), './data/abs'], { encoding: 'utf8' });
    assert.equal(shadow.stdout, '', "no content of the host's /etc/shadow");
    assert.doesNotMatch(list, /root:/);
  });

  it('refuses hostile archives, writing nothing anywhere', () => {
    const cases: [string, Parameters<typeof makeTar>[0]][] = [
      ['dotdot', [{ name: '../escaped', data: 'x' }]],
      ['absolute', [{ name: '/tmp/escaped-abs', data: 'x' }]],
      [
        'through-symlink',
        [
          { name: 'link', type: 'symlink', linkname: t.path('outside') },
          { name: 'link/escaped', data: 'x' },
        ],
      ],
      ['hardlink-out', [{ name: 'h', type: 'hardlink', linkname: '../../../etc/passwd' }]],
    ];
    fs.mkdirSync(t.path('outside'));
    const before = fs.readdirSync(t.path('var/lib/jaula/templates')).sort();
    for (const [name, members] of cases) {
      const file = t.path(`${name}.tar`);
      fs.writeFileSync(file, makeTar(members));
      const r = t.jaula(['template', 'import', file, name]);
      assert.equal(r.code, 2, `${name}: ${r.stderr}`);
      assert.match(r.stderr, /is refused/);
    }
    assert.deepEqual(
      fs.readdirSync(t.path('var/lib/jaula/templates')).sort(),
      before,
      'no template, no leftovers',
    );
    assert.deepEqual(fs.readdirSync(t.path('outside')), []);
    assert.equal(fs.existsSync(t.path('escaped')), false);
    assert.equal(fs.existsSync('/tmp/escaped-abs'), false);
  });

  it('refuses to delete a template a guest stacks, and deletes it when none does', () => {
    const r = t.jaula(['template', 'delete', 'from-tar-zst']);
    assert.equal(r.code, 6);
    assert.match(r.stderr, /is used by guest "ov"/);
    t.ok(['template', 'delete', 'from-tar']);
    assert.equal(fs.existsSync(t.path('var/lib/jaula/templates/from-tar')), false);
    t.ok(['delete', 'ov']);
    t.ok(['template', 'delete', 'from-tar-zst']);
  });
});

describe('layers', () => {
  const inside = (g: string, cmd: string): string => t.ok(['run', g, '--', '/bin/sh', '-c', cmd]).stdout;
  before(() => {
    // Unprivileged guests: a base without the device nodes.
    for (const d of ['null', 'blk']) fs.rmSync(t.path('var/lib/jaula/guests/tsrc/rootfs/data', d));
    t.ok(['template', 'save', 'tsrc', 'base', '-q']);
    t.ok(['build', 'lb', '-m', 'template', '-q', ...CMD, '--', '-t', 'base']);
    inside('lb', 'mkdir -p /opt && echo tool > /opt/tool && rm /data/x && mkdir /data/newdir');
    t.ok(['template', 'save', 'lb', 'tools', '--changes', '-q']);
    t.ok(['build', 'l1', '-m', 'template', '-q', ...CMD, '--', '-t', 'base']);
  });

  it("saves a guest's own changes as a layer, whiteouts kept", () => {
    const wh = fs.lstatSync(join(tree('tools'), 'data/x'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'a deleted file is a whiteout in the layer');
    assert.equal(fs.readFileSync(join(tree('tools'), 'opt/tool'), 'utf8'), 'tool\n');
    assert.equal(fs.existsSync(join(tree('tools'), 'data/owned')), false, 'only the changes');
  });

  it('stacks a layer at the next start; the guest keeps its own changes over it; removes it again', () => {
    t.ok(['start', 'l1']);
    const a = t.ok(['layer', 'add', 'l1', 'tools']);
    assert.match(a.stdout, /base, tools \(bottom first\).*applies at its next start/s);
    assert.equal(t.sh('l1', 'test -e /opt/tool').code, 1, 'not before the next start');
    t.ok(['stop', 'l1']);
    const rows = JSON.parse(t.ok(['layer', 'list', 'l1', '--format', 'json']).stdout) as { name: string }[];
    assert.deepEqual(
      rows.map((r) => r.name),
      ['(its own changes)', '(hashify)', 'tools', 'base'],
    );
    assert.equal(inside('l1', 'cat /opt/tool'), 'tool\n');
    assert.equal(
      inside('l1', 'test -e /data/x && echo there || echo gone'),
      'gone\n',
      "the layer's whiteout hides it",
    );
    assert.equal(inside('l1', 'cat /data/owned'), 'owned by 1234:5678\n');
    inside('l1', 'echo mine > /opt/tool && rm /data/hl2');
    t.ok(['layer', 'remove', 'l1', 'tools']);
    assert.equal(inside('l1', 'cat /opt/tool'), 'mine\n', 'its own copy stays');
    assert.equal(inside('l1', 'cat /data/x'), 'with xattrs\n', 'back from the base layer');
    assert.equal(inside('l1', 'test -e /data/newdir && echo there || echo gone'), 'gone\n');
    assert.equal(
      inside('l1', 'test -e /data/hl2 && echo there || echo gone'),
      'gone\n',
      'its own whiteout stays',
    );
    assert.equal(t.jaula(['layer', 'remove', 'l1', 'tools']).code, 4);
    t.ok(['template', 'delete', 'tools']);
  });

  it('refuses layers on storage that has none', () => {
    const r = t.jaula(['layer', 'add', 'tsrc', 'full']);
    assert.equal(r.code, 10);
    assert.match(r.stderr, /dir storage, which cannot stack layers/);
    const d = t.jaula(['layer', 'add', 'l1', 'full']);
    assert.equal(d.code, 2);
    assert.match(d.stderr, /holds 2 device nodes/);
  });
});
