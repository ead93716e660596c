#!/usr/bin/env node
// Runs benchmarks: node scripts/bench.mjs [NAME...] [--OPTION ...] (default: all of bench/*.ts
// but lib); everything from the first argument that starts with "-" is passed to each benchmark
// (e.g. node scripts/bench.mjs density --guests 1000).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const all = readdirSync('dist/bench')
  .filter((f) => f.endsWith('.js') && f !== 'lib.js')
  .map((f) => f.replace(/\.js$/, ''));
const args = process.argv.slice(2);
const firstOpt = args.findIndex((a) => a.startsWith('-'));
const given = firstOpt < 0 ? args : args.slice(0, firstOpt);
const passed = firstOpt < 0 ? [] : args.slice(firstOpt);
const names = given.length ? given : all;
let failed = 0;
for (const n of names) {
  if (!all.includes(n)) {
    console.error(`no benchmark "${n}" (have: ${all.join(', ')})`);
    process.exit(2);
  }
  const r = spawnSync(process.execPath, [`dist/bench/${n}.js`, ...passed], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
