/**
 * jaula's web dashboard, served by jaulad. One event stream (/v1/events) keeps the guest list
 * and the jobs current; one usage request every few seconds feeds the CPU and memory charts.
 * The list is virtualised: only the rows in view exist in the page, so 500 guests cost what
 * 20 do. Actions: create (a build job), start, stop, restart, delete (confirmed), a console
 * (xterm.js over a WebSocket), settings (hostname, marks, autostart, stop timeout, depends),
 * limits (live, saved, default; set live or saved), a storage summary (du per guest; hashify
 * all guests as a job), and in a fleet its hosts (fleet.ts).
 */
import type {
  DuReport,
  EngineInfo,
  GuestLimits,
  GuestSettings,
  GuestSummary,
  GuestUsage,
  JaulaEvent,
  Job,
} from '../../src/api/types.js';
import { api, ApiFailure, setToken, token, withToken } from './api.js';
import { bytes, drawChart, UsageHistory } from './chart.js';
import { openConsole, type ConsoleSession } from './console.js';
import { initFleet, moveGuest, type FleetUi } from './fleet.js';

const ROW = 38;
const USAGE_MS = 2000;
/** CPU charts scale to at least this (percent of one CPU), higher when the guest uses more. */
const CPU_SCALE = 10;

const guests = new Map<string, GuestSummary>();
const jobs = new Map<string, Job>();
const usage = new UsageHistory();
let order: string[] = [];
let filter = '';
let selected: string | undefined;
let info: EngineInfo | undefined;
let consoleSession: ConsoleSession | undefined;

const $ = <T extends HTMLElement = HTMLElement>(sel: string): T => {
  const e = document.querySelector<T>(sel);
  if (!e) throw new Error(`no element ${sel}`);
  return e;
};

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

function toast(message: string, bad = false): void {
  const t = el('div', { class: `toast${bad ? ' bad' : ''}`, role: 'status', text: message });
  $('#toasts').append(t);
  setTimeout(() => t.remove(), bad ? 8000 : 3000);
}

async function act(what: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
    toast(what);
  } catch (e) {
    toast(e instanceof Error ? e.message : String(e), true);
  }
}

/* ---- the guest list ------------------------------------------------------------------------ */

function sortAndFilter(): void {
  const f = filter.toLowerCase();
  order = [...guests.keys()]
    .filter((n) => {
      if (!f) return true;
      const g = guests.get(n) as GuestSummary;
      return (
        n.toLowerCase().includes(f) ||
        g.status.includes(f) ||
        g.marks.some((m) => m.includes(f)) ||
        g.interfaces.some((i) => i.includes(f))
      );
    })
    .sort();
  $('#spacer').style.height = `${order.length * ROW}px`;
  const running = [...guests.values()].filter((g) => g.status === 'running').length;
  $('#summary').textContent = `${guests.size} guests, ${running} running`;
}

let frame = 0;
function render(): void {
  frame ||= requestAnimationFrame(() => {
    frame = 0;
    renderRows();
    renderDetail();
  });
}

/** Addresses from interface specs (`eth0=jaula0:10.88.0.5/16,isolated` -> 10.88.0.5/16). */
function addresses(g: GuestSummary): string {
  return g.interfaces
    .map((i) => /:([0-9a-f.:]+\/\d+)/i.exec(i)?.[1] ?? i.split(',')[0] ?? '')
    .filter(Boolean)
    .join(' ');
}

