/**
 * bench/disk: what a per-guest disk limit costs. Three jaula instances side by side, one guest
 * at a time built, started, written to, stopped and deleted, BENCH_N (default 10) rounds
 * interleaved:
 *
 *   none   overlay guests on the host's filesystem, no limit
 *   pool   a storage pool (jaula pool create): the guest's files in a btrfs subvolume whose
 *          quota group is its limit (the default limit of every guest)
 *   image  --quota: the guest's files in an ext4 image of its own on a loop device
 *
 * beside what the two mechanisms cost by themselves (btrfs subvolume create + qgroup limit;
 * mkfs.ext4 + mount of a loop image). The write is 256 MiB from /dev/zero with fsync inside the
 * guest (timed from outside, less an empty exec's time). Each round takes the modes in another
 * order.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { N, Scratch, median, must, sh, sleeperSkeleton, table, timeMs } from './lib.js';

const MODES = ['none', 'pool', 'image'] as const;
type Mode = (typeof MODES)[number];

const inst = new Map<Mode, Scratch>(MODES.map((m) => [m, new Scratch()]));
const times = new Map<string, number[]>();
const add = (k: string, v: number): void => {
  const a = times.get(k) ?? [];
  a.push(v);
  times.set(k, a);
};

/** MiB/s of a 256 MiB write with fsync in the guest: the exec's time less an empty exec's. */
function writeMBs(s: Scratch, name: string): number {
  const base = timeMs(s.jaulaArgv(['exec', name, '--', 'true']), { env: s.env });
  const ms = timeMs(
    s.jaulaArgv([
      'exec',
      name,
      '--',
      'sh',
      '-c',
      'dd if=/dev/zero of=/w bs=1M count=256 conv=fsync 2>/dev/null; rm -f /w',
    ]),
    { env: s.env },
  );
  return 256 / ((ms - base) / 1000);
}

const mech = new Scratch();
const btr = join(mech.root, 'btrfs');
try {
  (inst.get('pool') as Scratch).jaula(['pool', 'create', '--size', '4G', '--guest-quota', '1G']);
  // The mechanisms alone: a btrfs filesystem with quota groups; ext4 images of 1 GiB.
  const img = join(mech.root, 'b.img');
  fs.writeFileSync(img, '');
  fs.truncateSync(img, 4 * 2 ** 30);
  must(['mkfs.btrfs', '-q', img]);
  fs.mkdirSync(btr);
  must(['mount', '-o', 'loop', img, btr]);
  must(['btrfs', 'quota', 'enable', btr]);

  for (let i = 0; i < N; i++) {
    for (const mode of [...MODES.slice(i % 3), ...MODES.slice(0, i % 3)]) {
      const s = inst.get(mode) as Scratch;
      const name = `d${i}`;
      const quota = mode === 'image' ? ['--quota', '1G'] : [];
      add(`${mode} build`, timeMs(s.jaulaArgv(sleeperSkeleton(name, quota)), { env: s.env }));
      add(`${mode} start`, timeMs(s.jaulaArgv(['start', name]), { env: s.env }));
      add(`${mode} write`, writeMBs(s, name));
      add(`${mode} stop`, timeMs(s.jaulaArgv(['stop', name, '--kill']), { env: s.env }));
      add(`${mode} delete`, timeMs(s.jaulaArgv(['delete', name]), { env: s.env }));
    }
    const sv = join(btr, `s${i}`);
    add(
      'subvol make',
      timeMs(['sh', '-c', `btrfs subvolume create ${sv} >/dev/null && btrfs qgroup limit 1G ${sv}`]),
    );
    add('subvol delete', timeMs(['btrfs', 'subvolume', 'delete', sv]));
    const im = join(mech.root, `e${i}.img`);
    const mp = join(mech.root, `e${i}`);
    fs.mkdirSync(mp);
    add(
      'ext4 make',
      timeMs([
        'sh',
        '-c',
        `truncate -s 1G ${im} && mkfs.ext4 -q -F -m 0 -E nodiscard,lazy_itable_init=1 ${im} && mount -o loop ${im} ${mp}`,
      ]),
    );
    add('ext4 delete', timeMs(['sh', '-c', `umount ${mp} && rm -f ${im}`]));
  }

  const f = (k: string, digits = 1): string => {
    const v = median(times.get(k) ?? []);
    return Number.isFinite(v) ? v.toFixed(digits) : '-';
  };
  console.log(
    `\nbench/disk: median of ${N} rounds, ms (write: MiB/s, 256 MiB with fsync inside the guest)\n`,
  );
  console.log(
    table(
      ['per-guest disk limit', 'build', 'start', 'write MiB/s', 'stop', 'delete', 'loop devices per guest'],
      [
        [
          'none (host filesystem)',
          f('none build'),
          f('none start'),
          f('none write', 0),
          f('none stop'),
          f('none delete'),
          0,
        ],
        [
          'pool: btrfs subvolume + qgroup',
          f('pool build'),
          f('pool start'),
          f('pool write', 0),
          f('pool stop'),
          f('pool delete'),
          0,
        ],
        [
          '--quota: ext4 image',
          f('image build'),
          f('image start'),
          f('image write', 0),
          f('image stop'),
          f('image delete'),
          1,
        ],
        [
          'mechanism: subvolume create + qgroup limit',
          f('subvol make'),
          '-',
          '-',
          '-',
          f('subvol delete'),
          0,
        ],
        ['mechanism: mkfs.ext4 + loop mount', f('ext4 make'), '-', '-', '-', f('ext4 delete'), 1],
      ],
    ),
  );
} finally {
  const pool = inst.get('pool') as Scratch;
  const list = sh(pool.jaulaArgv(['list', '--format', 'json']), { env: pool.env });
  if (list.code === 0)
    for (const g of JSON.parse(list.out) as { name: string }[])
      sh(pool.jaulaArgv(['delete', '--force', g.name]), { env: pool.env });
  sh(pool.jaulaArgv(['pool', 'delete']), { env: pool.env }); // before its root is removed
  for (const s of inst.values()) s.cleanup();
  sh(['umount', btr]);
  for (const d of fs.existsSync(mech.root) ? fs.readdirSync(mech.root) : [])
    if (/^e\d+$/.test(d)) sh(['umount', join(mech.root, d)]);
  mech.cleanup();
}
