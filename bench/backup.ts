/**
 * bench/backup: `jaula backup` and `jaula restore` of a Debian-sized guest (the debootstrap
 * cache's bookworm minbase, as tests/debian.test.ts makes it), in one run, page cache warm,
 * beside `tar --xattrs -c | zstd` (zstd -3, its default, all cores) of the same tree:
 *
 *   1. a dir guest (its whole tree is its own): archive size and time, and restore time;
 *   2. an overlay guest on that template as a layer, with 20 MiB of its own changes: a full
 *      backup (layer + own files; its first computes the layer's digest, kept after), and the same guest backed up for a receiver that has its
 *      layer (migration's `have`, through the stream API: core/archive.ts exportGuest);
 *   3. a repeated backup of the unchanged overlay guest for that receiver: bytes sent as a share
 *      of the guest's size (the aim: under 1%);
 *   4. increments of the dir guest (`jaula backup --from SNAP`) beside GNU tar's own
 *      (--listed-incremental, level 0 then 1): unchanged since the snapshot, then after 20 MiB
 *      of writes; and the restore of the chain (full archive of the snapshot + increment).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Scratch, debianTarball, must, table } from './lib.js';

const s = new Scratch();
process.env['JAULA_ROOT'] = s.root; // for the stream API, in this process
const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
const secs = (ms: number): string => (ms / 1000).toFixed(2);

function wall(argv: string[], env: NodeJS.ProcessEnv = s.env): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0] as string, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${String(r.stderr)}`);
  return ms;
}

/** Bytes of a tree's files (apparent sizes, each inode once). */
const treeBytes = (dir: string): number =>
  Number(must(['du', '-s', '-x', '--apparent-size', '--block-size=1', dir]).split('\t')[0]);