function rowOf(g: GuestSummary, index: number): HTMLElement {
  const s = usage.get(g.name);
  const cpu = el('canvas', { class: 'spark', 'data-chart': 'cpu' });
  const mem = el('canvas', { class: 'spark', 'data-chart': 'mem' });
  const row = el(
    'div',
    {
      class: `row${g.name === selected ? ' selected' : ''}`,
      role: 'row',
      'data-name': g.name,
      'data-status': g.status,
    },
    el('span', { class: 'name', text: g.name, title: g.hostname }),
    el('span', { class: `status ${g.status}`, text: g.status, ...(g.error ? { title: g.error } : {}) }),
    el('span', { class: 'ctx', text: String(g.context) }),
    el('span', { class: 'addr', text: addresses(g) || '-' }),
    el('span', { class: 'chart' }, cpu),
    el('span', { class: 'chart' }, mem),
    el('span', { class: 'actions' }, ...actionButtons(g)),
  );
  row.style.top = `${index * ROW}px`;
  row.addEventListener('click', (e) => {
    if ((e.target as HTMLElement).closest('button')) return;
    select(g.name);
  });
  requestAnimationFrame(() => {
    drawChart(cpu, s?.cpu ?? [], { max: CPU_SCALE, color: '#2a7ae2' });
    drawChart(mem, s?.mem ?? [], { color: '#7a3fc2' });
  });
  return row;
}

function actionButtons(g: GuestSummary): HTMLButtonElement[] {
  const b = (label: string, title: string, fn: () => void, disabled = false): HTMLButtonElement => {
    const x = el('button', { type: 'button', title, 'data-action': label, text: label });
    x.disabled = disabled;
    x.addEventListener('click', fn);
    return x;
  };
  const running = g.status === 'running';
  const busy = g.status === 'starting' || g.status === 'stopping';
  return [
    b('start', `Start ${g.name}`, () => void act(`Started ${g.name}`, () => start(g.name)), running || busy),
    b('stop', `Stop ${g.name}`, () => confirmStop(g.name), !running),
    b('restart', `Restart ${g.name}`, () => confirmRestart(g.name), busy),
    b('console', `Console of ${g.name}`, () => showConsole(g.name), !running || !info?.features.console),
    ...(fleetUi.canMove()
      ? [b('move', `Move ${g.name} to another host`, () => moveGuest(g.name, fleetUi), busy)]
      : []),
    b('delete', `Delete ${g.name}`, () => confirmDelete(g), busy),
  ];
}

function renderRows(): void {
  const vp = $('#viewport');
  const first = Math.max(0, Math.floor(vp.scrollTop / ROW) - 5);
  const last = Math.min(order.length, Math.ceil((vp.scrollTop + vp.clientHeight) / ROW) + 5);
  const rows = $('#rows');
  const frag = document.createDocumentFragment();
  for (let i = first; i < last; i++) {
    const g = guests.get(order[i] as string);
    if (g) frag.append(rowOf(g, i));
  }
  rows.replaceChildren(frag);
  $('#empty').hidden = guests.size > 0;
}

/* ---- actions ------------------------------------------------------------------------------- */

const start = (name: string) => api('POST', `/v1/guests/${encodeURIComponent(name)}/start`);
const stop = (name: string, kill = false) =>
  api('POST', `/v1/guests/${encodeURIComponent(name)}/stop`, kill ? { kill: true } : {});

function confirmDialog(title: string, text: string, okLabel: string, extra?: HTMLElement): Promise<boolean> {
  const d = $<HTMLDialogElement>('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-extra').replaceChildren(...(extra ? [extra] : []));
  $('#confirm-ok').textContent = okLabel;
  d.showModal();
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
  });
}

function confirmStop(name: string): void {
  const kill = el('input', { type: 'checkbox', id: 'confirm-kill' });
  const extra = el('label', {}, kill, ' kill at once');
  void confirmDialog('Stop guest', `Stop "${name}"? Its init is asked to halt.`, 'Stop', extra).then((ok) => {
    if (ok) void act(`Stopped ${name}`, () => stop(name, kill.checked));
  });
}

function confirmRestart(name: string): void {
  void confirmDialog('Restart guest', `Restart "${name}"?`, 'Restart').then((ok) => {
    if (ok)
      void act(`Restarted ${name}`, () => api('POST', `/v1/guests/${encodeURIComponent(name)}/restart`, {}));
  });
}

