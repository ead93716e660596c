import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { GuestFs } from './guestfs.js';

describe('GuestFs: host-side access that cannot leave the guest root', () => {
  const base = fs.mkdtempSync(join(tmpdir(), 'jaula-gfs-'));
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  fs.mkdirSync(join(root, 'etc'), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(join(outside, 'secret'), 'host secret');
  after(() => fs.rmSync(base, { recursive: true, force: true }));

  it('writes through an absolute symlink into the guest, never to the host', () => {
    fs.symlinkSync(outside, join(root, 'evil-abs'));
    fs.mkdirSync(join(root, outside), { recursive: true });
    GuestFs.with(root, (g) => g.writeFile('/evil-abs/hostname', 'x\n'));
    assert.equal(fs.existsSync(join(outside, 'hostname')), false);
    assert.equal(
      fs.readFileSync(join(root, outside, 'hostname'), 'utf8'),
      'x\n',
      'landed at the same path inside the guest',
    );
  });

  it('clamps ".." and relative symlinks at the guest root', () => {
    fs.symlinkSync('../../../../../..' + outside, join(root, 'etc/evil-rel'));
    GuestFs.with(root, (g) => {
      assert.equal(g.readText('/etc/evil-rel/secret'), undefined, 'the host file is not read');
      assert.equal(g.readText('/../../../outside/secret'), undefined);
      g.writeFile('/../../planted', 'x');
    });
    assert.equal(fs.existsSync(join(base, 'planted')), false);
    assert.ok(fs.existsSync(join(root, 'planted')));
  });

  it('replaces a symlink at the final component instead of following it', () => {
    fs.symlinkSync(join(outside, 'secret'), join(root, 'etc/hostname'));
    GuestFs.with(root, (g) => g.writeFile('/etc/hostname', 'guest\n'));
    assert.equal(fs.readFileSync(join(outside, 'secret'), 'utf8'), 'host secret');
    assert.equal(fs.lstatSync(join(root, 'etc/hostname')).isFile(), true);
  });

  it('resolves symlinks the way the guest sees them', () => {
    fs.mkdirSync(join(root, 'usr/sbin'), { recursive: true });
    fs.writeFileSync(join(root, 'usr/sbin/init'), 'x');
    fs.symlinkSync('/usr/sbin/init', join(root, 'init-link'));
    GuestFs.with(root, (g) => {
      assert.equal(g.realpath('/init-link'), '/usr/sbin/init');
      assert.equal(g.realpath('/nope'), undefined);
    });
  });

  it('reads through a relative symlink while the host renames elsewhere (openat2 says EAGAIN then: retried)', async () => {
    // RESOLVE_IN_ROOT gives up a lookup through ".." whenever any rename on the host raced it.
    const spin = join(base, 'spin');
    fs.mkdirSync(spin);
    fs.writeFileSync(join(spin, 'a'), '');
    fs.writeFileSync(join(root, 'etc/target'), 'through the link');
    fs.symlinkSync('../etc/target', join(root, 'etc/rel-link'));
    const renamer = spawn('sh', ['-c', `cd ${spin}; while :; do mv a b; mv b a; done`], {
      stdio: 'ignore',
      detached: true,
    });
    const ended = new Promise((r) => renamer.once('exit', r));
    try {
      let reads = 0;
      GuestFs.with(root, (g) => {
        // (at least 1000 reads and 3 s, however slow the machine: an emulated VM made 959 in 3 s)
        for (const t0 = Date.now(); reads < 1000 || Date.now() - t0 < 3000; reads++)
          assert.equal(g.readText('/etc/rel-link'), 'through the link');
      });
    } finally {
      process.kill(-(renamer.pid as number), 'SIGKILL');
      await ended;
      for (let i = 0; i < 1000; i++) {
        try {
          process.kill(-(renamer.pid as number), 0);
        } catch {
          break;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  });

  it('stays inside while the guest swaps a directory for a symlink to the host, again and again', async () => {
    const race = join(base, 'race');
    const outside2 = join(base, 'outside2');
    fs.mkdirSync(join(race, 'etc'), { recursive: true });
    fs.mkdirSync(outside2);
    // The "guest" swaps /etc between a directory and a link to a host directory as fast as it can.
    const swapper = spawn(
      'sh',
      ['-c', `cd ${race}; while :; do mv etc etc.d; ln -s ${outside2} etc; rm etc; mv etc.d etc; done`],
      // Its own process group, so that its mv/ln/rm children end with it (they would race the
      // removal of the test's directory otherwise).
      { stdio: 'ignore', detached: true },
    );
    const ended = new Promise((r) => swapper.once('exit', r));
    try {
      let wrote = 0;
      const g = new GuestFs(race);
      try {
        for (let i = 0; i < 400; i++) {
          try {
            g.writeFile('/etc/probe', `${i}\n`);
            wrote++;
          } catch {
            /* the directory was away at that moment */
          }
          await new Promise((r) => setImmediate(r));
        }
      } finally {
        g.close();
      }
      assert.ok(wrote > 0, 'some writes happened');
      assert.deepEqual(fs.readdirSync(outside2), [], 'nothing was ever written through the link to the host');
    } finally {
      process.kill(-(swapper.pid as number), 'SIGKILL');
      await ended;
      // Its children (killed too, reaped by init) are gone when the group is (at most 10 s:
      // one that stays makes the after-hook fail).
      for (let i = 0; i < 1000; i++) {
        try {
          process.kill(-(swapper.pid as number), 0);
        } catch {
          break;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  });
});
