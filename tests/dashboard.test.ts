/**
 * The web dashboard end to end: Debian's Chromium (headless, driven by playwright-core) opens
 * the page jaulad serves on TCP with a token, creates a guest from a template, starts it, sees
 * its CPU chart move, opens the console and runs a command in it, edits its limits (live, then
 * saved), sees the storage summary and runs hashify as a job, stops it (confirmed), and deletes
 * it (confirmed by its name). Then 500 registered guests: the list stays virtualised.
 * Screenshots: JAULA_SCREENSHOTS=docs/screenshots node scripts/test.mjs dashboard (the README's).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loopbackEtcd } from './fleet-hosts.js';
import { skeletonTemplate, TestRoot, type Jaulad } from './helpers.js';

const CHROMIUM = process.env['JAULA_CHROMIUM'] ?? '/usr/bin/chromium';
const TOKEN = 'dashboard-test-token-0123456789';
const t = new TestRoot('jaula-web-');
/** Screenshots: into the test's root, or where JAULA_SCREENSHOTS says (docs/screenshots for the README). */
const SHOTS = process.env['JAULA_SCREENSHOTS']
  ? resolve(process.env['JAULA_SCREENSHOTS'])
  : t.path('screenshots');
let d: Jaulad;
let browser: Browser | undefined;
let page: Page;
/** jaulad's address, for the requests the test makes beside the page. */
let base = '';

/** Poll a condition in the page (the page's CSP forbids evaluating text, rightly). */
async function poll(what: string, fn: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const row = (name: string) => page.locator(`#rows .row[data-name="${name}"]`);

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (./setup test does)`);
  fs.writeFileSync(t.path('token'), `${TOKEN}\n`, { mode: 0o600 });
  // The browser names host files (a template archive) only beneath --host-files.
  fs.mkdirSync(t.path('files'), { mode: 0o700 });
  d = t.daemon([
    '--no-autostart',
    '--listen',
    '127.0.0.1:0',
    '--token-file',
    t.path('token'),
    '--host-files',
    t.path('files'),
  ]);
  await d.ready({ reconciled: true });
  const port = Number(/and 127\.0\.0\.1:(\d+)/.exec(d.log)?.[1]);
  assert.ok(port > 0, d.log);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  page.setDefaultTimeout(30_000);
  base = `http://127.0.0.1:${port}`;
  await page.goto(`${base}/#token=${TOKEN}`);
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await d?.stop();
  assert.deepEqual(t.cleanup(), [], 'nothing is left behind');
});

/** A template whose init does a little work every second: its CPU chart has something to show. */
function churnTemplate(): string {
  const dir = t.path('churn');
  fs.mkdirSync(dir, { recursive: true });
  const x = spawnSync('tar', ['-C', dir, '-xf', skeletonTemplate(t)]);
  assert.equal(x.status, 0, String(x.stderr));
  fs.writeFileSync(
    join(dir, 'bin/churn'),
    '#!/bin/sh\nwhile :; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1; done\n',
    { mode: 0o755 },
  );
  const file = t.path('files/churn.tar');
  const c = spawnSync('tar', ['-C', dir, '-cf', file, '.']);
  assert.equal(c.status, 0, String(c.stderr));
  return file;
}

