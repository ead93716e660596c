/**
 * bench/image: an OCI image from a registry into guests, jaula beside skopeo + umoci doing the
 * same work, in one run. The bench makes its own image with umoci (a busybox tree and
 * BENCH_IMAGE_MIB MiB, default 100, of random 1 MiB files over 3 gzip'd layers, the third also
 * deleting a file of the second: a whiteout), starts Debian's docker-registry on loopback with a
 * temporary storage directory, pushes the image there with skopeo, and reaches it through a
 * proxy in this process that records every request and counts the bytes of the answers.
 *
 *   cold     BENCH_IMAGE_N rounds (default 3), interleaved, nothing stored before each:
 *            jaula image pull REF, then jaula build NAME -m oci -- -i REF (the guest started
 *            once to check its files);
 *            skopeo copy docker://REF oci:DIR:TAG, then umoci unpack --image DIR:TAG BUNDLE
 *   second   another guest from the stored image, BENCH_N rounds (default 20): jaula's own time
 *            as jaulad's build operation (POST /guests, a job, timed from this process), and the
 *            CLI's wall time beside `node -e 0` (a node process's start); bytes written by it
 *            (du of JAULA_ROOT before and after; jaulad's write_bytes and wchar from /proc/PID/io);
 *            beside a second umoci unpack of the same OCI directory; and a guest on dir storage
 *            (BENCH_IMAGE_N rounds), which holds a copy of the image's files
 *   unchanged  jaula image pull REF again, beside skopeo copy to the same OCI directory: the
 *            requests the registry saw and the bytes it sent
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { startProxy, startRegistry } from '../tests/ocikit.js';
import { N, Scratch, median, must, startDaemon, table } from './lib.js';

const MIB = Number(process.env['BENCH_IMAGE_MIB'] ?? 100);
const COLD = Number(process.env['BENCH_IMAGE_N'] ?? 3);
const s = new Scratch();
const work = join(s.root, 'bench');
fs.mkdirSync(work);
const at = (...p: string[]): string => join(work, ...p);
const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
const kib = (b: number): string => (b / 1024).toFixed(1);

/** Run argv to its end without blocking this process (the proxy lives here); its wall time. */
function run(argv: string[], env: NodeJS.ProcessEnv = s.env): Promise<{ ms: number; out: string }> {
  return new Promise((res, rej) => {
    const t0 = process.hrtime.bigint();
    const c = spawn(argv[0] as string, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    c.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code === 0) res({ ms, out });
      else rej(new Error(`${argv.join(' ')} exited ${code}: ${err}`));
    });
  });
}
const jaula = (args: string[]): Promise<{ ms: number; out: string }> => run(s.jaulaArgv(args));

/** Regular files under dir. */
const regularFiles = (dir: string): number =>
  must(['find', dir, '-type', 'f']).split('\n').filter(Boolean).length;

/** Bytes on disk under the directories (each inode once). */
const du = (...dirs: string[]): number =>
  Number(/^(\d+)\ttotal$/m.exec(must(['du', '-s', '-c', '-x', '--block-size=1', ...dirs]))?.[1]);

/**
 * The image, made with umoci as an image's author makes one (unpack, change, repack: a layer
 * each): busybox and the first third of the files, the second third, the last third with one
 * file of the second deleted (umoci writes its whiteout). The files left in /bulk.
 */
function makeImage(layout: string): number {
  const img = `${layout}:v1`;
  const b = at('src');
  const third = Math.floor(MIB / 3);
  const bulk = (from: number, to: number): void => {
    for (let i = from; i < to; i++) fs.writeFileSync(join(b, 'rootfs/bulk', `f${i}`), randomBytes(1 << 20));
  };
  const layer = (change: () => void): void => {
    must(['umoci', 'unpack', '--image', img, b]);
    change();
    must(['umoci', 'repack', '--image', img, b]);
    fs.rmSync(b, { recursive: true });
  };
  must(['umoci', 'init', '--layout', layout]);
  must(['umoci', 'new', '--image', img]);
  must(['umoci', 'config', '--image', img, '--config.cmd', '/bin/sleep', '--config.cmd', '100000']);
  layer(() => {
    fs.mkdirSync(join(b, 'rootfs/bin'));
    fs.mkdirSync(join(b, 'rootfs/bulk'));
    fs.copyFileSync('/bin/busybox', join(b, 'rootfs/bin/busybox'));
    for (const a of ['sh', 'ls', 'cat', 'sleep', 'wc']) fs.symlinkSync('busybox', join(b, 'rootfs/bin', a));
    bulk(0, third);
  });
  layer(() => bulk(third, 2 * third));
  layer(() => {
    fs.rmSync(join(b, 'rootfs/bulk', `f${third}`));
    bulk(2 * third, MIB);
  });
  return MIB - 1;
}

