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
const { ATTEMPTS, KNOWN_GAPS, KNOWN_GAPS_FULL_OS, WEAKENED_BLOCKS } =
  await import('../dist/tests/escape/attempts.js');
const report = JSON.parse(fs.readFileSync(reportFile, 'utf8'));
const cell = (s) =>
  String(s ?? '')
    .replace(/\|/g, '\\|')
    .replace(/\n/g, ' ');

function result(r, gaps, id) {
  if (!r) return 'not run';
  if (r.absent) return `*absent* (${r.errno})`;
  const errno = r.errno ? `, ${r.errno}` : '';
  if (r.blocked) return `blocked${errno}: ${cell(r.detail)}`;
  return gaps[id] ? `got through: known gap (${cell(gaps[id])})` : `**NOT blocked**: ${cell(r.detail)}`;
}

function weakened(r, id) {
  if (!r) return 'not run';
  if (r.absent) return `*absent* (${r.errno})`;
  const held = WEAKENED_BLOCKS[id];
  if (!r.blocked) return held ? '**got through (expected still blocked)**' : 'got through (caught)';
  const errno = r.errno ? `, ${r.errno}` : '';
  return held
    ? `still blocked${errno} (${cell(held.kept)})`
    : `**still blocked${errno} (expected to get through)**`;
}

function control(id) {
  const held = WEAKENED_BLOCKS[id];
  if (!held) return '';
  if (!held.control) return 'none can exist';
  const r = report.controls?.[id];
  return `\`${held.control}\`: ${!r ? 'not run' : r.blocked ? '**still blocked**' : 'got through (caught)'}`;
}

const rows = [
  '| Attempt | What it does | Expected | Layer that stops it | Default profile: result, errno | full-os profile | Weakened guest | Positive control |',
  '| --- | --- | --- | --- | --- | --- | --- | --- |',
];
for (const a of ATTEMPTS) {
  rows.push(
    `| \`${a.id}\` | ${cell(a.what)} | ${cell(a.expect)} | ${cell(a.layer)} | ${result(report.default?.[a.id], KNOWN_GAPS, a.id)} | ${result(report['full-os']?.[a.id], KNOWN_GAPS_FULL_OS, a.id)} | ${weakened(report.weakened?.[a.id], a.id)} | ${control(a.id)} |`,
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
