/**
 * bench/snapshot: `jaula snapshot create` of a running guest, for a small guest (the busybox
 * skeleton, ~2 MiB) and a large one (the same plus BENCH_SNAP_MIB MiB, default 512, in 1 MiB
 * files), beside the same done by hand, BENCH_N (default 10) rounds interleaved:
 *
 *   pool     jaula snapshot create in a storage pool: a read-only btrfs subvolume snapshot
 *            (the guest frozen for the instant): its command's wall time (a node process's
 *            start included), the operation through jaulad (POST .../snapshots, timed from
 *            this process), and the time the guest was frozen
 *   by hand  btrfs subvolume snapshot -r of a subvolume holding the same files
 *   copy     jaula snapshot create of an overlay guest on the host's ext4 (a plain copy of its
 *            upper, the guest frozen throughout), beside cp -a of the same tree by hand
 *   reflink  cp -a --reflink=always of the same tree on an XFS (reflink=1) filesystem, by hand
 *
 * Each snapshot is deleted after it is timed. The copies of the large guest are slow: they run
 * BENCH_COPY_N (default 3) rounds.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { N, Scratch, median, must, sh, sleeperSkeleton, startDaemon, table, timeMs } from './lib.js';

const MIB = Number(process.env['BENCH_SNAP_MIB'] ?? 512);
const COPY_N = Number(process.env['BENCH_COPY_N'] ?? 3);
const times = new Map<string, number[]>();
const add = (k: string, v: number): void => {
  const a = times.get(k) ?? [];
  a.push(v);
  times.set(k, a);
};
const fill = `mkdir -p /bulk && i=0; while [ $i -lt ${MIB} ]; do dd if=/dev/urandom of=/bulk/f$i bs=1M count=1 2>/dev/null; i=$((i+1)); done; sync`;

const pool = new Scratch();
const plain = new Scratch();
const mech = new Scratch();
const btr = join(mech.root, 'btrfs');
const xfs = join(mech.root, 'xfs');

/** Time `jaula snapshot create` (and read the frozen time it reports), then delete the snapshot. */
function snap(s: Scratch, guest: string, key: string): void {
  const t0 = process.hrtime.bigint();
  const r = sh(s.jaulaArgv(['snapshot', 'create', guest, 'b', '--format', 'json']), { env: s.env });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.code !== 0) throw new Error(`jaula snapshot create ${guest}: ${r.err}`);
  add(`${key} wall`, ms);
  add(`${key} frozen`, (JSON.parse(r.out) as { frozenMs: number }).frozenMs);
  s.jaula(['snapshot', 'delete', guest, 'b']);
}

/** The same through jaulad's API (no process started): the operation's own time. */
async function viaApi(
  e: Awaited<ReturnType<typeof startDaemon>>['engine'],
  guest: string,
  key: string,
): Promise<void> {
  const t0 = process.hrtime.bigint();
  const r = await e.createSnapshot({ name: guest, snapshot: 'a' });
  add(`${key} api`, Number(process.hrtime.bigint() - t0) / 1e6);
  add(`${key} api frozen`, r.frozenMs ?? NaN);
  await e.deleteSnapshot({ name: guest, snapshot: 'a' });
}

function loop(type: 'btrfs' | 'xfs', at: string): void {
  const img = `${at}.img`;
  fs.writeFileSync(img, '');
  fs.truncateSync(img, (MIB * 3 + 512) * 2 ** 20);
  must(type === 'xfs' ? ['mkfs.xfs', '-q', '-f', '-m', 'reflink=1', img] : ['mkfs.btrfs', '-q', '-f', img]);
  fs.mkdirSync(at);
  must(['mount', '-o', 'loop', img, at]);
}

