import { JaulaError } from '../../common/errors.js';
import { setLimits, showLimits } from '../../core/limits.js';
import { bool, type Parsed } from '../args.js';
import { formatOf, json, out, type Command } from '../command.js';
import { table } from '../table.js';

function nameOf(p: Parsed): string {
  const name = p.positionals[0];
  if (!name)
    throw new JaulaError(
      'usage',
      'Give the guest: jaula set NAME [KEY=VALUE...] [--save] (see "jaula set --help")',
    );
  return name;
}

export const set: Command = {
  summary: "change a guest's resource limits (live, and with --save for later starts)",
  help: `Usage: jaula set NAME KEY=VALUE... [--save]
       jaula set NAME [--format table|json]       show its limits: saved, live, default

Changes limits of a running guest at once, by writing its cgroup files. Without --save the
change lasts until the guest stops; with --save it is also stored in the [limits] table of the
guest's config.toml and applied at every start (a stopped guest needs --save). KEY= (empty)
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

Examples:
  jaula set web1 cpu.weight=300 memory.max=512M --save
  jaula set web1 cpu.max=50% pids.max=256
  jaula set web1 io.max=/dev/vda:rbps=20M,wbps=10M --save
  jaula set web1 memory.max= --save      # back to the default
  jaula set web1`,
  specs: { save: { type: 'bool' }, format: { type: 'string' } },
  async run(p) {
    const name = nameOf(p);
    const assignments = p.positionals.slice(1);
    if (assignments.length === 0) {
      const v = showLimits(name);
      if (formatOf(p) === 'json') json(v);
      else
        out(
          table(
            v.running ? ['KEY', 'LIVE', 'SAVED', 'DEFAULT'] : ['KEY', 'SAVED', 'DEFAULT'],
            v.limits.map((l) =>
              v.running
                ? [l.key, l.live || '-', l.saved || '-', l.default]
                : [l.key, l.saved || '-', l.default],
            ),
          ),
        );
      return 0;
    }
    const r = await setLimits(name, assignments, { save: bool(p, 'save') });
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
