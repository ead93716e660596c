/**
 * bench/startup: what a typed command costs before it does its work, and whether a V8 startup
 * snapshot of the CLI would lower it (issue 16 asks to measure it beside a smaller bundle and
 * keep the one that wins). In one hyperfine run, side by side: `node -e 0` (Node's floor), an
 * empty user snapshot (what loading any blob costs), and `jaula --version` and `jaula list` (one
 * guest) from the code-cached bundle that bin/jaula.cjs loads and from a snapshot of the same
 * bundle (bench/tools/snapshot-build.cjs: its modules defined, main run at start-up). The
 * snapshot's outputs are checked equal to the CLI's first. `node --build-snapshot` is marked
 * experimental in Node 20: measured here, not shipped. Options: --hyperfine-runs R (default 30).
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Scratch, have, must, sleeperSkeleton, table } from './lib.js';

const hfi = process.argv.indexOf('--hyperfine-runs');
const RUNS = Number(hfi > 0 ? process.argv[hfi + 1] : 30);
const node = process.execPath;

if (!have('hyperfine')) {
  console.error('bench/startup: needs hyperfine (apt-get install hyperfine)');
  process.exit(1);
}
const s = new Scratch();
try {
  s.jaula(sleeperSkeleton('s1'));
  const blob = join(s.root, 'jaula.blob');
  const empty = join(s.root, 'empty.blob');
  const emptyJs = join(s.root, 'empty.cjs');
  fs.writeFileSync(emptyJs, "require('node:v8').startupSnapshot.setDeserializeMainFunction(() => {});\n");
  must([node, '--snapshot-blob', empty, '--build-snapshot', emptyJs]);
  must([node, '--snapshot-blob', blob, '--build-snapshot', 'bench/tools/snapshot-build.cjs'], { env: s.env });
  // (Node parses its own options up to "--": the snapshot's arguments come after it)
  const snap = (...args: string[]): string[] => [node, '--snapshot-blob', blob, '--', ...args];
  for (const args of [['--version'], ['list']]) {
    const a = must(s.jaulaArgv(args), { env: s.env });
    const b = must(snap(...args), { env: s.env });
    if (a !== b) throw new Error(`the snapshot's "${args.join(' ')}" differs:\n${a}\n---\n${b}`);
  }
  const cmds: [string, string[]][] = [
    ['node -e 0', [node, '-e', '0']],
    ['node, an empty user snapshot', [node, '--snapshot-blob', empty]],
    ['jaula --version (code cache: bin/jaula.cjs)', s.jaulaArgv(['--version'])],
    ['jaula --version (V8 snapshot)', snap('--version')],
    ['jaula list (code cache)', s.jaulaArgv(['list'])],
    ['jaula list (V8 snapshot)', snap('list')],
  ];
  const json = join(s.root, 'hyperfine.json');
  must(
    ['hyperfine', '-N', '--warmup', '3', '--runs', String(RUNS), '--export-json', json].concat(
      cmds.map(([, a]) => a.join(' ')),
    ),
    { env: s.env },
  );
  const res = (JSON.parse(fs.readFileSync(json, 'utf8')) as { results: { mean: number; stddev: number }[] })
    .results;
  const ms = (i: number): number => (res[i]?.mean ?? NaN) * 1000;
  const sizes = [empty, blob].map((f) => (fs.statSync(f).size / 2 ** 20).toFixed(1));
  console.log(
    `\nbench/startup: hyperfine, ${RUNS} runs, 3 warm-up; blobs ${sizes[0]} MiB (empty), ${sizes[1]} MiB (jaula)\n`,
  );
  console.log(
    table(
      ['command', 'mean ms', 'sigma ms', 'over node -e 0'],
      cmds.map(([label], i) => [label, ms(i), (res[i]?.stddev ?? NaN) * 1000, ms(i) - ms(0)]),
    ),
  );
  console.log(
    `\nThe snapshot against the code cache: --version ${(ms(3) - ms(2)).toFixed(1)} ms, list ${(ms(5) - ms(4)).toFixed(1)} ms (negative: the snapshot is faster).`,
  );
} finally {
  s.cleanup();
}