const times = new Map<string, number[]>();
const add = (k: string, v: number): void => void times.set(k, [...(times.get(k) ?? []), v]);
const f = (k: string, div = 1): string => {
  const v = median(times.get(k) ?? []) / div;
  return Number.isFinite(v) ? v.toFixed(div === 1 ? 1 : 2) : '-';
};

const reg = await startRegistry({ path: (...p: string[]) => at(...p) }, 'bench');
const proxy = await startProxy(reg.host, 'none');
const REF = `${proxy.host}/bench:v1`;
const oci = at('oci');
/** Where jaula keeps guests, layers and images. */
const store = [join(s.root, 'etc'), join(s.root, 'var')];
const counted = async (fn: () => Promise<unknown>): Promise<{ requests: string[]; bytes: number }> => {
  proxy.requests.length = 0;
  const b0 = proxy.bytes();
  await fn();
  return { requests: [...proxy.requests], bytes: proxy.bytes() - b0 };
};
let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;

try {
  const files = makeImage(at('made'));
  must([
    'skopeo',
    'copy',
    '--quiet',
    '--dest-tls-verify=false',
    `oci:${at('made')}:v1`,
    `docker://${reg.host}/bench:v1`,
  ]);
  const blobs = fs
    .readdirSync(at('made/blobs/sha256'))
    .reduce((a, x) => a + fs.statSync(at('made/blobs/sha256', x)).size, 0);
  let coldJaula = { requests: [] as string[], bytes: 0 };
  let coldPeer = { requests: [] as string[], bytes: 0 };
  let diskJaula = 0;
  let diskPeer = 0;

  // 1. Cold: nothing stored before each round.
  for (let i = 0; i < COLD; i++) {
    const jaulaRound = async (): Promise<void> => {
      coldJaula = await counted(async () => add('jaula pull', (await jaula(['image', 'pull', REF])).ms));
      add('jaula build', (await jaula(['build', 'g0', '-q', '-m', 'oci', '--', '-i', REF])).ms);
      diskJaula = du(...store);
      if (i === 0) {
        s.jaula(['start', 'g0']);
        const n = s.jaula(['exec', 'g0', '--', '/bin/sh', '-c', 'ls /bulk | wc -l']).trim();
        if (Number(n) !== files) throw new Error(`the guest sees ${n} files in /bulk, not ${files}`);
        s.jaula(['stop', 'g0']);
      }
      s.jaula(['delete', 'g0']);
      s.jaula(['image', 'delete', REF]);
    };
    const peerRound = async (): Promise<void> => {
      fs.rmSync(oci, { recursive: true, force: true });
      fs.rmSync(at('bundle0'), { recursive: true, force: true });
      coldPeer = await counted(async () =>
        add(
          'skopeo copy',
          (
            await run([
              'skopeo',
              'copy',
              '--quiet',
              '--src-tls-verify=false',
              `docker://${REF}`,
              `oci:${oci}:v1`,
            ])
          ).ms,
        ),
      );
      add('umoci unpack', (await run(['umoci', 'unpack', '--image', `${oci}:v1`, at('bundle0')])).ms);
      diskPeer = du(oci) + du(at('bundle0'));
      const n = fs.readdirSync(at('bundle0/rootfs/bulk')).length;
      if (n !== files) throw new Error(`umoci's bundle has ${n} files in /bulk, not ${files}`);
    };
    for (const r of i % 2 ? [peerRound, jaulaRound] : [jaulaRound, peerRound]) await r();
  }

  // 2. Unchanged: the image is stored (jaula) and copied (the OCI directory).
  await jaula(['image', 'pull', REF]);
  const againJaula = await counted(async () =>
    add('jaula pull again', (await jaula(['image', 'pull', REF])).ms),
  );
  const againPeer = await counted(async () =>
    add(
      'skopeo again',
      (await run(['skopeo', 'copy', '--quiet', '--src-tls-verify=false', `docker://${REF}`, `oci:${oci}:v1`]))
        .ms,
    ),
  );

  // 3. Another guest from the stored image: jaula's own time (jaulad), the CLI's, bytes written.
  await jaula(['build', 'first', '-q', '-m', 'oci', '--', '-i', REF]);
  for (let i = 0; i < N; i++) add('node -e 0', (await run([process.execPath, '-e', '0'])).ms);
  for (let i = 0; i < N; i++) {
    const d0 = du(...store);
    add('cli build', (await jaula(['build', `c${i}`, '-q', '-m', 'oci', '--', '-i', REF])).ms);
    add('cli du', du(...store) - d0);
    add('umoci again', (await run(['umoci', 'unpack', '--image', `${oci}:v1`, at('bundle1')])).ms);
    add('umoci du', du(at('bundle1')));
    add('umoci files', regularFiles(at('bundle1')));
    fs.rmSync(at('bundle1'), { recursive: true });
  }
  // A dir guest holds a copy of the image's files (BENCH_IMAGE_N rounds, each deleted after).
  for (let i = 0; i < COLD; i++) {
    const d0 = du(...store);
    add(
      'dir build',
      (await jaula(['build', `d${i}`, '-q', '-m', 'oci', '--storage', 'dir', '--', '-i', REF])).ms,
    );
    add('dir du', du(...store) - d0);
    add('dir files', regularFiles(join(s.root, 'var/lib/jaula/guests', `d${i}`)));
    s.jaula(['delete', `d${i}`]);
  }
  daemon = await startDaemon(s);
  const io = (): { w: number; c: number } => {
    const t = fs.readFileSync(`/proc/${daemon?.pid}/io`, 'utf8');
    const v = (k: string): number => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(t)?.[1] ?? 0);
    return { w: v('write_bytes'), c: v('wchar') };
  };
  for (let i = 0; i < N; i++) {
    const d0 = du(...store);
    const io0 = io();
    const t0 = process.hrtime.bigint();
    await daemon.engine.buildGuest({ name: `a${i}`, method: 'oci', methodArgs: ['-i', REF] });
    add('api build', Number(process.hrtime.bigint() - t0) / 1e6);
    must(['sync']);
    const io1 = io();
    add('api du', du(...store) - d0);
    add('api write_bytes', io1.w - io0.w);
    add('api wchar', io1.c - io0.c);
    add('api files', regularFiles(join(s.root, 'var/lib/jaula/guests', `a${i}`)));
  }
  await daemon.stop();
  daemon = undefined;

  const reqs = (r: { requests: string[] }): string => String(r.requests.length);
  const what = (r: { requests: string[] }): string =>
    r.requests.map((q) => q.replace(/sha256:([0-9a-f]{12})[0-9a-f]+/, 'sha256:$1…')).join(', ');
  console.log(
    `\nbench/image: an image of 3 gzip'd layers, ${mib(blobs)} MiB of blobs (${files} files of 1 MiB in /bulk, a whiteout), from docker-registry on loopback through a counting proxy; median ms (cold: ${COLD} rounds, others: ${N}); load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`,
  );
  console.log(
    table(
      [
        'cold: registry to a guest',
        'pull/copy',
        'build/unpack',
        'total s',
        'requests',
        'MiB sent',
        'MiB on disk',
      ],
      [
        [
          'jaula image pull + build -m oci',
          f('jaula pull'),
          f('jaula build'),
          ((median(times.get('jaula pull') ?? []) + median(times.get('jaula build') ?? [])) / 1000).toFixed(
            2,
          ),
          reqs(coldJaula),
          mib(coldJaula.bytes),
          mib(diskJaula),
        ],
        [
          'skopeo copy + umoci unpack',
          f('skopeo copy'),
          f('umoci unpack'),
          ((median(times.get('skopeo copy') ?? []) + median(times.get('umoci unpack') ?? [])) / 1000).toFixed(
            2,
          ),
          reqs(coldPeer),
          mib(coldPeer.bytes),
          mib(diskPeer),
        ],
      ],
    ),
  );
  console.log(
    "\njaula's pull checks each blob against its digest as it streams and unpacks it into a stored layer; its build stacks the stored layers\n",
  );
  console.log(
    table(
      [
        'a second guest from the same image',
        'ms',
        'KiB more on disk',
        'its files',
        'KiB written (write_bytes / wchar)',
      ],
      [
        [
          'jaula, through jaulad (the operation)',
          f('api build'),
          kib(median(times.get('api du') ?? [])),
          String(median(times.get('api files') ?? [])),
          `${kib(median(times.get('api write_bytes') ?? []))} / ${kib(median(times.get('api wchar') ?? []))}`,
        ],
        ['jaula build -m oci (CLI, wall)', f('cli build'), kib(median(times.get('cli du') ?? [])), '-', '-'],
        ['node -e 0 (a node process)', f('node -e 0'), '-', '-', '-'],
        [
          'jaula build -m oci --storage dir (CLI, a copy)',
          f('dir build'),
          kib(median(times.get('dir du') ?? [])),
          String(median(times.get('dir files') ?? [])),
          '-',
        ],
        [
          'umoci unpack of the copied image',
          f('umoci again'),
          kib(median(times.get('umoci du') ?? [])),
          String(median(times.get('umoci files') ?? [])),
          '-',
        ],
      ],
    ),
  );
  console.log('');
  console.log(
    table(
      ['pull of an unchanged image', 'ms', 'requests', 'bytes sent', 'what'],
      [
        [
          'jaula image pull',
          f('jaula pull again'),
          reqs(againJaula),
          String(againJaula.bytes),
          what(againJaula),
        ],
        [
          'skopeo copy (to the same OCI dir)',
          f('skopeo again'),
          reqs(againPeer),
          String(againPeer.bytes),
          what(againPeer),
        ],
      ],
    ),
  );
} finally {
  await daemon?.stop();
  s.deleteGuests();
  await proxy.stop();
  await reg.stop();
  s.cleanup();
}
