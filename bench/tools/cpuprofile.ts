/**
 * Sums up a V8 CPU profile (`node --cpu-prof`, a .cpuprofile file): the functions with the most
 * self time and the most total time (callers included once, however deep the recursion), and the
 * source files. In jaula's bundles (dist/jaula.cjs, dist/jaulad.cjs) a function's source file is
 * read from esbuild's `// src/...ts` markers, so the table names src/ files, not the bundle.
 *
 *   node dist/bench/tools/cpuprofile.js FILE.cpuprofile [--top N] [--match REGEX]
 *
 * --match: also list the call paths (root first) that lead to functions whose name matches.
 */
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { table } from '../lib.js';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const file = args[0];
if (!file) {
  console.error('Usage: node dist/bench/tools/cpuprofile.js FILE.cpuprofile [--top N] [--match REGEX]');
  process.exit(2);
}
const topN = Number(args[args.indexOf('--top') + 1] ?? 25) || 25;
const matchAt = args.indexOf('--match');
const match = matchAt > 0 ? new RegExp(args[matchAt + 1] as string) : undefined;

const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;

/** For a bundle: line (0-based) -> the src/ file whose code starts at or before it. */
const bundles = new Map<string, { line: number; src: string }[]>();
function sourceOf(url: string, line: number): string {
  if (!url) return '(native)';
  if (!url.endsWith('.cjs'))
    return url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, 'node_modules/');
  let marks = bundles.get(url);
  if (!marks) {
    marks = [];
    try {
      const text = fs.readFileSync(url.startsWith('file:') ? fileURLToPath(url) : url, 'utf8').split('\n');
      text.forEach((l, i) => {
        const m = /^\/\/ ((?:src|node_modules)\/\S+)$/.exec(l);
        if (m?.[1]) marks?.push({ line: i, src: m[1] });
      });
    } catch {
      /* not readable: the bundle's name */
    }
    bundles.set(url, marks);
  }
  let best = url.split('/').pop() as string;
  for (const m of marks) if (m.line <= line) best = m.src;
  return best;
}

// Each sample's duration: the next sample's delta (the last gets the mean).
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const selfUs = new Map<number, number>();
const deltas = p.timeDeltas;
const mean = (p.endTime - p.startTime) / Math.max(1, p.samples.length);
p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (deltas[i + 1] ?? mean)));
const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);

const key = (n: Node): string =>
  `${n.callFrame.functionName || '(anonymous)'} ${sourceOf(n.callFrame.url, n.callFrame.lineNumber)}:${n.callFrame.lineNumber + 1}`;
const self = new Map<string, number>();
const total = new Map<string, number>();
const perFile = new Map<string, number>();
for (const [id, us] of selfUs) {
  const n = byId.get(id) as Node;
  self.set(key(n), (self.get(key(n)) ?? 0) + us);
  const f = sourceOf(n.callFrame.url, n.callFrame.lineNumber);
  perFile.set(f, (perFile.get(f) ?? 0) + us);
  const seen = new Set<string>();
  for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) {
    const k = key(byId.get(x) as Node);
    if (seen.has(k)) continue;
    seen.add(k);
    total.set(k, (total.get(k) ?? 0) + us);
  }
}

const rows = (m: Map<string, number>): (string | number)[][] =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, topN)
    .map(([k, us]) => [k, (us / 1000).toFixed(1), `${((100 * us) / totalUs).toFixed(1)}%`]);
console.log(
  `${file}: ${(totalUs / 1000).toFixed(0)} ms sampled over ${((p.endTime - p.startTime) / 1000).toFixed(0)} ms, ${p.samples.length} samples\n`,
);
console.log('Self time, by function:\n');
console.log(table(['function file:line', 'ms', 'share'], rows(self)));
console.log('\nTotal time (with callees), by function:\n');
console.log(table(['function file:line', 'ms', 'share'], rows(total)));
console.log('\nSelf time, by source file:\n');
console.log(table(['file', 'ms', 'share'], rows(perFile)));

if (match) {
  const paths = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const chain: string[] = [];
    let hit = false;
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) {
      const n = byId.get(x) as Node;
      if (match.test(n.callFrame.functionName)) hit = true;
      if (hit && n.callFrame.functionName) chain.unshift(n.callFrame.functionName);
    }
    if (hit) paths.set(chain.join(' > '), (paths.get(chain.join(' > ')) ?? 0) + us);
  }
  console.log(`\nCall paths to functions matching ${match} (their time with callees):\n`);
  console.log(table(['path', 'ms', 'share'], rows(paths)));
}
