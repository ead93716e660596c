/**
 * bench/memory: the host-side memory jaula keeps per running guest (its supervisor, since no
 * Node.js process stays resident), with BENCH_GUESTS (default 100) guests running, beside LXC's
 * per-container monitor process (`lxc-start -d`) for BENCH_LXC (default 10) containers.
 * RSS counts shared pages once per process; PSS shares them out, so PSS sums to the real total.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import {
  Scratch,
  have,
  memOfPids as sum,
  must,
  pidsMatching,
  sh,
  sleeperFromTemplate,
  sleeperSkeleton,
  table,
} from './lib.js';

const GUESTS = Number(process.env['BENCH_GUESTS'] ?? 100);
const LXC = Number(process.env['BENCH_LXC'] ?? 10);

const s = new Scratch();
const lxcPath = join(s.root, 'lxc');
try {
  // (a plain tree: its files are the others' template and LXC's rootfs)
  s.jaula(sleeperSkeleton('m0', ['--storage', 'dir']));
  const rootfs = join(s.root, 'var/lib/jaula/guests/m0/rootfs');
  // The other guests are built from the first one's tree as a template (same content).
  const tpl = join(s.root, 'm.tar');
  must(['tar', '-cf', tpl, '-C', rootfs, '.']);
  for (let i = 1; i < GUESTS; i++) s.jaula(sleeperFromTemplate(`m${i}`, tpl));
  const t0 = Date.now();
  for (let i = 0; i < GUESTS; i++) s.jaula(['start', `m${i}`]);
  const startSecs = (Date.now() - t0) / 1000;
  const shims = pidsMatching(new RegExp(`jaula-helper shim --dir ${s.root}/`));
  const nodes = pidsMatching(new RegExp(`node .*jaula.*${s.root}`)).filter((p) => p !== process.pid);
  const j = sum(shims);

  const rows: (string | number)[][] = [
    ['jaula supervisor (jaula-helper shim)', j.n, j.rss / j.n, j.pss / j.n, j.pss / 1024],
    ['resident jaula Node.js processes', nodes.length, 0, 0, 0],
  ];

  if (have('lxc-start') && LXC > 0) {
    for (let i = 0; i < LXC; i++) {
      const dir = join(lxcPath, `l${i}`);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(
        join(dir, 'config'),
        [
          `lxc.uts.name = l${i}`,
          `lxc.rootfs.path = dir:${rootfs}`,
          'lxc.net.0.type = empty',
          'lxc.apparmor.profile = unconfined',
          'lxc.mount.auto = proc:mixed sys:ro',
          'lxc.init.cmd = /bin/sleep 100000',
          '',
        ].join('\n'),
      );
      must(['lxc-start', '-P', lxcPath, '-n', `l${i}`, '-d']);
    }
    const monitors = pidsMatching(/^\[lxc monitor\]/);
    const l = sum(monitors);
    rows.push([
      'lxc monitor ([lxc monitor] per container)',
      l.n,
      l.rss / Math.max(1, l.n),
      l.pss / Math.max(1, l.n),
      l.pss / 1024,
    ]);
  }
  console.log(
    `\nbench/memory: host memory per running guest, ${GUESTS} jaula guests (started in ${startSecs.toFixed(1)} s) and ${LXC} LXC containers\n`,
  );
  console.log(table(['process', 'count', 'RSS kB each', 'PSS kB each', 'PSS MB total'], rows));
  console.log(
    `\nAim: under 1024 kB per running guest. jaula: ${(j.pss / j.n).toFixed(0)} kB PSS, ${(j.rss / j.n).toFixed(0)} kB RSS per guest.`,
  );
} finally {
  for (let i = 0; i < LXC; i++) sh(['lxc-stop', '-P', lxcPath, '-n', `l${i}`, '-k']);
  const t1 = Date.now();
  sh([process.execPath, join(process.cwd(), 'bin/jaula.cjs'), 'stop', '--all', '--kill'], { env: s.env });
  console.log(`(stopping all guests took ${((Date.now() - t1) / 1000).toFixed(1)} s)`);
  s.cleanup();
}
