/**
 * The dashboard's hosts view, shown when this jaulad's host is in a fleet: every host's state,
 * guests (running of all), free memory and disk, and whether it can take live moves, from the
 * records each host publishes in etcd (GET /v1/fleet/hosts, again every 10 s and on Refresh);
 * and every host's guests with their host, and for HA guests where their replica is and how
 * old (GET /v1/fleet/guests, /v1/fleet/ha): a guest whose host is gone shows as lost.
 *
 * Moves, as jobs with their progress in the Jobs list: Drain on this host's row (POST
 * /v1/fleet/drain: every guest to the fleet's other hosts), Move on each of this host's guests
 * (POST /v1/guests/NAME/migrate to a remote; also in the guest list, with or without a fleet).
 * A move uses this host's tokens for its remotes, so over TCP jaulad allows it only when started
 * with --allow-moves (info.daemon.tcpMoves); without it the page says so and offers no button.
 */
import type {
  EngineInfo,
  FleetGuest,
  FleetHa,
  FleetHost,
  FleetStatus,
  RemoteInfo,
} from '../../src/api/types.js';
import { api } from './api.js';
import { bytes } from './chart.js';

type Cell = string | [string, string] | Node;

/** What the view needs of the dashboard (app.ts). */
export interface FleetUi {
  fillTable(sel: string, rows: [Record<string, string>, Cell[]][]): void;
  confirm(title: string, text: string, okLabel: string, extra?: HTMLElement): Promise<boolean>;
  act(what: string, fn: () => Promise<unknown>): Promise<void>;
  el<K extends keyof HTMLElementTagNameMap>(
    tag: K,
    attrs?: Record<string, string>,
    ...children: (Node | string)[]
  ): HTMLElementTagNameMap[K];
  /** Whether guests can be moved from this page (set by initFleet). */
  canMove(): boolean;
}

const HOSTS_MS = 10_000;
const MODES = ['sync', 'cold', 'live'] as const;
let remotes: string[] = [];
let moves = false;

function section(): HTMLElement {
  return document.querySelector('#hosts') as HTMLElement;
}

/** A select of `name` with these options, the first chosen. */
function select(ui: FleetUi, name: string, options: readonly string[]): HTMLSelectElement {
  return ui.el(
    'select',
    { name, id: `move-${name}` },
    ...options.map((o) => ui.el('option', { value: o, text: o })),
  );
}

const modeHelp =
  'sync: copied while it runs, then stopped for what changed; cold: stopped first; live: checkpointed';

/** Move a guest of this host to one of its remotes: a dialog for where and how, then the job. */
export function moveGuest(name: string, ui: FleetUi, hosts: string[] = remotes): void {
  const to = select(ui, 'to', hosts);
  const mode = select(ui, 'mode', MODES);
  const extra = ui.el(
    'div',
    {},
    ui.el('label', {}, 'to ', to),
    ui.el('label', { title: modeHelp }, ' mode ', mode),
  );
  void ui
    .confirm('Move guest', `Move "${name}" to another host (a job: see Jobs)?`, 'Move', extra)
    .then((ok) => {
      if (ok)
        void ui.act(`Moving ${name} to ${to.value} (see Jobs)`, () =>
          api('POST', `/v1/guests/${encodeURIComponent(name)}/migrate`, {
            remote: to.value,
            mode: mode.value,
          }),
        );
    });
}

/** Drain this host: every guest to the fleet's other hosts, each to the up host owning the fewest. */
function drain(ui: FleetUi, host: string): void {
  const mode = select(ui, 'mode', MODES);
  const extra = ui.el('label', { title: modeHelp }, 'mode ', mode);
  void ui
    .confirm(
      'Drain host',
      `Move every guest of "${host}" to the fleet's other hosts (a job: see Jobs)?`,
      'Drain',
      extra,
    )
    .then((ok) => {
      if (ok)
        void ui.act(`Draining ${host} (see Jobs)`, () =>
          api('POST', '/v1/fleet/drain', { mode: mode.value }),
        );
    });
}

function button(ui: FleetUi, action: string, title: string, fn: () => void): HTMLButtonElement {
  const b = ui.el('button', { type: 'button', 'data-action': action, title, text: action });
  b.addEventListener('click', fn);
  return b;
}

async function loadHosts(ui: FleetUi): Promise<void> {
  const s = await api<FleetStatus>('GET', '/v1/fleet').catch(() => undefined);
  const inFleet = !!s && s.state !== 'none' && s.state !== 'configured';
  section().hidden = !inFleet;
  if (!inFleet) return;
  const me = s.host;
  const hosts = await api<FleetHost[]>('GET', '/v1/fleet/hosts');
  const up = hosts.filter((h) => h.host !== me && h.state === 'up').map((h) => h.host);
  const targets = remotes.filter((r) => up.includes(r));
  ui.fillTable(
    '#hosts-table',
    hosts.map((h) => [
      { 'data-host': h.host },
      [
        h.host === me ? `${h.host} (this one)` : h.host,
        ['state', h.state],
        `${h.running} / ${h.guests}`,
        `${bytes(h.memoryFreeBytes)} of ${bytes(h.memoryBytes)}`,
        bytes(h.diskFreeBytes),
        ['live', h.liveMigration.startsWith('possible') ? 'yes' : 'no'],
        h.host === me && moves && targets.length
          ? button(ui, 'drain', `Move every guest of ${h.host} to the other hosts`, () => drain(ui, h.host))
          : '',
      ],
    ]),
  );
  (document.querySelector('#hosts-note') as HTMLElement).textContent =
    `${hosts.length} host${hosts.length === 1 ? '' : 's'} in the fleet, as each last published itself. ` +
    (moves
      ? 'Drain and Move run as jobs; a host drains itself: open its own dashboard to drain another.'
      : 'Moves need jaulad --allow-moves on this host (or, as root on it: "jaula migrate", "jaula fleet drain").');
  const [guests, ha] = await Promise.all([
    api<FleetGuest[]>('GET', '/v1/fleet/guests'),
    api<FleetHa>('GET', '/v1/fleet/ha'),
  ]);
  const replica = new Map(ha.replicas.map((r) => [r.guest, r]));
  ui.fillTable(
    '#fleet-guests-table',
    guests.map((g) => {
      const r = replica.get(g.name);
      const age = r ? Math.max(0, Math.round((Date.now() - Date.parse(r.asOf)) / 1000)) : 0;
      return [
        { 'data-guest': g.name, 'data-host': g.host },
        [
          g.name,
          ['host', g.host],
          ['state', g.state],
          r && r.from === g.host ? `on ${r.host}, ${age} s old` : '',
          g.host === me && moves && targets.length
            ? button(ui, 'move', `Move ${g.name} to another host`, () => moveGuest(g.name, ui, targets))
            : '',
        ],
      ];
    }),
  );
}

/** Whether this page may move guests (jaulad --allow-moves, and remotes to move to), then the view. */
export async function initFleet(ui: FleetUi, info: EngineInfo): Promise<void> {
  moves = info.daemon?.tcpMoves === true;
  if (moves) remotes = (await api<RemoteInfo[]>('GET', '/v1/remotes').catch(() => [])).map((r) => r.name);
  ui.canMove = () => moves && remotes.length > 0;
  const load = (): void => void loadHosts(ui).catch(() => (section().hidden = true));
  (document.querySelector('#hosts-refresh') as HTMLElement).addEventListener('click', load);
  load();
  setInterval(load, HOSTS_MS);
}
