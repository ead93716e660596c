/**
 * Bad input gets a clear error, a non-zero exit, and loses nothing: no half-made guest, nothing
 * written outside the guest's own tree. Also: templates in all three formats build guests.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestRoot, buildSkeleton, jaulaBin } from './helpers.js';
import { makeTar, makeTarGz } from './tarwriter.js';

const t = new TestRoot();
after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

/** What exists under the guests' config and data dirs (so a failed build can be seen to leave nothing). */
function guestDirs(): string[] {
  const out: string[] = [];
  for (const d of ['etc/jaula/guests', 'var/lib/jaula/guests']) {
    try {
      out.push(...fs.readdirSync(t.path(d)).map((n) => `${d}/${n}`));
    } catch {
      /* none yet */
    }
  }
  return out.sort();
}

describe('names, contexts and options', () => {
  before(() => buildSkeleton(t, 'good', ['--context', '500']));

  for (const [name, why] of [
    ['a/b', /contains "\/"/],
    ['..', /contains "\.\."/],
    ['x..y', /contains "\.\."/],
    ['-lead', /not valid/],
    ['x'.repeat(65), /65 characters long/],
    ['bad\nname', /control characters/],
    ['sp ace', /not valid/],
  ] as const) {
    it(`refuses the name ${JSON.stringify(name.length > 20 ? name.slice(0, 8) + '...' : name)}`, () => {
      const before = guestDirs();
      const r = t.jaula(['build', name, '-m', 'skeleton']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, why);
      assert.deepEqual(guestDirs(), before);
    });
  }

  it('refuses a duplicate name and leaves the existing guest as it was', () => {
    const cfg = fs.readFileSync(t.path('etc/jaula/guests/good/config.toml'), 'utf8');
    const r = t.jaula(['build', 'good', '-m', 'skeleton']);
    assert.equal(r.code, 5);
    assert.match(r.stderr, /already exists/);
    assert.equal(fs.readFileSync(t.path('etc/jaula/guests/good/config.toml'), 'utf8'), cfg);
    assert.ok(fs.existsSync(`${t.guestRoot('good')}/bin/busybox`));
  });

  it('refuses a duplicate context ID, and hands out the next free one by default', () => {
    const r = t.jaula(['build', 'other', '-m', 'skeleton', '--context', '500']);
    assert.equal(r.code, 5);
    assert.match(r.stderr, /context ID 500 is already used by guest "good"/);
    assert.equal(fs.existsSync(t.path('etc/jaula/guests/other')), false);
    t.ok(['build', 'auto1', '-m', 'skeleton', '-q']);
    t.ok(['build', 'auto2', '-m', 'skeleton', '-q']);
    const list = JSON.parse(t.ok(['list', '--format', 'json']).stdout) as { name: string; context: number }[];
    const ctx = new Map(list.map((g) => [g.name, g.context]));
    assert.equal(ctx.get('auto1'), 100);
    assert.equal(ctx.get('auto2'), 101);
  });

  it('refuses out-of-range contexts, unknown init styles, methods and bad interfaces', () => {
    const before = guestDirs();
    const cases: [string[], RegExp][] = [
      [['--context', '1'], /out of range/],
      [['--context', '70000'], /out of range/],
      [['--initstyle', 'upstart'], /Unknown init style "upstart"/],
      [['--interface', 'eth0:300.1.1.1/24'], /not an IPv4 or IPv6 address/],
      [['--interface', '10.0.0.1/33'], /prefix length/],
      [['--interface', 'eth0:10.0.0.1'], /no prefix length/],
      [['--hostname', 'bad_host!'], /hostname/],
    ];
    for (const [extra, re] of cases) {
      const r = t.jaula(['build', 'x1', '-m', 'skeleton', ...extra]);
      assert.equal(r.code, 2, `${extra.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
    const m = t.jaula(['build', 'x1', '-m', 'floppy']);
    assert.equal(m.code, 2);
    assert.match(m.stderr, /Unknown build method "floppy"/);
    assert.deepEqual(guestDirs(), before);
  });
});

describe('lifecycle misuse', () => {
  it('refuses to stop a stopped guest, to start a missing one, and to delete a running one', () => {
    const s = t.jaula(['stop', 'good']);
    assert.equal(s.code, 6);
    assert.match(s.stderr, /is not running/);
    const m = t.jaula(['start', 'nosuch']);
    assert.equal(m.code, 4);
    assert.match(m.stderr, /There is no guest "nosuch"/);
    t.ok(['start', 'good']);
    const d = t.jaula(['delete', 'good']);
    assert.equal(d.code, 6);
    assert.match(d.stderr, /Cannot delete guest "good": it is running \(stop it first, or use --force\)/);
    assert.equal(t.jaula(['status', 'good']).code, 0, 'still running');
    t.ok(['delete', '--force', 'good']);
    assert.equal(fs.existsSync(t.path('etc/jaula/guests/good')), false);
    assert.equal(fs.existsSync(t.path('var/lib/jaula/guests/good')), false);
    assert.deepEqual(t.leftovers(), []);
  });

  it('refuses unknown commands and options with usage errors', () => {
    assert.equal(t.jaula(['frobnicate']).code, 2);
    const r = t.jaula(['stop', 'x', '--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Unknown option "--bogus"/);
  });

  it('reports a broken config file clearly', () => {
    buildSkeleton(t, 'broken');
    fs.appendFileSync(t.path('etc/jaula/guests/broken/config.toml'), 'colour = "blue"\n');
    const r = t.jaula(['start', 'broken']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown setting "colour"/);
  });
});

describe('templates', () => {
  const tpl = t.path('tpl');
  before(() => {
    fs.mkdirSync(tpl);
    buildSkeleton(t, 'src');
    const root = t.guestRoot('src');
    fs.writeFileSync(`${root}/etc/template-marker`, 'from the template\n');
    fs.linkSync(`${root}/etc/template-marker`, `${root}/etc/template-hardlink`);
    const xa = spawnSync('setfattr', ['-n', 'user.jaula', '-v', 'kept', `${root}/etc/template-marker`], {
      encoding: 'utf8',
    });
    assert.equal(xa.status, 0, `setfattr on the template's source: ${xa.stderr}`);
    for (const [ext, flag] of [
      ['tar', []],
      ['tar.gz', ['--gzip']],
      ['tar.zst', ['--zstd']],
    ] as const) {
      const r = spawnSync('tar', [
        '-c',
        ...flag,
        '--xattrs',
        '--xattrs-include=*',
        '-f',
        `${tpl}/base.${ext}`,
        '-C',
        root,
        '.',
      ]);
      assert.equal(r.status, 0, r.stderr?.toString());
    }
  });

  for (const ext of ['tar', 'tar.gz', 'tar.zst']) {
    it(`builds and starts a guest from a .${ext} template, keeping hard links and xattrs`, () => {
      const name = `from-${ext.replace('.', '-')}`;
      t.ok(['build', name, '-m', 'template', '-q', '--', '-t', `${tpl}/base.${ext}`]);
      const root = t.guestRoot(name);
      assert.equal(fs.readFileSync(`${root}/etc/template-marker`, 'utf8'), 'from the template\n');
      assert.equal(
        fs.statSync(`${root}/etc/template-marker`).ino,
        fs.statSync(`${root}/etc/template-hardlink`).ino,
      );
      assert.equal(fs.readFileSync(`${root}/etc/hostname`, 'utf8'), `${name}\n`, 'adapted: its own hostname');
      const x = spawnSync('getfattr', ['--only-values', '-n', 'user.jaula', `${root}/etc/template-marker`], {
        encoding: 'utf8',
      });
      assert.equal(x.status, 0, `the xattr is kept: ${x.stderr}`);
      assert.equal(x.stdout, 'kept');
      t.ok(['start', name]);
      assert.equal(t.sh(name, 'cat /etc/template-marker').stdout, 'from the template\n');
      t.ok(['stop', name, '--kill']);
    });
  }

  it('refuses a missing template, a corrupt one and a wrong argument form', () => {
    const before = guestDirs();
    const m = t.jaula(['build', 'x2', '-m', 'template', '--', '-t', `${tpl}/nope.tar`]);
    assert.equal(m.code, 4);
    assert.match(m.stderr, /does not exist/);
    fs.writeFileSync(
      `${tpl}/junk.tar.gz`,
      Buffer.from('this is not an archive at all, not even close'.repeat(20)),
    );
    const c = t.jaula(['build', 'x2', '-m', 'template', '--', '-t', `${tpl}/junk.tar.gz`]);
    assert.equal(c.code, 2);
    assert.match(c.stderr, /not a \.tar, \.tar\.gz or \.tar\.zst archive/);
    const gzBad = Buffer.concat([Buffer.from([0x1f, 0x8b]), Buffer.alloc(100, 7)]);
    fs.writeFileSync(`${tpl}/badgz.tar.gz`, gzBad);
    const g = t.jaula(['build', 'x2', '-m', 'template', '--', '-t', `${tpl}/badgz.tar.gz`]);
    assert.equal(g.code, 2, g.stderr);
    const u = t.jaula(['build', 'x2', '-m', 'template', '--', `${tpl}/base.tar`]);
    assert.equal(u.code, 2);
    assert.match(u.stderr, /-- -t FILE/);
    assert.deepEqual(guestDirs(), before);
  });

  const hostile: [string, Buffer, RegExp][] = [
    [
      'dot-dot',
      makeTar([
        { name: 'etc/', type: 'dir' },
        { name: '../../../../escaped-dotdot', data: 'x' },
      ]),
      /contains "\.\."/,
    ],
    ['absolute', makeTarGz([{ name: '/tmp/escaped-absolute', data: 'x' }]), /absolute path/],
    [
      'symlink then write through it',
      makeTar([
        { name: 'etc', type: 'symlink', linkname: '/tmp' },
        { name: 'etc/escaped-symlink', data: 'x' },
      ]),
      /written through the symlink "etc"/,
    ],
    [
      'relative symlink out, then write',
      makeTar([
        { name: 'a', type: 'dir' },
        { name: 'a/up', type: 'symlink', linkname: '../../../../../tmp' },
        { name: 'a/up/escaped-rel', data: 'x' },
      ]),
      /through the symlink "a\/up"/,
    ],
    [
      'hard link out of the tree',
      makeTar([{ name: 'passwd', type: 'hardlink', linkname: '../../../../etc/passwd' }]),
      /contains "\.\."/,
    ],
    [
      'hard link to an absolute path',
      makeTar([{ name: 'passwd', type: 'hardlink', linkname: '/etc/passwd' }]),
      /absolute path/,
    ],
  ];
  for (const [what, data, re] of hostile) {
    it(`refuses a hostile template (${what}) and writes nothing outside`, () => {
      const file = `${tpl}/hostile.tar${data[0] === 0x1f ? '.gz' : ''}`;
      fs.writeFileSync(file, data);
      const before = guestDirs();
      const r = t.jaula(['build', 'evil', '-m', 'template', '--', '-t', file]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, re);
      assert.deepEqual(guestDirs(), before, 'no half-made guest');
      for (const f of [
        '/tmp/escaped-absolute',
        '/tmp/escaped-symlink',
        '/tmp/escaped-rel',
        '/escaped-dotdot',
        t.path('escaped-dotdot'),
      ])
        assert.equal(fs.existsSync(f), false, `${f} was not written`);
    });
  }
});

describe('interrupted and failed builds', () => {
  it('removes what a failed debootstrap made', () => {
    const before = guestDirs();
    const r = t.jaula(
      ['build', 'dbfail', '-m', 'debootstrap', '--', '-d', 'bookworm', '-m', `file://${t.path('no-mirror')}`],
      { env: { JAULA_CACHE_DIR: t.path('cache') } },
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /debootstrap failed/);
    assert.deepEqual(guestDirs(), before);
    assert.deepEqual(t.mounts(), []);
  });

  it('removes a guest whose build was killed (kill -9) at the next build', async () => {
    // A large template keeps the build busy long enough to kill it.
    const big = t.path('tpl/big.tar');
    const dir = t.path('tpl/bigtree');
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; i < 8; i++) fs.writeFileSync(join(dir, `blob${i}`), Buffer.alloc(32 << 20, i + 1));
    assert.equal(spawnSync('tar', ['-cf', big, '-C', dir, '.']).status, 0);
    const child = spawn(process.execPath, [jaulaBin, 'build', 'killed', '-m', 'template', '--', '-t', big], {
      env: t.env,
      stdio: 'ignore',
    });
    await t.until(
      'the build to reserve its guest',
      () => fs.existsSync(t.path('etc/jaula/guests/killed/.building')),
      30_000,
    );
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    assert.ok(
      !JSON.parse(t.ok(['list', '--format', 'json']).stdout).some(
        (g: { name: string }) => g.name === 'killed',
      ),
      'a half-built guest is not listed',
    );
    t.ok(['build', 'after-kill', '-m', 'skeleton', '-q']);
    assert.equal(fs.existsSync(t.path('etc/jaula/guests/killed')), false, 'the leftover config was removed');
    assert.equal(
      fs.existsSync(t.path('var/lib/jaula/guests/killed')),
      false,
      'the leftover tree was removed',
    );
    const again = t.jaula(['build', 'killed', '-m', 'skeleton', '-q']);
    assert.equal(again.code, 0, 'the name is free again');
  });
});
