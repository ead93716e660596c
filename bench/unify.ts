/**
 * bench/unify: storage, in one run, on this host's disk (ext4 for overlay and the hard-link
 * tools; XFS on a loop device for reflink and duperemove), page cache warm:
 *
 *   1. unifying 8 copies of a debootstrap Debian tree (3% of the files changed in each): jaula
 *      hashify (overlay: a shared layer; reflink on XFS: FIDEDUPERANGE) beside jdupes, util-linux
 *      hardlink, rdfind and fdupes (hard links) and duperemove (XFS): scan and total time, disk
 *      used before and after. Every tool gets the same scope: files of 1 KiB and more, no
 *      excluded paths (jaula runs with --exclude +/).
 *   2. a rescan after 1% of the files changed;
 *   3. `jaula du` beside `du -s`;
 *   4. making a guest from a 200 MB template with each storage driver, beside cp -a.
 *
 * The Debian tree comes from jaula's debootstrap cache (JAULA_CACHE_DIR, default
 * /var/cache/jaula-test, as tests/debian.test.ts makes it); it is built there when missing.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Scratch, have, median, must, sh, table } from './lib.js';

const COPIES = Number(process.env['BENCH_COPIES'] ?? 8);
const CHANGED_PCT = 3;
const RESCAN_PCT = 1;
const MIN = 1024;
const cacheDir = process.env['JAULA_CACHE_DIR'] ?? '/var/cache/jaula-test';

const s = new Scratch();
const loops: string[] = [];
const secs = (ms: number): string => (ms / 1000).toFixed(2);
const mib = (b: number): string => (b / 2 ** 20).toFixed(0);

function wall(argv: string[], env: NodeJS.ProcessEnv = process.env): { ms: number; out: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0] as string, argv.slice(1), {
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 256 << 20,
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { ms, out: r.stdout };
}

/** Bytes allocated under dirs, each inode once (du -sx). */
function duBytes(...dirs: string[]): number {
  const out = must(['du', '-s', '-x', '-c', '--block-size=1', ...dirs]);
  return Number(/(\d+)\s+total/.exec(out)?.[1] ?? 0);
}

function fsUsed(dir: string): number {
  must(['sync', '-f', dir]);
  const st = fs.statfsSync(dir);
  return (st.blocks - st.bfree) * st.bsize;
}

function xfsAt(dir: string, gib: number): void {
  const img = join(s.root, `xfs-${loops.length}.img`);
  fs.writeFileSync(img, '');
  fs.truncateSync(img, gib * 2 ** 30);
  must(['mkfs.xfs', '-q', '-f', '-m', 'reflink=1', img]);
  fs.mkdirSync(dir, { recursive: true });
  must(['mount', '-o', 'loop', img, dir]);
  loops.push(dir);
}

/**
 * The newest cached debootstrap tree (a .tar.zst), made by jaula when it is not there yet (older
 * caches kept /dev's device nodes, which unprivileged guests refuse).
 */
function debianTarball(): string {
  const dir = join(cacheDir, 'debootstrap');
  const find = (): string | undefined =>
    fs.existsSync(dir)
      ? fs
          .readdirSync(dir)
          .filter((f) => /^bookworm-.*-minbase-.*\.tar\.zst$/.test(f))
          .map((f) => join(dir, f))
          .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0]
      : undefined;
  let file = find();
  if (!file) {
    console.error(`bench/unify: no cached Debian tree in ${dir}: building one with debootstrap (minutes)`);
    const env = { ...s.env, JAULA_CACHE_DIR: cacheDir };
    must(s.jaulaArgv(['build', 'debseed', '-m', 'debootstrap', '-q', '--', '-d', 'bookworm']), { env });
    sh(s.jaulaArgv(['delete', 'debseed']), { env });
    file = find();
  }
  if (!file) throw new Error('no Debian tree could be made');
  return file;
}

/** Regular files below dir (relative paths), sorted. */
function regularFiles(dir: string): string[] {
  return must(['find', dir, '-xdev', '-type', 'f', '-printf', '%P\\n']).split('\n').filter(Boolean).sort();
}

const chosen = (path: string, copy: number, pct: number, salt: string): boolean =>
  createHash('sha1').update(`${salt}/${copy}/${path}`).digest().readUInt32LE(0) % 10000 < pct * 100;