try {
  pool.jaula(['pool', 'create', '--size', `${MIB * 3 + 1024}M`, '--guest-quota', `${MIB * 2 + 512}M`]);
  for (const s of [pool, plain]) {
    for (const g of ['small', 'large']) {
      s.jaula(sleeperSkeleton(g));
      s.jaula(['start', g]);
    }
    s.jaula(['exec', 'large', '--', 'sh', '-c', fill]);
  }
  // The mechanisms by hand, on the large guest's files.
  const upper = join(plain.root, 'var/lib/jaula/guests/large/upper');
  loop('btrfs', btr);
  loop('xfs', xfs);
  must(['btrfs', 'subvolume', 'create', join(btr, 'vol')]);
  must(['cp', '-a', `${upper}/.`, join(btr, 'vol')]);
  must(['cp', '-a', `${upper}/.`, join(xfs, 'src')]);
  must(['sync']);

  const d = await startDaemon(pool);
  for (let i = 0; i < N; i++) {
    for (const g of i % 2 ? ['small', 'large'] : ['large', 'small']) await viaApi(d.engine, g, `pool ${g}`);
  }
  // The CLI then works in its own process (LocalEngine), as without jaulad.
  await d.stop();
  for (let i = 0; i < N; i++) {
    for (const g of i % 2 ? ['small', 'large'] : ['large', 'small']) snap(pool, g, `pool ${g}`);
    const ro = join(btr, `s${i}`);
    add('btrfs -r', timeMs(['btrfs', 'subvolume', 'snapshot', '-r', join(btr, 'vol'), ro]));
    must(['btrfs', 'subvolume', 'delete', ro]);
    snap(plain, 'small', 'copy small');
    if (i < COPY_N) {
      snap(plain, 'large', 'copy large');
      const c = join(plain.root, `cp${i}`);
      add('cp -a', timeMs(['cp', '-a', upper, c]));
      sh(['rm', '-rf', c]);
      const r = join(xfs, `r${i}`);
      add('cp reflink', timeMs(['cp', '-a', '--reflink=always', join(xfs, 'src'), r]));
      sh(['rm', '-rf', r]);
    }
  }

  const f = (k: string): string => {
    const v = median(times.get(k) ?? []);
    return Number.isFinite(v) ? v.toFixed(1) : '-';
  };
  console.log(
    `\nbench/snapshot: median ms over ${N} rounds (copies of the large guest: ${COPY_N}); small guest ~2 MiB, large +${MIB} MiB in ${MIB} files\n`,
  );
  console.log(
    table(
      ['snapshot of a running guest', 'small: command', 'small: frozen', 'large: command', 'large: frozen'],
      [
        [
          'jaula, pool, through jaulad (the operation)',
          f('pool small api'),
          f('pool small api frozen'),
          f('pool large api'),
          f('pool large api frozen'),
        ],
        [
          'jaula, pool (read-only subvolume)',
          f('pool small wall'),
          f('pool small frozen'),
          f('pool large wall'),
          f('pool large frozen'),
        ],
        ['by hand: btrfs subvolume snapshot -r', '-', '-', f('btrfs -r'), '-'],
        [
          'jaula, overlay on ext4 (plain copy)',
          f('copy small wall'),
          f('copy small frozen'),
          f('copy large wall'),
          f('copy large frozen'),
        ],
        ['by hand: cp -a of the upper (ext4)', '-', '-', f('cp -a'), '-'],
        ['by hand: cp -a --reflink=always (XFS)', '-', '-', f('cp reflink'), '-'],
      ],
    ),
  );
} finally {
  // Each step on its own: one that fails (said on stderr) does not keep the others from running.
  const step = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (e) {
      console.error(`cleanup: ${what}: ${(e as Error).message}`);
    }
  };
  for (const s of [pool, plain]) step('guests', () => s.deleteGuests());
  const pd = sh(pool.jaulaArgv(['pool', 'delete']), { env: pool.env });
  if (pd.code !== 0) {
    console.error(`cleanup: jaula pool delete: ${pd.err}`);
    sh(['umount', join(pool.root, 'var/lib/jaula')]);
  }
  for (const d of [btr, xfs]) sh(['umount', d]);
  for (const s of [pool, plain, mech]) step(s.root, () => s.cleanup());
}
