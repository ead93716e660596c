import { formatLocalMinute } from '../../common/cron.js';
import { JaulaError } from '../../common/errors.js';
import type { Engine } from '../../api/engine.js';
import type { ConfigureRequest, GuestSettings } from '../../api/types.js';
import { formatBytes, parseBytes } from '../../common/size.js';
import { bool, list, num, str } from '../args.js';
import { formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { table } from '../table.js';

export const set: Command = {
  summary: "change a guest's limits (live, --save to keep) and settings (network, hostname, ...)",
  help: `Usage: jaula set NAME KEY=VALUE... [--save]      resource limits
       jaula set NAME [options]                   network, hostname, marks, ...
       jaula set NAME [--format table|json]       show its limits: saved, live, default

Limits (KEY=VALUE) change a running guest at once, by writing its cgroup files. Without --save
the change lasts until the guest stops; with --save it is also stored in the [limits] table of
the guest's config.toml and applied at every start (a stopped guest needs --save). KEY= (empty)
goes back to the default.

Keys (cgroup v2 names; on a v1 host the v1 counterpart is written):
  cpu.weight=N          relative CPU share, 1..10000 (default 100; v1: cpu.shares = N*1024/100)
  cpu.max=50%|QUOTA/PERIOD|max
                        CPU bandwidth: "50%" of one CPU, "200%" two; microseconds per period
  cpuset=0-1,3          CPUs the guest may use
  memory.max=SIZE|max   hard memory limit (SIZE: 512M, 1.5G, 1024K, bytes)
  memory.high=SIZE|max  throttling limit (v1: memory.soft_limit_in_bytes, the reclaim target)
  memory.swap=SIZE|max  swap beyond memory.max (v1: memory.memsw = memory.max + swap)
  pids.max=N|max        processes and threads (default 4096)
  io.weight=N           relative block I/O share, 1..10000 (v1: blkio.weight, if the kernel has it)
  io.max=DEVICE:rbps=SIZE,wbps=SIZE,riops=N,wiops=N
                        block I/O limits per disk (DEVICE: /dev/vda or MAJOR:MINOR; "max" lifts)
  nofile=N|SOFT:HARD    open files per process (at most the host's hard limit)

A limit the host cannot honour (a missing controller or kernel feature) is refused with the
reason; nothing is ever dropped silently.

Automatic snapshots (Incus' keys; saved at once, in [snapshots] of config.toml; KEY= removes):
  snapshots.schedule=CRON|@ALIAS   when jaulad takes one: 5 cron fields (minute hour day month
                        weekday: *, 1,5, 1-5, */15; 0 or 7 Sunday; with both days given, either
                        matches), @hourly @daily @midnight @weekly @monthly @yearly (a minute and
                        hour of the guest's own, as Incus spreads them), several joined by ", "
  snapshots.expiry=SPAN how long a scheduled snapshot is kept: M minutes, H hours, d days,
                        w weeks, m months, y years ("2w", "1d 12H")
  snapshots.pattern=P   their names (default snap%d: %d the next number; {YYYY} {MM} {DD} {hh}
                        {mm}: the local time)
  snapshots.schedule.stopped=true|false
                        snapshot the guest when it is stopped too (default false: skipped)
Times are the host's local time. jaulad takes and expires them (each minute; at its start it
deletes the expired ones, and takes none for minutes it was not running).

High availability in a fleet (saved at once, in [ha] of config.toml; see "jaula fleet --help"):
  ha=on|off             replicate the guest to a standby host; started there if its host is lost
  ha.standby=HOST|auto  the standby (a fleet host known as a remote of that name; auto: the last
                        one while it is up, else the up host owning the fewest guests)
  ha.interval=SECONDS   between two replication rounds (default 60)

The options below change the guest's stored config (always saved); network changes apply at
its next start ("jaula restart NAME"). Addresses, MACs and forwards are checked against every
guest and the host: a conflict is refused and nothing is changed.

Options:
  --interface SPEC        replace all interfaces (repeatable; see "jaula build --help")
  --add-interface SPEC    add an interface (repeatable)
  --remove-interface IF   remove the interface named IF inside the guest (repeatable)
  --no-interfaces         remove all interfaces (loopback only)
  --forward SPEC          replace all port forwards ([host-ip:]host-port:guest-port[/tcp|/udp])
  --add-forward SPEC      add a port forward
  --remove-forward SPEC   remove a port forward
  --hostname H  --initstyle S  --cmd "CMD"  --stop-timeout S
  --runtime crun|runc|auto  the OCI runtime at its next start (live moves need runc)
  --mark M                the guest's marks (repeatable, replaces them); --no-marks: none
  --depends G             the guests it starts after (repeatable, replaces); --no-depends: none
  --save                  keep limit changes in the config (applied at every start)
  --format table|json
  --quota SIZE|none       limit the guest's own files (e.g. 4G), or no limit; the guest must be
  --quota-inodes N        stopped (its files are copied into a new image unless it only grows)

Examples:
  jaula set web1 cpu.weight=300 memory.max=512M --save
  jaula set web1 cpu.max=50% pids.max=256
  jaula set web1 io.max=/dev/vda:rbps=20M,wbps=10M --save
  jaula set web1 memory.max= --save      # back to the default
  jaula set web1
  jaula set web1 --add-interface eth1=jaula0:auto,isolated
  jaula set web1 --add-forward 8080:80 --add-forward 5353:53/udp
  jaula set web1 --hostname www.example.org
  jaula set web1 snapshots.schedule=@daily snapshots.expiry=2w
  jaula set web1 snapshots.schedule="0 */6 * * *" snapshots.pattern="auto-{YYYY}{MM}{DD}-{hh}{mm}"
  jaula set web1 snapshots.schedule=         # no more scheduled snapshots
  jaula set db1 ha=on ha.interval=10`,
  specs: {
    interface: { type: 'list' },
    'add-interface': { type: 'list' },
    'remove-interface': { type: 'list' },
    'no-interfaces': { type: 'bool' },
    forward: { type: 'list' },
    'add-forward': { type: 'list' },
    'remove-forward': { type: 'list' },
    hostname: { type: 'string' },
    initstyle: { type: 'string' },
    cmd: { type: 'string' },
    mark: { type: 'list' },
    depends: { type: 'list' },
    'no-marks': { type: 'bool' },
    'no-depends': { type: 'bool' },
    'stop-timeout': { type: 'number' },
    runtime: { type: 'string' },
    save: { type: 'bool' },
    format: { type: 'string' },
    quota: { type: 'string' },
    'quota-inodes': { type: 'number' },
  },
  async run(p) {
    const [name, ...args] = p.positionals;
    if (!name)
      throw new JaulaError(
        'usage',
        'Give the guest to change: jaula set NAME [KEY=VALUE...] [options] (see "jaula set --help")',
      );
    const bad = args.find((a) => !a.includes('='));
    if (bad)
      throw new JaulaError(
        'usage',
        `Unexpected argument "${bad}": limits are KEY=VALUE, e.g. memory.max=512M (see "jaula set --help")`,
      );
    const assignments = args.filter((a) => !isSnapshotKey(a) && !isHaKey(a));
    const ch = configureRequest(name, p);
    const quota = str(p, 'quota');
    const qi = num(p, 'quota-inodes');
    const changes = Object.keys(ch).length > 1;
    if (!changes && assignments.length === 0 && quota === undefined && qi === undefined)
      return showGuestLimits(name, p, await engine());
    if (quota !== undefined || qi !== undefined) {
      const q = await (
        await engine()
      ).setQuota({
        name,
        ...(quota !== undefined ? { bytes: quota === 'none' ? null : parseBytes(quota, 'quota') } : {}),
        ...(qi !== undefined ? { inodes: qi } : {}),
      });
      out(
        q.quotaBytes
          ? `Guest "${name}" may use ${formatBytes(q.quotaBytes)}${q.quotaInodes ? ` and ${q.quotaInodes} inodes` : ''} for its own files.`
          : `Guest "${name}" has no quota.`,
      );
    }
    if (changes) {
      const e = await engine();
      const cfg = await e.configureGuest(ch);
      out(
        `Saved the config of guest "${name}"${cfg.interfaces.length ? `; interfaces: ${cfg.interfaces.join(' ')}` : ''}.`,
      );
      // Marks, dependencies and the stop timeout are read when they are used (bulk operations,
      // autostart, a stop): in effect at once. The rest shapes the guest at its start.
      const atStart = (
        [
          ['hostname', ch.hostname],
          ['init style', ch.initstyle],
          ['command', ch.cmd],
          ['interfaces', ch.interfaces ?? ch.addInterfaces ?? ch.removeInterfaces],
          ['port forwards', ch.forwards ?? ch.addForwards ?? ch.removeForwards],
        ] as const
      )
        .filter(([, v]) => v !== undefined)
        .map(([k]) => k);
      if (ch.snapshots) await tellSchedule(e, cfg);
      if (ch.ha) out(haLine(cfg));
      const status = (await e.getGuest({ name })).status;
      if (atStart.length && status !== 'stopped')
        out(
          `It is running: the new ${atStart.join(', ')} ${atStart.length > 1 ? 'apply' : 'applies'} at its next start (jaula restart ${name}).`,
        );
    }
    if (assignments.length === 0) return 0;
    // Limits are written to the guest's cgroup files under the guest's lock, by jaulad when it
    // answers, else here.
    const r = await (await engine()).setLimits({ name, assignments, save: bool(p, 'save') });
    if (formatOf(p) === 'json') {
      json(r);
      return 0;
    }
    const what = Object.entries(r.changes)
      .map(([k, v]) => `${k}=${v || '(default)'}`)
      .join(' ');
    if (r.running && !r.saved)
      out(
        `Set ${what} on the running guest "${name}" (live only: gone at its next start; add --save to keep it).`,
      );
    else if (r.running) out(`Set ${what} on the running guest "${name}" and saved it in its config.`);
    else out(`Saved ${what} in the config of "${name}": it applies at its next start.`);
    return 0;
  },
};

const isSnapshotKey = (assignment: string): boolean => assignment.startsWith('snapshots.');
const isHaKey = (assignment: string): boolean => /^ha(\.[a-z]+)?=/.test(assignment);

/** `snapshots.KEY=VALUE` assignments as the API takes them (the values are checked by the engine). */
function snapshotAssignments(a: string[]): Record<string, string> {
  const r: Record<string, string> = {};
  for (const kv of a) {
    const eq = kv.indexOf('=');
    r[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return r;
}

const haLine = (cfg: GuestSettings): string =>
  cfg.ha
    ? `Guest "${cfg.name}" is HA: jaulad replicates it to ${cfg.ha.standby === 'auto' ? 'a standby host' : `host "${cfg.ha.standby}"`} every ${cfg.ha.interval} s ("jaula fleet ha" shows its replica).`
    : `Guest "${cfg.name}" is not HA.`;

/** What a changed schedule now does, and that only jaulad keeps it. */
async function tellSchedule(e: Engine, cfg: GuestSettings): Promise<void> {
  const s = cfg.snapshots;
  if (!s.schedule || !s.next) {
    out(`Guest "${cfg.name}" takes no scheduled snapshots.`);
    return;
  }
  out(
    `Scheduled snapshots of "${cfg.name}" (${s.schedule}${s.stopped ? '' : ', while it runs'}): the next at ${formatLocalMinute(new Date(s.next))}; named ${s.pattern}, ${s.expiry ? `kept ${s.expiry}` : 'kept until deleted'}.`,
  );
  if ((await e.getInfo()).engine === 'local')
    out('Note: jaulad does not run here; scheduled snapshots are taken and expired only while it runs.');
}

/** The config changes the options ask for (only `name` when there are none). */
function configureRequest(name: string, p: Parameters<Command['run']>[0]): ConfigureRequest {
  const ch: ConfigureRequest = { name };
  // Incus' snapshots.* keys are settings (saved at once); every other KEY=VALUE is a limit.
  const snapshots = p.positionals.slice(1).filter(isSnapshotKey);
  if (snapshots.length) ch.snapshots = snapshotAssignments(snapshots);
  const ha = p.positionals.slice(1).filter(isHaKey);
  if (ha.length) ch.ha = snapshotAssignments(ha);
  if (list(p, 'interface').length) ch.interfaces = list(p, 'interface');
  if (bool(p, 'no-interfaces')) ch.interfaces = [];
  if (list(p, 'add-interface').length) ch.addInterfaces = list(p, 'add-interface');
  if (list(p, 'remove-interface').length) ch.removeInterfaces = list(p, 'remove-interface');
  if (list(p, 'forward').length) ch.forwards = list(p, 'forward');
  if (list(p, 'add-forward').length) ch.addForwards = list(p, 'add-forward');
  if (list(p, 'remove-forward').length) ch.removeForwards = list(p, 'remove-forward');
  const hostname = str(p, 'hostname');
  const initstyle = str(p, 'initstyle');
  const cmd = str(p, 'cmd');
  const stopTimeout = num(p, 'stop-timeout');
  if (hostname !== undefined) ch.hostname = hostname;
  if (initstyle !== undefined) ch.initstyle = initstyle;
  if (cmd !== undefined) ch.cmd = cmd.split(/\s+/).filter(Boolean);
  if (list(p, 'mark').length) ch.marks = list(p, 'mark');
  if (bool(p, 'no-marks')) ch.marks = [];
  if (list(p, 'depends').length) ch.depends = list(p, 'depends');
  if (bool(p, 'no-depends')) ch.depends = [];
  if (stopTimeout !== undefined) ch.stopTimeout = stopTimeout;
  const runtime = str(p, 'runtime');
  if (runtime !== undefined) ch.runtime = runtime;
  return ch;
}

async function showGuestLimits(
  name: string,
  p: Parameters<Command['run']>[0],
  e: import('../../api/engine.js').Engine,
): Promise<number> {
  const v = await e.getLimits({ name });
  if (formatOf(p) === 'json') json(v);
  else
    out(
      table(
        v.running ? ['KEY', 'LIVE', 'SAVED', 'DEFAULT'] : ['KEY', 'SAVED', 'DEFAULT'],
        v.limits.map((l) =>
          v.running ? [l.key, l.live || '-', l.saved || '-', l.default] : [l.key, l.saved || '-', l.default],
        ),
      ),
    );
  return 0;
}