/** Change pct% of the files of a copy (the same ones for every tool): append a line. */
function perturb(root: string, files: string[], copy: number, pct: number, salt: string): number {
  let n = 0;
  for (const f of files) {
    if (!chosen(f, copy, pct, salt)) continue;
    const p = join(root, f);
    try {
      const st = fs.lstatSync(p);
      if (!st.isFile()) continue;
      fs.appendFileSync(p, `\n# changed in copy ${copy} (${salt})\n`);
      n++;
    } catch {
      /* not in this copy */
    }
  }
  return n;
}

interface Row {
  tool: string;
  how: string;
  scanMs?: number;
  totalMs: number;
  before: number;
  after: number;
}
const rows: Row[] = [];
const rescans: (string | number)[][] = [];

try {
  const tarball = debianTarball();
  const pristine = join(s.root, 'pristine');
  fs.mkdirSync(pristine);
  for (let i = 1; i <= COPIES; i++) {
    fs.mkdirSync(join(pristine, `c${i}`));
    must([
      'tar',
      '-x',
      '--zstd',
      '--numeric-owner',
      '--xattrs',
      '--xattrs-include=*',
      '-f',
      tarball,
      '-C',
      join(pristine, `c${i}`),
    ]);
  }
  const files = regularFiles(join(pristine, 'c1'));
  const treeBytes = duBytes(join(pristine, 'c1'));
  let changed = 0;
  for (let i = 1; i <= COPIES; i++) changed += perturb(join(pristine, `c${i}`), files, i, CHANGED_PCT, 'a');
  console.error(
    `bench/unify: ${COPIES} copies of ${files.length} files (${mib(treeBytes)} MiB), ${changed} files changed`,
  );

  // --- 1. jaula on overlay guests (their uppers hold full copies, as debootstrap leaves them)
  for (let i = 1; i <= COPIES; i++) {
    s.jaula(['build', `d${i}`, '-m', 'template', '-q', '--', '-t', tarball]);
    perturb(join(s.root, `var/lib/jaula/guests/d${i}/upper`), files, i, CHANGED_PCT, 'a');
  }
  const guestsDir = join(s.root, 'var/lib/jaula');
  const jArgs = ['hashify', '--all', '--exclude', '+/', '--min-size', String(MIN), '--format', 'json', '-q'];
  {
    const before = duBytes(guestsDir);
    const r = wall(s.jaulaArgv(jArgs), s.env);
    const rep = JSON.parse(r.out) as { ms: { scan: number }; unified: { files: number } };
    rows.push({
      tool: 'jaula hashify (overlay)',
      how: 'shared layer, one inode',
      scanMs: rep.ms.scan,
      totalMs: r.ms,
      before,
      after: duBytes(guestsDir),
    });
    // --- 2. rescan after 1% changed (written into the uppers, as a guest's writes copy up)
    for (let i = 1; i <= COPIES; i++) {
      const upper = join(s.root, `var/lib/jaula/guests/d${i}/upper`);
      const unified = join(s.root, `var/lib/jaula/guests/d${i}/unified`);
      for (const f of files) {
        if (!chosen(f, i, RESCAN_PCT, 'b')) continue;
        const from = fs.existsSync(join(upper, f)) ? join(upper, f) : join(unified, f);
        if (!fs.existsSync(from)) continue;
        const data = fs.readFileSync(from);
        fs.mkdirSync(join(upper, f, '..'), { recursive: true });
        fs.rmSync(join(upper, f), { force: true });
        fs.writeFileSync(join(upper, f), Buffer.concat([data, Buffer.from(`\n# rescan ${i}\n`)]));
      }
    }
    const again = wall(s.jaulaArgv(jArgs), s.env);
    const rep2 = JSON.parse(again.out) as { ms: { scan: number }; scanned: { hashedFiles: number } };
    rescans.push([
      'jaula hashify',
      secs(rep.ms.scan),
      secs(r.ms),
      secs(rep2.ms.scan),
      secs(again.ms),
      `${(rep.ms.scan / rep2.ms.scan).toFixed(1)}x`,
      `${(r.ms / again.ms).toFixed(1)}x`,
      rep2.scanned.hashedFiles,
    ]);
  }

  // --- 1. the hard-link tools, each on a fresh copy of the same trees
  const work = join(s.root, 'work');
  const peers: { tool: string; how: string; argv: string[]; need: string }[] = [
    {
      tool: 'jdupes -L',
      how: 'hard links',
      argv: ['jdupes', '-r', '-L', '-q', '-X', `size+=:${MIN}`, work],
      need: 'jdupes',
    },
    {
      tool: 'hardlink (util-linux)',
      how: 'hard links',
      argv: ['hardlink', '-q', '-X', '-s', String(MIN), work],
      need: 'hardlink',
    },
    {
      tool: 'rdfind',
      how: 'hard links',
      argv: ['rdfind', '-makehardlinks', 'true', '-makeresultsfile', 'false', '-minsize', String(MIN), work],
      need: 'rdfind',
    },
    {
      tool: 'fdupes',
      how: 'finds only (no linking)',
      argv: ['fdupes', '-r', '-q', '-G', String(MIN), work],
      need: 'fdupes',
    },
  ];
  for (const p of peers) {
    if (!have(p.need)) {
      rows.push({
        tool: p.tool,
        how: 'not installed (./setup bench)',
        totalMs: NaN,
        before: NaN,
        after: NaN,
      });
      continue;
    }
    fs.rmSync(work, { recursive: true, force: true });
    must(['cp', '-a', pristine, work]);
    const before = duBytes(work);
    const r = wall(p.argv);
    rows.push({ tool: p.tool, how: p.how, totalMs: r.ms, before, after: duBytes(work) });
    const again = wall(p.argv);
    rescans.push([
      p.tool,
      '-',
      secs(r.ms),
      '-',
      secs(again.ms),
      '-',
      `${(r.ms / again.ms).toFixed(1)}x`,
      '-',
    ]);
  }
  fs.rmSync(work, { recursive: true, force: true });

  // --- 1. XFS: jaula on reflink guests (FIDEDUPERANGE) and duperemove
  const pool = join(s.root, 'var/lib/jaula/reflink');
  xfsAt(pool, 8);
  for (let i = 1; i <= COPIES; i++) {
    s.jaula(['build', `r${i}`, '-m', 'template', '-q', '--storage', 'reflink', '--', '-t', tarball]);
    perturb(join(pool, `guests/r${i}/rootfs`), files, i, CHANGED_PCT, 'a');
  }
  {
    const rg = Array.from({ length: COPIES }, (_, i) => `r${i + 1}`);
    const before = fsUsed(pool);
    const r = wall(s.jaulaArgv([...jArgs.filter((a) => a !== '--all'), ...rg]), s.env);
    const rep = JSON.parse(r.out) as { ms: { scan: number } };
    rows.push({
      tool: 'jaula hashify (reflink, XFS)',
      how: 'shared extents',
      scanMs: rep.ms.scan,
      totalMs: r.ms,
      before,
      after: fsUsed(pool),
    });
  }
  if (have('duperemove')) {
    const x = join(s.root, 'xfs-dr');
    xfsAt(x, 8);
    must(['cp', '-a', pristine, join(x, 'w')]);
    const before = fsUsed(x);
    const r = wall(['duperemove', '-dr', '-q', '--hashfile', join(s.root, 'dr.hash'), join(x, 'w')]);
    rows.push({ tool: 'duperemove (XFS)', how: 'shared extents', totalMs: r.ms, before, after: fsUsed(x) });
  } else
    rows.push({
      tool: 'duperemove (XFS)',
      how: 'not installed (./setup bench)',
      totalMs: NaN,
      before: NaN,
      after: NaN,
    });

  console.log(
    `\nbench/unify 1: ${COPIES} copies of a Debian bookworm minbase tree (${files.length} files, ${mib(treeBytes)} MiB each), ${CHANGED_PCT}% of the files changed in each; files of ${MIN} bytes and more; page cache warm\n`,
  );
  console.log(
    table(
      ['tool', 'shares by', 'scan s', 'total s', 'disk before MiB', 'disk after MiB', 'saved MiB'],
      rows.map((r) => [
        r.tool,
        r.how,
        r.scanMs === undefined ? '-' : secs(r.scanMs),
        Number.isNaN(r.totalMs) ? '-' : secs(r.totalMs),
        Number.isNaN(r.before) ? '-' : mib(r.before),
        Number.isNaN(r.after) ? '-' : mib(r.after),
        Number.isNaN(r.after) ? '-' : mib(r.before - r.after),
      ]),
    ),
  );
  console.log(
    `\nbench/unify 2: the same run again after ${RESCAN_PCT}% of the files changed (jaula: written into each guest's upper, as a guest's writes land; the hard-link tools: run again on their result)\n`,
  );
  console.log(
    table(
      [
        'tool',
        'first scan s',
        'first total s',
        'rescan scan s',
        'rescan total s',
        'scan speed-up',
        'total speed-up',
        'files read',
      ],
      rescans,
    ),
  );

  // --- 3. du
  const duRows: (string | number)[][] = [];
  const jdu = [1, 2, 3].map(() => wall(s.jaulaArgv(['du', '--format', 'json']), s.env));
  const rep = JSON.parse(jdu[0]?.out ?? '{}') as { totalBytes: number; seenBytes: number };
  duRows.push([
    'jaula du (all guests: exclusive, shared, total)',
    median(jdu.map((x) => x.ms)).toFixed(0),
    mib(rep.totalBytes),
  ]);
  const dd = [1, 2, 3].map(() => wall(['du', '-s', '-x', '-c', guestsDir, pool]));
  duRows.push([
    `du -s -x ${'var/lib/jaula'} (and the pool)`,
    median(dd.map((x) => x.ms)).toFixed(0),
    mib(
      Number(
        /(\d+)\s+total/.exec(must(['du', '-s', '-x', '-c', '--block-size=1', guestsDir, pool]))?.[1] ?? 0,
      ),
    ),
  ]);
  console.log(`\nbench/unify 3: disk usage of the ${2 * COPIES} guests (median of 3)\n`);
  console.log(table(['command', 'ms', 'total MiB'], duRows));

  // --- 4. a guest from a 200 MB template
  s.jaula(['template', 'import', tarball, 'deb', '-q']);
  const tpl = join(s.root, 'var/lib/jaula/templates/deb/tree');
  s.jaula(['build', 'warm', '-m', 'template', '-q', '--storage', 'reflink', '--', '-t', 'deb']);
  const mk: (string | number)[][] = [];
  const N3 = 3;
  for (const driver of ['dir', 'overlay', 'reflink']) {
    const ms: number[] = [];
    let written = 0;
    for (let k = 0; k < N3; k++) {
      const where = driver === 'reflink' ? pool : guestsDir;
      const u0 = fsUsed(where);
      ms.push(
        wall(
          s.jaulaArgv([
            'build',
            `t-${driver}-${k}`,
            '-m',
            'template',
            '-q',
            '--storage',
            driver,
            '--',
            '-t',
            'deb',
          ]),
          s.env,
        ).ms,
      );
      written = fsUsed(where) - u0;
      s.jaula(['delete', `t-${driver}-${k}`]);
    }
    mk.push([`jaula build -m template --storage ${driver}`, secs(median(ms)), mib(Math.max(0, written))]);
  }
  // cp clones only within one filesystem: on XFS, from the template's copy in the pool.
  for (const [label, src, dst, extra] of [
    ['cp -a (ext4)', tpl, join(s.root, 'cp-ext4'), []],
    [
      'cp -a --reflink=always (XFS)',
      join(pool, 'templates/deb/tree'),
      join(pool, 'cp-xfs'),
      ['--reflink=always'],
    ],
  ] as const) {
    const ms: number[] = [];
    let written = 0;
    for (let k = 0; k < N3; k++) {
      const u0 = fsUsed(join(dst, '..'));
      ms.push(wall(['cp', '-a', ...extra, src, dst]).ms);
      written = fsUsed(join(dst, '..')) - u0;
      fs.rmSync(dst, { recursive: true, force: true });
    }
    mk.push([label, secs(median(ms)), mib(Math.max(0, written))]);
  }
  console.log(
    `\nbench/unify 4: a guest from a ${mib(treeBytes)} MiB template (median of ${N3}; reflink: after the first build, which copies the template into the pool once)\n`,
  );
  console.log(table(['how', 's', 'data written MiB'], mk));
} finally {
  const list = sh(s.jaulaArgv(['list', '--format', 'json']), { env: s.env });
  if (list.code === 0)
    for (const g of JSON.parse(list.out) as { name: string }[])
      sh(s.jaulaArgv(['delete', '--force', g.name]), { env: s.env });
  for (const l of loops.reverse()) sh(['umount', l]);
  s.cleanup();
}