describe('the dashboard in Chromium', () => {
  it('shows the page with the live event stream', async () => {
    await page.locator('#conn', { hasText: 'live' }).waitFor();
    assert.match((await page.locator('#version').textContent()) ?? '', /^jaula \d/);
    assert.equal(await page.locator('#rows .row').count(), 0);
  });

  it('creates a guest from a template (a job with progress), starts it, and its CPU chart moves', async () => {
    const tpl = churnTemplate();
    await page.click('#new-guest');
    const f = page.locator('#create-form');
    await f.locator('[name=name]').fill('web1');
    await f.locator('[name=method]').selectOption('template');
    await f.locator('[name=template]').fill(tpl);
    await f.locator('[name=initstyle]').selectOption('cmd');
    await f.locator('[name=cmd]').fill('/bin/churn');
    await f.locator('[name=marks]').fill('web');
    await page.screenshot({ path: join(SHOTS, 'create.png') });
    await f.locator('button[type=submit]').click();
    await page.locator('#job-list .job[data-state="succeeded"]', { hasText: 'web1' }).waitFor();
    assert.match((await page.locator('#job-list .job').first().textContent()) ?? '', /Adapted the tree/);
    await row('web1').waitFor();
    assert.equal(await row('web1').getAttribute('data-status'), 'stopped');

    await row('web1').locator('button[data-action="start"]').click();
    await page.locator('#rows .row[data-name="web1"][data-status="running"]').waitFor();
    // Neighbours, for the picture: one running, one stopped.
    t.buildSleeper('db1', ['--mark', 'db', '--mark', 'default', '--interface', 'eth0=jaula0:auto']);
    t.buildSleeper('cache1', ['--mark', 'db']);
    t.ok(['start', 'db1']);
    await page.locator('#rows .row[data-name="db1"][data-status="running"]').waitFor();
    assert.match((await row('db1').locator('.addr').textContent()) ?? '', /^\d+\.\d+\.\d+\.\d+\/\d+$/);
    await row('cache1').waitFor();
    await row('web1').locator('.name').click();
    await page.locator('#detail:not([hidden])').waitFor();
    // The chart gets a point per usage reading; "moving" = more points, and CPU time used.
    const samples = async (): Promise<number> =>
      Number(await page.locator('#cpu-chart').getAttribute('data-samples'));
    await poll('two CPU readings', async () => (await samples()) >= 2);
    const first = await samples();
    await poll('two more CPU readings', async () => (await samples()) >= first + 2, 60_000);
    const usage = (await d.request('GET', '/v1/usage?names=web1')).json as { cpuNs: number }[];
    assert.ok((usage[0]?.cpuNs ?? 0) > 0, 'the guest used CPU time');
    await poll(
      'CPU use on the chart',
      async () => Number(await page.locator('#cpu-chart').getAttribute('data-last')) > 0,
    );
    await page.screenshot({ path: join(SHOTS, 'dashboard.png') });
  });

  it('opens a console into the guest and runs a command in it', async () => {
    await row('web1').locator('button[data-action="console"]').click();
    const term = page.locator('#term .xterm-rows');
    await term.filter({ hasText: 'built-in shell' }).waitFor(); // the shell is there
    await page.locator('#term .xterm-helper-textarea').focus();
    await page.keyboard.type('echo hello-$((6*7)) from $(hostname)\n');
    await term.filter({ hasText: 'hello-42 from web1' }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'console.png') });
    await page.click('#console-close');
  });

  it('edits limits (live, then saved), shows the storage summary, runs hashify as a job', async () => {
    const pids = page.locator('#limits-table tr[data-key="pids.max"]');
    await pids.waitFor();
    await page.fill('#limits input[name="assignment"]', 'pids.max=321');
    await page.click('#limits button[type="submit"]');
    await pids.locator('td.live', { hasText: '321' }).waitFor();
    assert.equal(await pids.locator('td.saved').textContent(), '-', 'live only: not saved');
    type Limits = { limits: { key: string; live?: string; saved: string }[] };
    const inJaula = (): Limits['limits'][number] | undefined =>
      (JSON.parse(t.ok(['set', 'web1', '--format', 'json']).stdout) as Limits).limits.find(
        (l) => l.key === 'pids.max',
      );
    assert.deepEqual([inJaula()?.live, inJaula()?.saved], ['321', '']);
    await page.fill('#limits input[name="assignment"]', 'pids.max=300');
    await page.check('#limits input[name="save"]');
    await page.click('#limits button[type="submit"]');
    await pids.locator('td.saved', { hasText: '300' }).waitFor();
    assert.deepEqual([inJaula()?.live, inJaula()?.saved], ['300', '300']);

    await page.locator('#du-table tr[data-guest="web1"]').waitFor();
    // The answer to the request that starts the job is held back until the job has ended: its
    // events (on the event stream) come first, and the answer's "running" must not undo them.
    let answered: Promise<unknown> = Promise.resolve();
    await page.route('**/v1/hashify', async (route) => {
      const response = await route.fetch();
      const job = (await response.json()) as { id: string };
      answered = poll('the hashify job to end', async () => {
        const r = await fetch(`${base}/v1/jobs/${job.id}`, { headers: { authorization: `Bearer ${TOKEN}` } });
        return ((await r.json()) as { state: string }).state !== 'running';
      });
      await answered;
      await new Promise((r) => setTimeout(r, 300));
      await route.fulfill({ response });
    });
    await page.click('#hashify-all');
    await page.locator('#job-list .job[data-state="succeeded"]', { hasText: 'hashify' }).waitFor();
    await answered;
    await page.locator('.toast', { hasText: 'Hashify started' }).waitFor();
    assert.equal(
      await page.locator('#job-list .job', { hasText: 'hashify' }).getAttribute('data-state'),
      'succeeded',
    );
    await page.unroute('**/v1/hashify');
  });

  it('stops the guest after a confirmation, then deletes it only with its name typed', async () => {
    await row('web1').locator('button[data-action="stop"]').click();
    await page.locator('#confirm[open]').waitFor();
    await page.click('#confirm-ok');
    await page.locator('#rows .row[data-name="web1"][data-status="stopped"]').waitFor();
    assert.equal(JSON.parse(t.jaula(['status', 'web1', '--format', 'json']).stdout).status, 'stopped');

    await row('web1').locator('button[data-action="delete"]').click();
    await page.fill('#confirm-name', 'wrong');
    await page.click('#confirm-ok');
    await page.locator('.toast.bad', { hasText: 'the name did not match' }).waitFor();
    assert.equal(t.jaula(['status', 'web1']).code, 3, 'still there');
    await row('web1').locator('button[data-action="delete"]').click();
    await page.fill('#confirm-name', 'web1');
    await page.click('#confirm-ok');
    await row('web1').waitFor({ state: 'detached' });
    assert.equal(t.jaula(['status', 'web1']).code, 4, 'deleted');
  });

  it("shows the fleet's hosts once this host is in a fleet, and hides them when it leaves", async () => {
    assert.equal(await page.locator('#hosts').isHidden(), true, 'in no fleet: no hosts view');
    const etcd = await loopbackEtcd(t);
    try {
      t.ok([
        'fleet',
        'init',
        '--endpoints',
        etcd.url,
        '--host',
        'webhost',
        '--ttl',
        '3',
        '--label',
        'zone=a',
      ]);
      await page.reload(); // (the view loads at the page's start, then every 10 s)
      const host = page.locator('#hosts-table tr[data-host="webhost"]');
      await host.waitFor({ timeout: 20_000 });
      assert.equal(await host.locator('td.state').textContent(), 'up');
      assert.match((await host.locator('td').first().textContent()) ?? '', /webhost \(this one\)/);
      assert.match((await page.locator('#hosts-note').textContent()) ?? '', /1 host in the fleet/);
      // Every guest of the fleet, with its host (this host's, here).
      const g = page.locator('#fleet-guests-table tr[data-guest="cache1"]');
      await g.waitFor({ timeout: 20_000 });
      assert.equal(await g.locator('td.host').textContent(), 'webhost');
      await page.screenshot({ path: join(SHOTS, 'hosts.png') });
      t.ok(['fleet', 'leave', '--force']);
      await page.click('#hosts-refresh');
      await page.locator('#hosts').waitFor({ state: 'hidden' });
    } finally {
      await etcd.stop();
    }
  });

  it('stays virtualised with 500 guests: few rows in the page, every guest reachable', async () => {
    // 500 registered guests (configs only: the list needs no trees).
    t.buildSleeper('proto');
    const total = (JSON.parse(t.ok(['list', '--format', 'json']).stdout) as unknown[]).length + 500;
    const text = fs.readFileSync(t.path('etc/jaula/guests/proto/config.toml'), 'utf8');
    for (let i = 0; i < 500; i++) {
      const n = `v${String(i).padStart(3, '0')}`;
      fs.mkdirSync(t.path('etc/jaula/guests', n), { recursive: true });
      fs.writeFileSync(
        t.path('etc/jaula/guests', n, 'config.toml'),
        text
          .replace(/^name = .*$/m, `name = "${n}"`)
          .replace(/^hostname = .*$/m, `hostname = "${n}"`)
          .replace(/^context = .*$/m, `context = ${1000 + i}`),
      );
    }
    await page.locator('#summary', { hasText: `${total} guests` }).waitFor();
    const inPage = await page.locator('#rows .row').count();
    assert.ok(inPage > 5 && inPage < 60, `${inPage} rows in the page`);
    await page.locator('#viewport').evaluate((e) => (e.scrollTop = e.scrollHeight));
    await row('v499').waitFor();
    await page.screenshot({ path: join(SHOTS, 'many.png') });
    await page.fill('#filter', 'v25');
    await page.locator('#summary', { hasText: `${total} guests` }).waitFor();
    await poll('the filtered rows', async () => (await page.locator('#rows .row').count()) === 10);
    for (let i = 0; i < 500; i++)
      fs.rmSync(t.path('etc/jaula/guests', `v${String(i).padStart(3, '0')}`), { recursive: true });
  });
});