/** Bytes the stream API writes for `name` when the receiver has every layer. */
async function bytesForReceiverWithLayers(name: string): Promise<{ bytes: number; ms: number }> {
  const { exportGuest } = await import('../src/core/archive.js');
  let bytes = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      cb();
    },
  });
  const t0 = process.hrtime.bigint();
  await exportGuest(name, sink, { have: () => true });
  return { bytes, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

async function main(): Promise<void> {
  const tarball = debianTarball('bench/backup');
  s.jaula(['template', 'import', tarball, 'deb', '-q']);
  s.jaula(['build', 'dirdeb', '-m', 'template', '-q', '--storage', 'dir', '--', '-t', 'deb']);
  s.jaula(['build', 'ovdeb', '-m', 'template', '-q', '--storage', 'overlay', '--', '-t', 'deb']);
  const upper = join(s.root, 'var/lib/jaula/guests/ovdeb/upper');
  fs.mkdirSync(join(upper, 'srv'), { recursive: true });
  // 20 MiB of its own in 200 files: hex text (compresses about 2:1, as logs and configs do).
  for (let i = 0; i < 200; i++)
    fs.writeFileSync(join(upper, 'srv', `f${i}.log`), randomBytes(50 << 10).toString('hex') + '\n');
  const tree = join(s.root, 'var/lib/jaula/guests/dirdeb/rootfs');
  const size = treeBytes(tree);
  const rows: (string | number)[][] = [];

  const peer = join(s.root, 'peer.tar.zst');
  const peerMs = wall(
    ['sh', '-c', `tar --xattrs -c -C "${tree}" . | zstd -q -T0 -3 > "${peer}"`],
    process.env,
  );
  rows.push(['tar --xattrs -c | zstd, dir guest', mib(size), mib(fs.statSync(peer).size), secs(peerMs), '-']);

  const a = join(s.root, 'dirdeb.jaula');
  const bMs = wall(s.jaulaArgv(['backup', 'dirdeb', '--to', a, '-q']));
  const rMs = wall(s.jaulaArgv(['restore', a, '--name', 'dirdeb2', '-q']));
  rows.push(['jaula backup / restore, dir guest', mib(size), mib(fs.statSync(a).size), secs(bMs), secs(rMs)]);

  const ovSize = size + treeBytes(upper);
  const o = join(s.root, 'ovdeb.jaula');
  const oMs = wall(s.jaulaArgv(['backup', 'ovdeb', '--to', o, '-q']));
  const oRMs = wall(s.jaulaArgv(['restore', o, '--name', 'ovdeb2', '-q']));
  rows.push([
    'jaula backup / restore, overlay guest (layer in)',
    mib(ovSize),
    mib(fs.statSync(o).size),
    secs(oMs),
    `${secs(oRMs)} (layer here)`,
  ]);

  const first = await bytesForReceiverWithLayers('ovdeb');
  rows.push(['  the same, receiver has the layer', mib(ovSize), mib(first.bytes), secs(first.ms), '-']);
  fs.rmSync(join(upper, 'srv'), { recursive: true }); // the guest as built: nothing changed since
  const again = await bytesForReceiverWithLayers('ovdeb');
  const share = ((100 * again.bytes) / ovSize).toFixed(3);
  rows.push([
    `  unchanged guest, receiver has the layer (${share}%)`,
    mib(size),
    mib(again.bytes),
    secs(again.ms),
    '-',
  ]);

  // 4. Increments: the dir guest's snapshot, its archive, then increments from it.
  s.jaula(['snapshot', 'create', 'dirdeb', 's1']);
  const full = join(s.root, 's1.jaula');
  const fMs = wall(s.jaulaArgv(['backup', 'dirdeb', '--snapshot', 's1', '--to', full, '-q']));
  rows.push([
    'jaula backup --snapshot s1, dir guest (full)',
    mib(size),
    mib(fs.statSync(full).size),
    secs(fMs),
    '-',
  ]);
  const snar = join(s.root, 'tar.snar');
  const tar0 = join(s.root, 'level0.tar.zst');
  const t0Ms = wall(
    [
      'sh',
      '-c',
      `tar --xattrs --listed-incremental="${snar}" -c -C "${tree}" . | zstd -q -T0 -3 > "${tar0}"`,
    ],
    process.env,
  );
  rows.push(['tar --listed-incremental, level 0', mib(size), mib(fs.statSync(tar0).size), secs(t0Ms), '-']);
  const incRow = (label: string, file: string, level: string): void => {
    const ms = wall(s.jaulaArgv(['backup', 'dirdeb', '--from', 's1', '--to', file, '-q']));
    const snar1 = join(s.root, `tar-${level}.snar`);
    fs.copyFileSync(snar, snar1);
    const tarN = join(s.root, `${level}.tar.zst`);
    const tMs = wall(
      [
        'sh',
        '-c',
        `tar --xattrs --listed-incremental="${snar1}" -c -C "${tree}" . | zstd -q -T0 -3 > "${tarN}"`,
      ],
      process.env,
    );
    const share = ((100 * fs.statSync(file).size) / size).toFixed(3);
    rows.push([
      `jaula backup --from s1, ${label} (${share}%)`,
      mib(size),
      mib(fs.statSync(file).size),
      secs(ms),
      '-',
    ]);
    const tShare = ((100 * fs.statSync(tarN).size) / size).toFixed(3);
    rows.push([
      `tar --listed-incremental level 1, ${label} (${tShare}%)`,
      mib(size),
      mib(fs.statSync(tarN).size),
      secs(tMs),
      '-',
    ]);
  };
  incRow('unchanged', join(s.root, 'inc0.jaula'), 'unchanged');
  fs.mkdirSync(join(tree, 'srv'), { recursive: true });
  for (let i = 0; i < 200; i++)
    fs.writeFileSync(join(tree, 'srv', `f${i}.log`), randomBytes(50 << 10).toString('hex') + '\n');
  const inc = join(s.root, 'inc1.jaula');
  incRow('20 MiB written', inc, 'written');
  const cMs = wall(s.jaulaArgv(['restore', full, inc, '--name', 'dirdeb3', '-q']));
  rows.push(['jaula restore FULL INCREMENT (the chain)', mib(treeBytes(tree)), '-', '-', secs(cMs)]);

  console.log(
    `bench/backup: a Debian bookworm minbase guest (${mib(size)} MiB of files), ${new Date().toISOString()}`,
  );
  console.log(table(['what', 'guest MiB', 'archive MiB', 'backup s', 'restore s'], rows));
}

main()
  .catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => s.cleanup());
