/**
 * native/nsops.c: a guest's namespaces and idmapped binds made in this process (no helper). Real
 * namespaces and mounts, checked from outside with nsenter(1) and stat(2).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MNT_DETACH, native } from './native.js';

const mounted = (p: string): boolean =>
  fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === p);
/** Whether a process in the user namespace bound at `user` may enter the network namespace `net`
 * (setns takes CAP_SYS_ADMIN in the user namespace that owns it: only an owned one lets it in). */
const owns = (user: string, net: string): boolean =>
  spawnSync('nsenter', [`--user=${user}`, 'nsenter', `--net=${net}`, 'true']).status === 0;

describe('namespaces and idmapped binds made without a helper process', () => {
  const base = fs.mkdtempSync(join(tmpdir(), 'jaula-nsops-'));
  fs.chmodSync(base, 0o711); // (the inner nsenter runs as the guest's root, a host uid of the range)
  const p = (n: string): string => join(base, n);
  after(() => {
    for (const n of ['user', 'net', 'hostnet', 'dst', 'user2', 'net2'])
      if (mounted(p(n))) native().umount2(p(n), MNT_DETACH);
    fs.rmSync(base, { recursive: true, force: true });
  });

  it("makes a user namespace and a network namespace it owns, with the guest's ping range", async () => {
    await native().nsCreate(p('user'), 3_000_000, 65536, null, null, 0, -1);
    await native().nsCreate(null, 0, 0, p('user'), p('net'), 0, 65535);
    await native().nsCreate(null, 0, 0, null, p('hostnet'), 0, 2147483647);
    for (const n of ['user', 'net', 'hostnet']) assert.ok(mounted(p(n)), `${n} is bound`);
    const map = execFileSync('nsenter', [`--user=${p('user')}`, 'cat', '/proc/self/uid_map'], {
      encoding: 'utf8',
    });
    assert.deepEqual(map.trim().split(/\s+/), ['0', '3000000', '65536']);
    // Entering a network namespace takes CAP_SYS_ADMIN in the user namespace that owns it.
    assert.ok(owns(p('user'), p('net')), "the guest's user namespace owns its network one");
    assert.ok(!owns(p('user'), p('hostnet')), "a privileged guest's belongs to the host");
    const ping = execFileSync(
      'nsenter',
      [`--net=${p('net')}`, 'cat', '/proc/sys/net/ipv4/ping_group_range'],
      {
        encoding: 'utf8',
      },
    );
    assert.deepEqual(ping.trim().split(/\s+/), ['3000000', '3065535'], "the guest's gids 0-65535 may ping");
    const lo = execFileSync('nsenter', [`--net=${p('net')}`, 'ip', '-o', 'link', 'show', 'lo'], {
      encoding: 'utf8',
    });
    assert.match(lo, /[<,]UP[,>]/);
  });

  it('makes both at once, the network namespace owned by the new user namespace', async () => {
    await native().nsCreate(p('user2'), 3_100_000, 65536, null, p('net2'), 0, 65535);
    assert.ok(owns(p('user2'), p('net2')));
    assert.ok(!owns(p('user'), p('net2')));
  });

  it("binds a tree idmapped: on-disk uid 0 seen as the range's first host uid", async () => {
    fs.mkdirSync(p('src'));
    fs.writeFileSync(join(p('src'), 'f'), 'x');
    fs.mkdirSync(p('dst'));
    await native().idmapMounts(3_000_000, 65536, 0, 0, [p('src'), p('dst')]);
    assert.equal(fs.statSync(join(p('dst'), 'f')).uid, 3_000_000);
    assert.equal(fs.statSync(join(p('src'), 'f')).uid, 0);
  });

  it(
    "makes many at once, on several threads, each child ending (none waits on another call's pipes)",
    { timeout: 30_000 },
    async () => {
      const many = Array.from({ length: 24 }, (_, i) => `m${i}`);
      for (const n of many) fs.mkdirSync(p(`${n}-dst`));
      await Promise.all(
        many.flatMap((n, i) => [
          native().nsCreate(p(`${n}-user`), 3_200_000 + i * 65536, 65536, null, p(`${n}-net`), 0, 65535),
          native().idmapMounts(3_000_000, 65536, 0, 0, [p('src'), p(`${n}-dst`)]),
        ]),
      );
      for (const n of many) {
        assert.ok(owns(p(`${n}-user`), p(`${n}-net`)));
        for (const f of ['user', 'net', 'dst']) await native().umount2(p(`${n}-${f}`), MNT_DETACH);
      }
      const kids = fs.readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim();
      assert.equal(kids, '');
    },
  );

  it('says what failed, and leaves nothing bound', async () => {
    await assert.rejects(native().nsCreate(null, 0, 0, p('no-such-userns'), p('net3'), 0, 1), {
      code: 'ENOENT',
      message: /entering the user namespace/,
    });
    assert.ok(!mounted(p('net3')));
    await assert.rejects(native().nsCreate(p('user3'), 4294967295, 65536, null, p('net4'), 0, 1), {
      code: 'EINVAL',
      message: /bad id range/,
    });
    assert.ok(!mounted(p('user3')) && !mounted(p('net4')));
    await assert.rejects(native().idmapMounts(3_000_000, 65536, 0, 0, [p('nowhere'), p('dst2')]), {
      code: 'ENOENT',
      message: /open_tree ".*nowhere"/,
    });
    // No child of those calls is left behind (each is reaped before the call returns).
    const kids = fs.readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim();
    assert.equal(kids, '');
  });
});
