import { isJaulaError, JaulaError } from '../../common/errors.js';
import type { BuildRequest } from '../../api/types.js';
import type { Engine } from '../../api/engine.js';
import { NAME_PATTERN } from '../../common/names.js';
import { parseBytes } from '../../common/size.js';
import { bool, list, num, onePositional, str } from '../args.js';
import { err, out, type Command } from '../command.js';
import { engine } from '../engine.js';

/** `-t X` names a stored template (else it is a file): a name, no archive's extension, and the engine has it. */
async function isStored(e: Engine, x: string): Promise<boolean> {
  if (!new RegExp(NAME_PATTERN, 'u').test(x) || /\.(tar|tgz|tzst|tar\.gz|tar\.zst)$/.test(x)) return false;
  try {
    await e.getTemplate({ name: x });
    return true;
  } catch (err) {
    if (isJaulaError(err) && err.code === 'not_found') return false;
    throw err;
  }
}

export const build: Command = {
  summary: 'build a guest (skeleton, template or debootstrap)',
  help: `Usage: jaula build NAME -m skeleton|template|debootstrap [options] [-- METHOD-ARGS]

Options:
  -m, --method M          skeleton | template | debootstrap | oci
  --hostname H            the guest's hostname (default: NAME)
  --context N             its context ID (default: the next free one from 100)
  --host auto|HOST|K=V    in a fleet: build it on that host (K=V: one with that label; auto:
                          the up host owning the fewest guests, then with the most free
                          memory), followed from here; a template path is that host's
  --spread GROUP          anti-affinity (repeatable): the mark spread.GROUP; in a fleet, placed
                          (--host auto unless given) on a host holding no other guest of GROUP
  --ha                    in a fleet: make it HA (as "jaula set NAME ha=on": replicated to a
                          standby host, started there if its host is lost)
  --interface SPEC        [name=][dev:]ip/prefix|auto[,options], repeatable, up to 10; the
                          form gives the mode:
                            eth0=NET:auto|ip/prefix  bridge: a port on jaula network NET (the
                                                     default is jaula0), an address of its subnet
                            eth0=BR:ip/prefix        bridge: a port on the host's bridge BR
                            vs01=eth1:192.168.39.1/24  routed (the seed's meaning): the address
                                                     on host device eth1, routed to the guest,
                                                     proxy ARP on eth1; the host reaches it
                            ...,mode=macvlan|ipvlan   on a host device (the host cannot reach it)
                          options: mode=bridge|routed|macvlan|ipvlan mac=M ip6=CIDR|auto gw=IP
                                   gw6=IP isolated ingress=RATE egress=RATE (bit/s: 10M, 1G)
  --forward SPEC          [host-ip:]host-port:guest-port[/tcp|/udp], repeatable (e.g. 8080:80):
                          without host-ip on every host address, the loopback included (curl
                          127.0.0.1:8080 on the host), with 127.0.0.1 on the loopback only; the
                          first IPv4 interface gets the traffic (loopback: on a jaula network)
  --initstyle S           plain (/sbin/init) | sysv (/etc/init.d/rc 3) | cmd (a command)
  --cmd "CMD ARGS"        the command of the cmd init style (split on spaces)
  --mark M                a mark for autostart and bulk operations, repeatable
  --depends G             a guest this one starts after, repeatable
  --storage D             overlay | dir | reflink (default: overlay where the kernel has it, else dir)
  --quota SIZE            limit the guest's own files to SIZE (e.g. 2G): an ext4 image of that size
  --quota-inodes N        and to about N files (ext4 rounds to a multiple of 16)
  --privileged            no user namespace: the guest's root is the host's root (opt-in;
                          list and doctor show it). Default: an unprivileged guest
  --profile P             default | full-os (lets a distribution's init mount file systems)

Method arguments (after --):
  template:     -t NAME (a stored template: see "jaula template list") or -t FILE.tar|.tar.gz|.tar.zst
  debootstrap:  -d RELEASE [-m MIRROR] [--variant minbase] [--include P1,P2] [--init sysvinit|systemd|none]
  oci:          -i REF (a stored image, else pulled: see "jaula image") or -i FILE|DIR (docker save,
                oci-archive, OCI layout); overlay storage; the image's Entrypoint/Cmd run under
                jaula-init (init style cmd) unless it has an init of its own

Examples:
  jaula build vs01 -m skeleton --hostname vs01 --context 1001 --interface vs01=eth1:192.168.39.1/24
  jaula build web1 -m debootstrap --mark default -- -d bookworm
  jaula build web2 -m template -- -t /var/lib/jaula/bookworm.tar.zst
  jaula build web3 -m template --quota 2G -- -t bookworm
  jaula build job1 -m skeleton --initstyle cmd --cmd "/bin/sleep 3600"
  jaula build app1 -m oci --forward 8080:80 -- -i 127.0.0.1:5000/web:1.0`,
  specs: {
    method: { type: 'string', short: 'm' },
    hostname: { type: 'string' },
    context: { type: 'number' },
    host: { type: 'string' },
    ha: { type: 'bool' },
    spread: { type: 'list' },
    interface: { type: 'list' },
    forward: { type: 'list' },
    initstyle: { type: 'string' },
    cmd: { type: 'string' },
    mark: { type: 'list' },
    depends: { type: 'list' },
    storage: { type: 'string' },
    quota: { type: 'string' },
    'quota-inodes': { type: 'number' },
    privileged: { type: 'bool' },
    profile: { type: 'string' },
    quiet: { type: 'bool', short: 'q' },
  },
  async run(p) {
    const name = onePositional(p, 'build');
    const method = str(p, 'method');
    if (!method)
      throw new JaulaError(
        'usage',
        'Give a build method: jaula build NAME -m skeleton|template|debootstrap|oci',
      );
    const ac = new AbortController();
    const abort = (): void =>
      ac.abort(new JaulaError('runtime', 'The build was interrupted; what it made was removed'));
    process.once('SIGINT', abort);
    process.once('SIGTERM', abort);
    const cmd = str(p, 'cmd');
    // The method and initstyle are the user's words: the engine checks them (its message names the choices).
    const r: BuildRequest = {
      name,
      method: method as BuildRequest['method'],
      interfaces: list(p, 'interface'),
      forwards: list(p, 'forward'),
      marks: [...list(p, 'mark'), ...list(p, 'spread').map((g) => `spread.${g}`)],
      depends: list(p, 'depends'),
      methodArgs: p.rest,
    };
    const hostname = str(p, 'hostname');
    const context = num(p, 'context');
    const initstyle = str(p, 'initstyle');
    const storage = str(p, 'storage');
    const quota = str(p, 'quota');
    const qi = num(p, 'quota-inodes');
    if (quota !== undefined) r.quotaBytes = parseBytes(quota, 'quota');
    if (qi !== undefined) r.quotaInodes = qi;
    const profile = str(p, 'profile');
    if (hostname !== undefined) r.hostname = hostname;
    if (context !== undefined) r.context = context;
    const host = str(p, 'host');
    if (host !== undefined) r.host = host;
    if (initstyle !== undefined) r.initstyle = initstyle as NonNullable<BuildRequest['initstyle']>;
    if (storage !== undefined) r.storage = storage;
    if (bool(p, 'privileged')) r.privileged = true;
    if (profile !== undefined) r.profile = profile;
    if (cmd !== undefined) r.cmd = cmd.split(/\s+/).filter(Boolean);
    // A template file is the host's: make its path absolute for jaulad, whose working directory
    // is not ours. A stored template's name stays a name.
    const e = await engine();
    const t = r.methodArgs?.[1];
    if (
      method === 'template' &&
      r.methodArgs?.[0] === '-t' &&
      t &&
      !t.startsWith('/') &&
      // (placed on another host: a bare name is a template stored there)
      (host === undefined || /\/|\.tar/.test(t)) &&
      !(await isStored(e, t))
    )
      r.methodArgs = ['-t', (await import('node:path')).resolve(t), ...r.methodArgs.slice(2)];
    if (method === 'oci' && r.methodArgs?.[0] === '-i' && t?.startsWith('.'))
      r.methodArgs = ['-i', (await import('node:path')).resolve(t), ...r.methodArgs.slice(2)];
    const cfg = await e.buildGuest(r, {
      signal: ac.signal,
      onProgress: bool(p, 'quiet') ? () => {} : (l) => err(`jaula: ${l}`),
    });
    // (one more request: the guest's host, forwarded to it when it is another host's)
    if (bool(p, 'ha')) await e.configureGuest({ name: cfg.name, ha: { ha: 'on' } });
    out(
      `Built guest "${cfg.name}"${bool(p, 'ha') ? ' (HA)' : ''} (context ${cfg.context}, hostname ${cfg.hostname}, init style ${cfg.initstyle}, ${cfg.storage} storage). Start it with: jaula start ${cfg.name}`,
    );
    return 0;
  },
};