function confirmDelete(g: GuestSummary): void {
  const input = el('input', { id: 'confirm-name', placeholder: g.name, autocomplete: 'off' });
  const extra = el('label', {}, `Type "${g.name}" to confirm: `, input);
  void confirmDialog(
    'Delete guest',
    `Delete "${g.name}" and all its files?${g.status === 'running' || g.pid ? ' It runs: it is killed first.' : ''}${g.status === 'broken' ? ` Its config is broken: ${g.error ?? ''}` : ''}`,
    'Delete',
    extra,
  ).then((ok) => {
    if (!ok) return;
    if (input.value !== g.name) return toast('Not deleted: the name did not match', true);
    void act(`Deleted ${g.name}`, () =>
      api(
        'DELETE',
        `/v1/guests/${encodeURIComponent(g.name)}${g.status === 'running' || g.status === 'broken' ? '?force=true' : ''}`,
      ),
    );
  });
}

function showConsole(name: string): void {
  const d = $<HTMLDialogElement>('#console');
  $('#console-title').textContent = `Console: ${name}`;
  $('#console-state').textContent = '';
  d.showModal();
  consoleSession?.close();
  consoleSession = openConsole($('#term'), name, (m) => ($('#console-state').textContent = m));
}

/* ---- the detail panel ------------------------------------------------------------------------ */

let detailFor: string | undefined;
let settings: GuestSettings | undefined;

function select(name: string): void {
  selected = name;
  if (detailFor !== name) {
    detailFor = name;
    settings = undefined;
    void api<GuestSettings>('GET', `/v1/guests/${encodeURIComponent(name)}/settings`).then((s) => {
      if (detailFor === name) {
        settings = s;
        fillSettings(s);
      }
    });
  }
  render();
}

