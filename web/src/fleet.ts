/**
 * The dashboard's hosts view, shown when this jaulad's host is in a fleet: every host's state,
 * guests (running of all), free memory and disk, and whether it can take live moves, from the
 * records each host publishes in etcd (GET /v1/fleet/hosts, again every 10 s and on Refresh);
 * and every host's guests with their host, and for HA guests where their replica is and how
 * old (GET /v1/fleet/guests, /v1/fleet/ha): a guest whose host is gone shows as lost.
 * No drain or move buttons: over TCP jaulad moves no guests (that is root's, on the unix
 * socket: jaula fleet drain, jaula migrate), so the page says so instead of offering them.
 */
import type { FleetGuest, FleetHa, FleetHost, FleetStatus } from '../../src/api/types.js';
import { api } from './api.js';
import { bytes } from './chart.js';

/** What the view needs of the dashboard (app.ts). */
export interface FleetUi {
  fillTable(sel: string, rows: [Record<string, string>, (string | [string, string])[]][]): void;
}

const HOSTS_MS = 10_000;

function section(): HTMLElement {
  return document.querySelector('#hosts') as HTMLElement;
}

async function loadHosts(ui: FleetUi): Promise<void> {
  const s = await api<FleetStatus>('GET', '/v1/fleet').catch(() => undefined);
  const inFleet = !!s && s.state !== 'none' && s.state !== 'configured';
  section().hidden = !inFleet;
  if (!inFleet) return;
  const me = s.host;
  const hosts = await api<FleetHost[]>('GET', '/v1/fleet/hosts');
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
      ],
    ]),
  );
  (document.querySelector('#hosts-note') as HTMLElement).textContent =
    `${hosts.length} host${hosts.length === 1 ? '' : 's'} in the fleet, as each last published itself. Moves and drains are root's: "jaula migrate", "jaula fleet drain" on the host.`;
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
        ],
      ];
    }),
  );
}

export function initFleet(ui: FleetUi): void {
  const load = (): void => void loadHosts(ui).catch(() => (section().hidden = true));
  (document.querySelector('#hosts-refresh') as HTMLElement).addEventListener('click', load);
  load();
  setInterval(load, HOSTS_MS);
}
