import type { FleetHost, FleetStatus } from '../../api/types.js';
import { JaulaError } from '../../common/errors.js';
import { bool, list, str } from '../args.js';
import { err, formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { table } from '../table.js';

const GiB = 2 ** 30;

/** --label k=v,k2=v2 (repeatable) as a record. */
function labelsOf(items: string[]): Record<string, string> | undefined {
  if (!items.length) return undefined;
  const out: Record<string, string> = {};
  for (const it of items.flatMap((x) => x.split(','))) {
    const m = /^([A-Za-z0-9_.-]+)=(.*)$/.exec(it);
    if (!m) throw new JaulaError('usage', `--label "${it}" is not KEY=VALUE (e.g. --label zone=a)`);
    out[m[1] as string] = m[2] as string;
  }
  return out;
}

function statusLines(s: FleetStatus, verb: string): string {
  if (s.state === 'none') return 'This host is in no fleet.';
  const lines = [
    `${verb} as "${s.host}" (etcd ${s.endpoints.join(',')}, lease TTL ${s.ttl} s): ${s.state === 'configured' ? 'jaulad holds the lease once it runs ("jaula daemon")' : s.state}`,
  ];
  if (s.claimed?.length) lines.push(`Reserved in the fleet: ${s.claimed.join(', ')}`);
  for (const p of s.problems ?? []) lines.push(`Not reserved: ${p}`);
  return lines.join('\n');
}

function hostsTable(hs: FleetHost[]): string {
  return table(
    [
      'HOST',
      'STATE',
      'CPUS',
      'MEMORY',
      'FREE MEM',
      'DISK FREE',
      'GUESTS',
      'RUNNING',
      'LABELS',
      'LIVE MIGRATION',
    ],
    hs.map((h) => [
      h.host,
      h.state,
      String(h.cpus),
      `${(h.memoryBytes / GiB).toFixed(1)}G`,
      `${(h.memoryFreeBytes / GiB).toFixed(1)}G`,
      `${(h.diskFreeBytes / GiB).toFixed(1)}G`,
      String(h.guests),
      String(h.running),
      Object.entries(h.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(',') || undefined,
      h.liveMigration,
    ]),
  );
}

/** --mode of drain and balance. */
function moveMode(p: Parameters<Command['run']>[0]): 'cold' | 'sync' | 'live' {
  const mode = str(p, 'mode') ?? 'sync';
  if (mode !== 'cold' && mode !== 'sync' && mode !== 'live')
    throw new JaulaError('usage', `--mode is cold, sync or live, not ${JSON.stringify(mode)}`);
  return mode;
}

const quietSent = (l: string): void => (/ sent \(/.test(l) ? undefined : err(`jaula: ${l}`));

async function balance(
  p: Parameters<Command['run']>[0],
  e: import('../../api/engine.js').Engine,
): Promise<number> {
  const dryRun = bool(p, 'dry-run');
  const r = await e.fleetBalance({ mode: moveMode(p), dryRun }, { onProgress: quietSent });
  if (formatOf(p) === 'json') json(r);
  else if (dryRun)
    out(
      r.planned.length
        ? r.planned.map((m) => `${m.guest}: ${m.from} -> ${m.to}`).join('\n')
        : 'Balanced already: nothing to move.',
    );
  else {
    for (const m of r.moved) out(`${m.guest}: moved from ${m.from} to ${m.to} (${m.state})`);
    for (const f of r.failed) out(`${f.guest}: stays on ${f.from} (its move to ${f.to} failed: ${f.error})`);
    out(`Balanced: ${r.moved.length} moved, ${r.failed.length} failed.`);
  }
  return r.failed.length ? 1 : 0;
}

async function drain(
  p: Parameters<Command['run']>[0],
  e: import('../../api/engine.js').Engine,
): Promise<number> {
  const to = list(p, 'to');
  const r = await e.fleetDrain(
    { mode: moveMode(p), ...(to.length ? { to } : {}) },
    { onProgress: quietSent },
  );
  if (formatOf(p) === 'json') json(r);
  else {
    for (const m of r.moved)
      out(
        `${m.guest}: moved to ${m.to} (${m.state}${m.state === 'running' ? `, down ${m.downtimeMs} ms` : ''})`,
      );
    for (const f of r.failed) out(`${f.guest}: stays here (its move to ${f.to} failed: ${f.error})`);
    out(`Drained "${r.host}": ${r.moved.length} moved, ${r.failed.length} stayed.`);
  }
  return r.failed.length ? 1 : 0;
}

const ago = (iso: string): string =>
  `${Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))} s ago`;

async function ha(
  p: Parameters<Command['run']>[0],
  e: import('../../api/engine.js').Engine,
): Promise<number> {
  const r = await e.fleetHa();
  if (formatOf(p) === 'json') {
    json(r);
    return 0;
  }
  out(`Leader: ${r.leader ?? '(none: no host is up)'}`);
  out(
    r.replicas.length
      ? table(
          ['GUEST', 'OWNER', 'STANDBY', 'REPLICA OF', 'AGE', 'RAN', 'LAST ROUND'],
          r.replicas.map((x) => [
            x.guest,
            x.from,
            x.host,
            x.asOf,
            ago(x.asOf),
            x.running ? 'yes' : 'no',
            `${x.bytes} B`,
          ]),
        )
      : 'No HA guest has a replica yet ("jaula set GUEST ha=on" on its host).',
  );
  for (const f of r.failovers)
    out(
      `${f.at}: "${f.guest}" from lost host ${f.from} to ${f.to} (its replica of ${f.asOf}; writes lost: ${(f.lostMs.atLeast / 1000).toFixed(1)} to ${(f.lostMs.atMost / 1000).toFixed(1)} s): ${f.outcome ?? 'ordered'}`,
    );
  return 0;
}

export const fleet: Command = {
  summary: 'a fleet of hosts on etcd: join, leave, list the hosts',
  help: `Usage: jaula fleet init --endpoints URL[,URL...] [--host NAME] [--label K=V]... [--ttl S] [--network NET]...
       jaula fleet join --endpoints URL[,URL...] [--host NAME] [--label K=V]... [--ttl S] [--network NET]...
       jaula fleet leave [--force]
       jaula fleet hosts [--format table|json]
       jaula fleet status [--format table|json]
       jaula fleet drain [--mode sync|cold|live] [--to HOST]... [--format table|json]
       jaula fleet balance [--mode sync|cold|live] [--dry-run] [--format table|json]
       jaula fleet ha [--format table|json]

Hosts that share an etcd cluster form a fleet: "jaula list --fleet" shows every host's guests,
and guest names, context IDs, MACs and the addresses of the fleet's networks (--network) are
unique across the fleet (reserved in etcd by transactions). Each host's jaulad holds an etcd
lease of --ttl seconds (default 5) with the host's record on it; a host that cannot renew it
for that long stops its own guests (fencing), so that no guest ever runs on two hosts, and
joins again when etcd answers.

init makes the fleet (the first host), join adds this host to it; both reserve this host's
guests. drain moves every guest of this host to the others (sync moves by default), one after
the other, each to the up host with the fewest guests (then the most free memory) among those
this host knows as remotes of the same name ("jaula remote add HOST URL"; --to: only these);
the fleet hands each guest over to its new host. A guest whose move fails stays here, and the
drain goes on with the next (the exit status is then 1). balance takes this host down to its
share: while it owns two guests more than the up host owning the fewest (owner records in
etcd), one of its guests (stopped ones first) moves there; run it on the loaded hosts to even
the fleet out (a host moves only its own guests). --dry-run prints the plan only.

High availability: a guest set with "jaula set GUEST ha=on" (ha.standby=HOST|auto,
ha.interval=SECONDS, default 60) is replicated by its host's jaulad to a standby host every
interval: what changed since the last round, the last pass with the guest frozen, so that the
replica is of one moment. When its host's lease expires, the fleet's leader (elected in etcd)
gives the guest to its standby, which starts it from the replica; writes after the replica's
moment are lost, and "jaula fleet ha" says how many seconds' worth. Guests without ha show as
"lost" in "jaula list --fleet" until their host is back. ha shows the leader, the replicas and
the failovers. leave gives the lease back; it is refused while the host owns guests (--force leaves
their names reserved to it).

Examples:
  jaula fleet init --endpoints http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379
  jaula fleet join --endpoints http://10.0.0.1:2379 --label zone=b
  jaula fleet hosts
  jaula fleet drain --mode live
  jaula fleet balance --dry-run
  jaula set db1 ha=on ha.interval=10 && jaula fleet ha`,
  verbs: ['init', 'join', 'leave', 'hosts', 'status', 'drain', 'balance', 'ha'],
  specs: {
    endpoints: { type: 'string' },
    host: { type: 'string' },
    label: { type: 'list' },
    ttl: { type: 'string' },
    network: { type: 'list' },
    address: { type: 'string' },
    force: { type: 'bool' },
    format: { type: 'string' },
    mode: { type: 'string' },
    to: { type: 'list' },
    'dry-run': { type: 'bool' },
  },
  async run(p) {
    const e = await engine();
    const [verb, ...extra] = p.positionals;
    if (extra.length)
      throw new JaulaError('usage', `Unexpected arguments "${extra.join(' ')}" (see "jaula fleet --help")`);
    switch (verb) {
      case 'init':
      case 'join': {
        const endpoints = str(p, 'endpoints')?.split(',').filter(Boolean);
        const ttl = str(p, 'ttl');
        if (ttl !== undefined && !/^\d+$/.test(ttl))
          throw new JaulaError('usage', `--ttl ${ttl}: give whole seconds (2 to 60)`);
        const labels = labelsOf(list(p, 'label'));
        const networks = list(p, 'network');
        const host = str(p, 'host');
        const address = str(p, 'address');
        const s = await e.joinFleet({
          create: verb === 'init',
          ...(endpoints ? { endpoints } : {}),
          ...(host ? { host } : {}),
          ...(labels ? { labels } : {}),
          ...(ttl ? { ttl: Number(ttl) } : {}),
          ...(networks.length ? { networks } : {}),
          ...(address ? { address } : {}),
        });
        if (formatOf(p) === 'json') json(s);
        else out(statusLines(s, verb === 'init' ? 'Made the fleet and joined it' : 'Joined the fleet'));
        return s.problems?.length ? 1 : 0;
      }
      case 'leave': {
        await e.leaveFleet({ force: bool(p, 'force') });
        out('Left the fleet.');
        return 0;
      }
      case 'status':
      case undefined: {
        const s = await e.getFleet();
        if (formatOf(p) === 'json') json(s);
        else out(statusLines(s, 'In a fleet'));
        return 0;
      }
      case 'hosts': {
        const hs = await e.fleetHosts();
        if (formatOf(p) === 'json') json(hs);
        else out(hostsTable(hs));
        return 0;
      }
      case 'drain':
        return drain(p, e);
      case 'balance':
        return balance(p, e);
      case 'ha':
        return ha(p, e);
      default:
        throw new JaulaError(
          'usage',
          `Unknown fleet command "${verb}": use init, join, leave, hosts, status, drain, balance or ha`,
        );
    }
  },
};
