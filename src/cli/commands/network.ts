import { JaulaError } from '../../common/errors.js';
import { bool, list, str } from '../args.js';
import { formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { table } from '../table.js';

export const network: Command = {
  summary: 'manage networks: bridges with a gateway, address pools and NAT',
  help: `Usage: jaula network create NAME --subnet GW/PREFIX [--subnet6 GW6/PREFIX] [--bridge DEV] [--nat] [--dns IP]...
       jaula network list [--format table|json]
       jaula network delete NAME
       jaula network gc [--format table|json]     remove leftovers (namespaces, devices) of guests that are not running
       jaula network check [--format table|json]  the address binding trap: host daemons that would steal guests' traffic

A network is a Linux bridge on the host with the gateway address on it; guests attach with
veth pairs ("--interface eth0=NAME:auto"). The default network jaula0 is made on first use:
10.88.0.1/16 with NAT; under another JAULA_ROOT (a second instance, tests) a /24 of
10.200.0.0-10.249.255.0 derived from that root, with NAT too. If its subnet overlaps a route of
the host (another instance's, podman's 10.88.0.0/16), the first use says so: make jaula0
yourself then ("jaula network create jaula0 --subnet 10.89.0.1/16 --nat"). Once made,
"jaula network list" shows it.
An address outside every network (the seed's "vs01=eth1:192.168.39.1/24") is routed to the
guest on a host device instead: see "jaula build --help".

Examples:
  jaula network create lan --subnet 192.168.39.1/24 --nat
  jaula build vs01 -m skeleton --interface eth0=lan:192.168.39.10/24`,
  verbs: ['create', 'list', 'delete', 'gc', 'check'],
  specs: {
    subnet: { type: 'string' },
    subnet6: { type: 'string' },
    bridge: { type: 'string' },
    nat: { type: 'bool' },
    dns: { type: 'list' },
    format: { type: 'string' },
  },
  async run(p) {
    const e = await engine();
    const [verb, name, ...extra] = p.positionals;
    if (extra.length)
      throw new JaulaError('usage', `Unexpected arguments "${extra.join(' ')}" (see "jaula network --help")`);
    switch (verb) {
      case 'create': {
        if (!name) throw new JaulaError('usage', 'jaula network create NAME --subnet GW/PREFIX');
        const subnet = str(p, 'subnet');
        if (!subnet)
          throw new JaulaError(
            'usage',
            `Give the network's gateway and prefix: jaula network create ${name} --subnet 192.168.39.1/24`,
          );
        const s6 = str(p, 'subnet6');
        const bridge = str(p, 'bridge');
        const n = await e.createNetwork({
          name,
          subnet,
          nat: bool(p, 'nat'),
          dns: list(p, 'dns'),
          ...(s6 ? { subnet6: s6 } : {}),
          ...(bridge ? { bridge } : {}),
        });
        out(
          `Created network "${name}" (bridge ${n.bridge}, ${subnet}${n.nat ? ', NAT' : ''}); the bridge appears when a guest on it starts.`,
        );
        return 0;
      }
      case 'list':
      case undefined: {
        const ns = await e.listNetworks();
        if (formatOf(p) === 'json') json(ns);
        else
          out(
            table(
              ['NAME', 'BRIDGE', 'SUBNET', 'SUBNET6', 'NAT', 'UP', 'GUESTS'],
              ns.map((n) => [
                n.name,
                n.bridge,
                n.subnet,
                n.subnet6,
                n.nat ? 'yes' : 'no',
                n.up ? 'yes' : 'no',
                n.guests.join(',') || undefined,
              ]),
            ),
          );
        return 0;
      }
      case 'delete':
        if (!name) throw new JaulaError('usage', 'jaula network delete NAME');
        await e.deleteNetwork({ name });
        out(`Deleted network "${name}".`);
        return 0;
      case 'gc': {
        const r = (await e.networkGc()).removed;
        if (formatOf(p) === 'json') json(r);
        else out(r.length ? `Removed network leftovers of: ${r.join(', ')}` : 'No network leftovers.');
        return 0;
      }
      case 'check': {
        const findings = await e.networkCheck();
        if (formatOf(p) === 'json') json(findings);
        else
          out(
            findings.length
              ? findings.map((f) => `${f.problem}\n  fix: ${f.fix}`).join('\n')
              : "No host daemon takes guests' addresses or forwarded ports.",
          );
        return findings.length ? 1 : 0;
      }
      default:
        throw new JaulaError(
          'usage',
          `Unknown network command "${verb}": use create, list, delete, gc or check`,
        );
    }
  },
};
