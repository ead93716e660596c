#!/usr/bin/env node
// Rewrites the results table of docs/security/escape-attempts.md from a report of the escape
// suite: ESCAPE_REPORT=/tmp/escape.json node scripts/test.mjs escape, then
// node scripts/escape-table.mjs /tmp/escape.json. The attempts' texts come from
// tests/escape/attempts.ts (built into dist), the results from the report: nothing is typed by hand.
import * as fs from 'node:fs';

const [reportFile, doc = 'docs/security/escape-attempts.md'] = process.argv.slice(2);
if (!reportFile) {
  console.error('usage: node scripts/escape-table.mjs REPORT.json [DOC.md]');
  process.exit(2);
}
const { ATTEMPTS, KNOWN_GAPS } = await import('../dist/tests/escape/attempts.js');
const report = JSON.parse(fs.readFileSync(reportFile, 'utf8'));
const cell = (s) => String(s ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');

function result(r, weakened) {
  if (!r) return 'not run';
  if (r.absent) return `*absent* (${r.errno})`;
  const errno = r.errno ? `, ${r.errno}` : '';
  if (r.blocked) return weakened ? `still blocked${errno}` : `blocked${errno}: ${cell(r.detail)}`;
  return weakened ? 'got through (caught)' : `**NOT blocked**: ${cell(r.detail)}`;
}

const rows = [
  '| Attempt | What it does | Expected | Layer that stops it | Default profile: result, errno | Weakened guest |',
  '| --- | --- | --- | --- | --- | --- |',
];
for (const a of ATTEMPTS) {
  const d = report.default?.[a.id];
  const w = report.weakened?.[a.id];
  const gap = KNOWN_GAPS[a.id] ? ` (known gap: ${cell(KNOWN_GAPS[a.id])})` : '';
  rows.push(
    `| \`${a.id}\` | ${cell(a.what)} | ${cell(a.expect)} | ${cell(a.layer)} | ${result(d, false)}${gap} | ${result(w, true)} |`,
  );
}
const text = fs.readFileSync(doc, 'utf8');
const begin = '<!-- results: begin (scripts/escape-table.mjs) -->';
const end = '<!-- results: end -->';
const a = text.indexOf(begin);
const b = text.indexOf(end);
if (a < 0 || b < a) {
  console.error(`${doc}: the markers "${begin}" and "${end}" are missing`);
  process.exit(1);
}
fs.writeFileSync(doc, `${text.slice(0, a + begin.length)}\n${rows.join('\n')}\n${text.slice(b)}`);
console.log(`${doc}: ${ATTEMPTS.length} attempts written`);