function renderDetail(): void {
  const panel = $('#detail');
  const g = selected ? guests.get(selected) : undefined;
  panel.hidden = !g;
  if (!g) return;
  $('#d-name').textContent = g.name;
  const st = $('#d-status');
  st.textContent = g.status;
  st.className = `status ${g.status}`;
  const facts: [string, string][] = [
    ['context', String(g.context)],
    ['hostname', g.hostname],
    ['init', g.initstyle],
    ['addresses', addresses(g) || '-'],
    ['marks', g.marks.join(', ') || '-'],
    ['pid', g.pid ? String(g.pid) : '-'],
    ['started', g.startedAt ? new Date(g.startedAt).toLocaleString() : '-'],
    [
      'last exit',
      g.lastExit ? `${g.lastExit.reason}${g.lastExit.message ? `: ${g.lastExit.message}` : ''}` : '-',
    ],
    ['security', g.privileged ? 'privileged' : `unprivileged (${g.profile})`],
  ];
  $('#d-facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
  const s = usage.get(g.name);
  const cpuNow = s?.cpu.length ? `${(s.cpu[s.cpu.length - 1] as number).toFixed(1)} %` : '-';
  const memNow = s?.last ? bytes(s.last.memoryBytes) : '-';
  drawChart($<HTMLCanvasElement>('#cpu-chart'), s?.cpu ?? [], {
    max: CPU_SCALE,
    color: '#2a7ae2',
    label: `CPU ${cpuNow}`,
  });
  drawChart($<HTMLCanvasElement>('#mem-chart'), s?.mem ?? [], {
    color: '#7a3fc2',
    label: `memory ${memNow}`,
  });
  $('#d-actions').replaceChildren(...actionButtons(g));
  if (limitsFor !== g.name || limitsStatus !== g.status) {
    limitsFor = g.name;
    limitsStatus = g.status;
    loadLimits(g.name);
  }
  $('#limits-note').textContent = info?.features.limits
    ? ''
    : 'CPU and memory limits are not offered by this jaula build (jaula set --help).';
}

/** A table's body: one row per entry, each cell a text or [class, text]. */
/** A table's rows: each cell a text, a [class, text], or an element (a button). */
function fillTable(
  sel: string,
  rows: [Record<string, string>, (string | [string, string] | Node)[]][],
): void {
  $(`${sel} tbody`).replaceChildren(
    ...rows.map(([attrs, cells]) =>
      el(
        'tr',
        attrs,
        ...cells.map((c) =>
          typeof c === 'string'
            ? el('td', { text: c })
            : Array.isArray(c)
              ? el('td', { class: c[0], text: c[1] })
              : el('td', { class: 'actions' }, c),
        ),
      ),
    ),
  );
}

/** What the hosts view (fleet.ts) uses of the page. */
const fleetUi: FleetUi = { fillTable, confirm: confirmDialog, act, el, canMove: () => false };

/* ---- limits ---------------------------------------------------------------------------------- */

let limitsFor = '';
let limitsStatus = '';

/** Load the selected guest's limits (again when its state changed: live values come and go). */
function loadLimits(name: string): void {
  void api<GuestLimits>('GET', `/v1/guests/${encodeURIComponent(name)}/limits`).then(
    (l) => {
      if (selected !== name) return;
      fillTable(
        '#limits-table',
        l.limits.map((x) => [
          { 'data-key': x.key },
          [x.key, ['live', l.running ? x.live || '-' : '-'], ['saved', x.saved || '-'], x.default],
        ]),
      );
    },
    (e: unknown) => toast(e instanceof Error ? e.message : String(e), true),
  );
}

function setLimits(e: Event): void {
  e.preventDefault();
  if (!selected) return;
  const f = e.target as HTMLFormElement;
  const input = f.elements.namedItem('assignment') as HTMLInputElement;
  const assignments = input.value.split(/\s+/).filter(Boolean);
  const save = (f.elements.namedItem('save') as HTMLInputElement).checked;
  const name = selected;
  void act(`Set ${assignments.join(' ')} on ${name}${save ? ' (saved)' : ''}`, async () => {
    await api('PUT', `/v1/guests/${encodeURIComponent(name)}/limits`, { assignments, save });
    input.value = '';
    loadLimits(name);
  });
}

/* ---- storage --------------------------------------------------------------------------------- */

function loadDu(): void {
  void api<DuReport>('GET', '/v1/du').then(
    (r) => {
      fillTable(
        '#du-table',
        r.guests.map((g) => [
          { 'data-guest': g.name },
          [
            g.name,
            bytes(g.exclusiveBytes),
            ['shared', bytes(g.sharedBytes)],
            g.quota ? `${bytes(g.quota.bytes)} / ${bytes(g.quota.bytesLimit)}` : '-',
          ],
        ]),
      );
      $('#du-total').textContent =
        `On disk ${bytes(r.totalBytes)}; the guests see ${bytes(r.seenBytes)} in all.`;
    },
    (e: unknown) => toast(e instanceof Error ? e.message : String(e), true),
  );
}

/**
 * Keep the newest state of a job. A job's events come on the event stream, its first state in the
 * answer to the request that made it; the two are separate connections, so a quick job's "succeeded"
 * can arrive before that answer, whose "running" must then not undo it.
 */
function noteJob(job: Job): void {
  const had = jobs.get(job.id);
  if (
    had &&
    (had.state !== 'running' || had.progress.length > job.progress.length) &&
    job.state === 'running'
  )
    return;
  jobs.set(job.id, job);
}

function hashifyAll(): void {
  void act('Hashify started (see Jobs)', async () => {
    noteJob(await api<Job>('POST', '/v1/hashify', { all: true }));
    renderJobs();
  });
}

function fillSettings(s: GuestSettings): void {
  const f = $<HTMLFormElement>('#settings');
  (f.elements.namedItem('hostname') as HTMLInputElement).value = s.hostname;
  (f.elements.namedItem('marks') as HTMLInputElement).value = s.marks
    .filter((m) => m !== 'default')
    .join(' ');
  (f.elements.namedItem('autostart') as HTMLInputElement).checked = s.marks.includes('default');
  (f.elements.namedItem('stopTimeout') as HTMLInputElement).value = String(s.stopTimeout);
  (f.elements.namedItem('depends') as HTMLInputElement).value = s.depends.join(' ');
}

function saveSettings(e: Event): void {
  e.preventDefault();
  if (!selected || !settings) return;
  const f = e.target as HTMLFormElement;
  const v = (n: string): string => (f.elements.namedItem(n) as HTMLInputElement).value.trim();
  const words = (n: string): string[] =>
    v(n)
      .split(/[\s,]+/)
      .filter(Boolean);
  const marks = words('marks');
  if ((f.elements.namedItem('autostart') as HTMLInputElement).checked) marks.unshift('default');
  const name = selected;
  void act(`Saved the settings of ${name} (applied at its next start)`, async () => {
    settings = await api<GuestSettings>('PATCH', `/v1/guests/${encodeURIComponent(name)}/settings`, {
      hostname: v('hostname'),
      marks,
      stopTimeout: Number(v('stopTimeout')),
      depends: words('depends'),
    });
    fillSettings(settings);
  });
}

/* ---- create ---------------------------------------------------------------------------------- */

function createGuest(e: Event): void {
  e.preventDefault();
  const f = e.target as HTMLFormElement;
  const v = (n: string): string =>
    (f.elements.namedItem(n) as HTMLInputElement | HTMLSelectElement).value.trim();
  const method = v('method');
  const body: Record<string, unknown> = { name: v('name'), method, initstyle: v('initstyle') };
  if (method === 'template') body['methodArgs'] = ['-t', v('template')];
  if (v('initstyle') === 'cmd') body['cmd'] = v('cmd').split(/\s+/).filter(Boolean);
  const marks = v('marks')
    .split(/[\s,]+/)
    .filter(Boolean);
  if ((f.elements.namedItem('autostart') as HTMLInputElement).checked) marks.unshift('default');
  if (marks.length) body['marks'] = marks;
  if (v('interface')) body['interfaces'] = [v('interface')];
  void act(`Building ${String(body['name'])} (see Jobs)`, async () => {
    noteJob(await api<Job>('POST', '/v1/guests', body));
    renderJobs();
    $<HTMLDialogElement>('#create').close();
  });
}

function methodChanged(): void {
  const f = $<HTMLFormElement>('#create-form');
  const m = (f.elements.namedItem('method') as HTMLSelectElement).value;
  $('#template-field').hidden = m !== 'template';
  const init = (f.elements.namedItem('initstyle') as HTMLSelectElement).value;
  $('#cmd-field').hidden = init !== 'cmd';
}

/* ---- jobs ------------------------------------------------------------------------------------ */

function renderJobs(): void {
  const list = [...jobs.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, 20);
  $('#job-list').replaceChildren(
    ...list.map((j) => {
      const bar = el('progress', { max: '1' });
      if (j.fraction !== undefined) bar.value = j.fraction;
      else if (j.state !== 'running') bar.value = 1;
      const li = el(
        'li',
        { class: `job ${j.state}`, 'data-job': j.id, 'data-op': j.op, 'data-state': j.state },
        el(
          'div',
          { class: 'job-head' },
          el('b', { text: `${j.op} ${j.target}` }),
          el('span', { text: j.state }),
        ),
        bar,
        el('div', { class: 'job-line', text: j.error?.message ?? j.progress[j.progress.length - 1] ?? '' }),
      );
      if (j.state === 'running') {
        const c = el('button', { type: 'button', text: 'cancel' });
        c.addEventListener('click', () => void act('Cancelled', () => api('DELETE', `/v1/jobs/${j.id}`)));
        li.append(c);
      }
      return li;
    }),
  );
  $('#jobs-empty').hidden = jobs.size > 0;
}

/* ---- data: events and usage ------------------------------------------------------------------ */

function onEvent(ev: JaulaEvent): void {
  if (ev.type === 'hello') {
    guests.clear();
    for (const g of ev.guests) guests.set(g.name, g);
    for (const j of ev.jobs) noteJob(j);
    renderJobs();
  } else if (ev.type === 'guest') guests.set(ev.guest.name, ev.guest);
  else if (ev.type === 'guest-removed') {
    guests.delete(ev.name);
    if (selected === ev.name) selected = undefined;
  } else if (ev.type === 'job') {
    noteJob(ev.job);
    renderJobs();
    if (ev.job.state === 'succeeded' && /^(hashify|cloneGuest|buildGuest)$/.test(ev.job.op)) loadDu();
    if (ev.job.state === 'failed')
      toast(`${ev.job.op} ${ev.job.target} failed: ${ev.job.error?.message}`, true);
    return;
  }
  sortAndFilter();
  render();
}

function connectEvents(): void {
  const es = new EventSource(withToken('/v1/events'));
  es.onmessage = (m: MessageEvent<string>) => onEvent(JSON.parse(m.data) as JaulaEvent);
  es.onopen = () => ($('#conn').textContent = 'live');
  es.onerror = () => ($('#conn').textContent = 'reconnecting...');
}

async function pollUsage(): Promise<void> {
  try {
    usage.add(await api<GuestUsage[]>('GET', '/v1/usage'));
    render();
  } catch {
    /* the next poll tries again */
  }
  setTimeout(() => void pollUsage(), USAGE_MS);
}

/* ---- start ----------------------------------------------------------------------------------- */

async function boot(): Promise<void> {
  token();
  try {
    info = await api<EngineInfo>('GET', '/v1/info');
  } catch (e) {
    if (e instanceof ApiFailure && e.status === 401) {
      $<HTMLDialogElement>('#login').showModal();
      return;
    }
    throw e;
  }
  $('#version').textContent = `jaula ${info.version}`;
  // Host files only beneath jaulad's --host-files (a stored template's name works anyway).
  const dir = info.daemon?.hostFiles;
  $<HTMLInputElement>('#create-form [name=template]').placeholder = dir
    ? `a stored template, or ${dir}/x.tar.zst`
    : 'a stored template (jaulad takes no host files: --host-files)';
  connectEvents();
  void pollUsage();
  $('#viewport').addEventListener('scroll', render, { passive: true });
  window.addEventListener('resize', render);
  $<HTMLInputElement>('#filter').addEventListener('input', (e) => {
    filter = (e.target as HTMLInputElement).value;
    sortAndFilter();
    render();
  });
  $('#new-guest').addEventListener('click', () => {
    methodChanged();
    $<HTMLDialogElement>('#create').showModal();
  });
  $('#create-form').addEventListener('submit', createGuest);
  $('#create-form').addEventListener('change', methodChanged);
  $('#create-cancel').addEventListener('click', () => $<HTMLDialogElement>('#create').close());
  $('#settings').addEventListener('submit', saveSettings);
  $('#limits').addEventListener('submit', setLimits);
  $('#du-refresh').addEventListener('click', loadDu);
  $('#hashify-all').addEventListener('click', hashifyAll);
  loadDu();
  await initFleet(fleetUi, info);
  render();
  $('#console-close').addEventListener('click', () => $<HTMLDialogElement>('#console').close());
  $('#console').addEventListener('close', () => {
    consoleSession?.close();
    consoleSession = undefined;
  });
}

document.addEventListener('DOMContentLoaded', () => {
  $('#login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    setToken((($('#login-form') as HTMLFormElement).elements.namedItem('token') as HTMLInputElement).value);
    location.reload();
  });
  boot().catch((e: unknown) => toast(e instanceof Error ? e.message : String(e), true));
});
