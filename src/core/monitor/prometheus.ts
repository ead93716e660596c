/** The Prometheus exposition of the guests' counters (`jaula metrics`, jaulad's /metrics). */
import type { GuestSample } from './sample.js';

function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function num(v: number | null): string {
  if (v === null) return '+Inf';
  return Number.isInteger(v) ? String(v) : v.toFixed(6).replace(/0+$/, '').replace(/\.$/, '');
}

interface Family {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
  values: (s: GuestSample) => [Record<string, string>, number | null][];
}

const FAMILIES: Family[] = [
  {
    name: 'jaula_guest_cpu_usage_seconds_total',
    type: 'counter',
    help: 'CPU time used by the guest (user + system).',
    values: (s) => [[{}, s.cgroup.cpu.usageNs / 1e9]],
  },
  {
    name: 'jaula_guest_cpu_seconds_total',
    type: 'counter',
    help: 'CPU time used by the guest, by mode.',
    values: (s) => [
      [{ mode: 'user' }, s.cgroup.cpu.userNs / 1e9],
      [{ mode: 'system' }, s.cgroup.cpu.systemNs / 1e9],
    ],
  },
  {
    name: 'jaula_guest_cpu_periods_total',
    type: 'counter',
    help: 'CPU bandwidth periods elapsed under cpu.max.',
    values: (s) => [[{}, s.cgroup.cpu.periods]],
  },
  {
    name: 'jaula_guest_cpu_throttled_periods_total',
    type: 'counter',
    help: 'Periods in which the guest was throttled at cpu.max (limit hits).',
    values: (s) => [[{}, s.cgroup.cpu.throttled]],
  },
  {
    name: 'jaula_guest_cpu_throttled_seconds_total',
    type: 'counter',
    help: 'Time the guest spent throttled at cpu.max.',
    values: (s) => [[{}, s.cgroup.cpu.throttledNs / 1e9]],
  },
  {
    name: 'jaula_guest_memory_usage_bytes',
    type: 'gauge',
    help: 'Memory charged to the guest (incl. page cache).',
    values: (s) => [[{}, s.cgroup.memory.current]],
  },
  {
    name: 'jaula_guest_memory_limit_bytes',
    type: 'gauge',
    help: "The guest's memory.max (+Inf: none).",
    values: (s) => [[{}, s.cgroup.memory.limit]],
  },
  {
    name: 'jaula_guest_memory_limit_hits_total',
    type: 'counter',
    help: 'Times the guest hit its memory limit (v1 memory.failcnt, v2 memory.events max).',
    values: (s) => [[{}, s.cgroup.memory.limitHits]],
  },
  {
    name: 'jaula_guest_oom_kills_total',
    type: 'counter',
    help: 'Processes of the guest ended by the OOM killer.',
    values: (s) => [[{}, s.cgroup.memory.oomKills]],
  },
  {
    name: 'jaula_guest_pids',
    type: 'gauge',
    help: 'Tasks (processes and threads) in the guest.',
    values: (s) => [[{}, s.cgroup.pids.current]],
  },
  {
    name: 'jaula_guest_pids_limit',
    type: 'gauge',
    help: "The guest's pids.max (+Inf: none).",
    values: (s) => [[{}, s.cgroup.pids.limit]],
  },
  {
    name: 'jaula_guest_pids_limit_hits_total',
    type: 'counter',
    help: "Forks refused at the guest's pids.max.",
    values: (s) => [[{}, s.cgroup.pids.refusals]],
  },
  {
    name: 'jaula_guest_io_bytes_total',
    type: 'counter',
    help: 'Block I/O of the guest, bytes.',
    values: (s) => [
      [{ direction: 'read' }, s.cgroup.io.readBytes],
      [{ direction: 'write' }, s.cgroup.io.writeBytes],
    ],
  },
  {
    name: 'jaula_guest_io_operations_total',
    type: 'counter',
    help: 'Block I/O of the guest, operations.',
    values: (s) => [
      [{ direction: 'read' }, s.cgroup.io.readOps],
      [{ direction: 'write' }, s.cgroup.io.writeOps],
    ],
  },
  {
    name: 'jaula_guest_network_bytes_total',
    type: 'counter',
    help: "Network traffic of the guest's interfaces (but lo), bytes.",
    values: (s) => [
      [{ direction: 'receive' }, s.net.rxBytes],
      [{ direction: 'transmit' }, s.net.txBytes],
    ],
  },
  {
    name: 'jaula_guest_network_packets_total',
    type: 'counter',
    help: "Network traffic of the guest's interfaces (but lo), packets.",
    values: (s) => [
      [{ direction: 'receive' }, s.net.rxPackets],
      [{ direction: 'transmit' }, s.net.txPackets],
    ],
  },
  {
    name: 'jaula_guest_processes',
    type: 'gauge',
    help: 'Processes in the guest.',
    values: (s) => (s.processes === undefined ? [] : [[{}, s.processes]]),
  },
  {
    name: 'jaula_guest_start_time_seconds',
    type: 'gauge',
    help: 'When the guest started, seconds since the epoch.',
    values: (s) => (s.startedAt ? [[{}, Date.parse(s.startedAt) / 1000]] : []),
  },
];

/** The Prometheus text exposition (version 0.0.4) of the guests' counters. */
export function prometheusText(samples: readonly GuestSample[]): string {
  const lines: string[] = [
    '# HELP jaula_guests_running Guests running in this jaula instance.',
    '# TYPE jaula_guests_running gauge',
    `jaula_guests_running ${samples.length}`,
  ];
  for (const f of FAMILIES) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of samples)
      for (const [extra, v] of f.values(s)) {
        const labels = { guest: s.name, context: String(s.context), ...extra };
        const l = Object.entries(labels)
          .map(([k, x]) => `${k}="${label(x)}"`)
          .join(',');
        lines.push(`${f.name}{${l}} ${num(v)}`);
      }
  }
  return lines.join('\n') + '\n';
}
