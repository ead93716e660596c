#!/usr/bin/env node
// Runs benchmarks: node scripts/bench.mjs [NAME...] (default: all of bench/*.ts but lib).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const all = readdirSync('dist/bench')
  .filter((f) => f.endsWith('.js') && f !== 'lib.js')
  .map((f) => f.replace(/\.js$/, ''));
const names = process.argv.length > 2 ? process.argv.slice(2) : all;
let failed = 0;
for (const n of names) {
  if (!all.includes(n)) {
    console.error(`no benchmark "${n}" (have: ${all.join(', ')})`);
    process.exit(2);
  }
  const r = spawnSync(process.execPath, [`dist/bench/${n}.js`], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
