/**
 * The API's shared schemas (components.schemas in the OpenAPI document): the one definition of
 * each wire shape. jaulad checks requests against them, the API tests check answers against
 * them, and api/types.ts derives the TypeScript types from them (WireType), so a field added
 * here is a field of the type, and the compiler finds every place that must know it.
 */
import { NAME_MAX, NAME_PATTERN } from '../common/names.js';
import {
  anyValue,
  arr,
  bool,
  component,
  COMPONENTS,
  int,
  nullable,
  num,
  obj,
  oneOf,
  record,
  str,
  strs,
  type Schema,
  type Typed,
} from './schema.js';
import { SnapshotPolicyInfo } from './snapshot-schemas.js';

/**
 * A guest, template, network or mark name (common/names.ts). Every name a request carries (in
 * its path, its query or its body) is checked against it where jaulad parses the request,
 * before any lock or file is touched.
 */
export const nameStr: Typed<string> = {
  type: 'string',
  pattern: NAME_PATTERN,
  maxLength: NAME_MAX,
  description: `a name: letters, digits, "-", "_" and ".", beginning with a letter or digit, no "..", at most ${NAME_MAX} characters`,
};
export const names = arr(nameStr);

/** What an error carries besides its code and message (a JaulaError's details: a program's stderr, a config's line). */
const details = record(anyValue);

export const ErrorInfo = component('ErrorInfo', obj({ code: str, message: str, 'details?': details }));
export const ApiError = component('Error', obj({ error: ErrorInfo }));

export const ExitInfo = component(
  'ExitInfo',
  obj({
    reason: oneOf(['stopped', 'halt', 'reboot', 'exited', 'killed', 'failed', 'lost', 'host-reboot']),
    'code?': int,
    'signal?': int,
    at: str,
    'message?': str,
  }),
);

export const GuestSummary = component(
  'GuestSummary',
  obj({
    name: str,
    context: int,
    /**
     * "broken": the guest's config.toml does not load (`error` says why, with the line); nothing
     * starts it until it is fixed, `delete --force` removes it. It may still run (`pid`).
     */
    status: oneOf(['stopped', 'starting', 'running', 'stopping', 'broken']),
    /** What is wrong with a broken guest's config. */
    'error?': str,
    hostname: str,
    initstyle: str,
    marks: strs,
    depends: strs,
    /** Interfaces in the command line's syntax (`eth0=jaula0:10.88.0.5/16`). */
    interfaces: strs,
    storage: str,
    privileged: bool,
    profile: str,
    'pid?': int,
    'runtime?': str,
    'startedAt?': str,
    'lastExit?': ExitInfo,
  }),
);

/** A guest's stored settings, as `jaula set` and the dashboard edit them. */
export const GuestSettings = component(
  'GuestSettings',
  obj({
    name: str,
    context: int,
    hostname: str,
    initstyle: str,
    cmd: strs,
    marks: strs,
    depends: strs,
    stopTimeout: num,
    runtime: str,
    interfaces: strs,
    forwards: strs,
    privileged: bool,
    profile: str,
    storage: str,
    build: obj({ method: str, args: strs, created: str }),
    snapshots: SnapshotPolicyInfo,
    /** High availability in a fleet (absent: off). */
    'ha?': obj({ standby: str, interval: int }),
  }),
);

export const BuildRequest = component(
  'BuildRequest',
  obj({
    name: nameStr,
    method: oneOf(['skeleton', 'template', 'debootstrap', 'oci']),
    'hostname?': str,
    'context?': int,
    /** `[name=][dev:]ip/prefix|auto[,options]` each (see `jaula build --help`). */
    'interfaces?': strs,
    /** `[host-ip:]host-port:guest-port[/tcp|/udp]` each. */
    'forwards?': strs,
    'initstyle?': oneOf(['plain', 'sysv', 'cmd']),
    'cmd?': strs,
    'marks?': names,
    'depends?': names,
    'storage?': str,
    /** A quota on the guest's own files, bytes (a per-guest filesystem image). */
    'quotaBytes?': int,
    /** A quota on the guest's own inodes. */
    'quotaInodes?': int,
    'privileged?': bool,
    'profile?': str,
    /** The method's own arguments (`-t FILE` for template, `-d RELEASE` for debootstrap). */
    'methodArgs?': strs,
    /** In a fleet: the host to build it on (HOST, KEY=VALUE: one with that label, auto). */
    'host?': str,
  }),
);

/** A long operation run by jaulad (build, clone, template save/import/export, hashify). */
export const Job = component(
  'Job',
  obj({
    id: str,
    /** The operation (the API's operationId, e.g. "buildGuest"). */
    op: str,
    /** What it works on (a guest's name). */
    target: str,
    state: oneOf(['running', 'succeeded', 'failed', 'cancelled']),
    /** Progress lines, oldest first. */
    progress: strs,
    /** Fraction done (0..1) when the operation knows it. */
    'fraction?': num,
    createdAt: str,
    'endedAt?': str,
    'result?': anyValue,
    'error?': ErrorInfo,
  }),
);

/** CPU and memory of a running guest, read from its cgroup. */
export const GuestUsage = component(
  'GuestUsage',
  /** cpuNs: CPU time since the guest started; memoryBytes: charged now; at: ms since the epoch. */
  obj({ name: str, cpuNs: num, memoryBytes: num, at: num }),
);

/** A process of a guest (or of the host, context 0), as `jaula ps` shows it. */
export const ProcessRow = component(
  'ProcessRow',
  obj({
    /** null: a host process (context 0). */
    guest: nullable(str),
    context: int,
    /** PID on the host. */
    pid: int,
    /** PID inside the guest's PID namespace (NSpid). */
    vpid: int,
    ppid: int,
    /** The user ID inside the guest (an unprivileged guest's IDs are shifted on the host). */
    uid: int,
    /** The user ID on the host (differs from uid in an unprivileged guest). */
    hostUid: int,
    user: str,
    state: str,
    /** Average CPU use over the process's life, in % of one CPU (as ps shows it). */
    cpu: num,
    /** CPU time used, seconds. */
    time: num,
    rssKb: int,
    command: str,
    /** The full command line (with `args`). */
    'args?': str,
  }),
);

export const Check = component(
  'Check',
  obj({ area: str, name: str, status: oneOf(['ok', 'warn', 'missing']), detail: str }),
);

export const NetworkSummary = component(
  'NetworkSummary',
  obj({
    name: str,
    bridge: str,
    subnet: str,
    'subnet6?': str,
    nat: bool,
    dns: strs,
    up: bool,
    guests: strs,
  }),
);

export const ReconcileReport = component(
  'ReconcileReport',
  obj({
    at: str,
    /** The host rebooted since jaulad last ran (boot_id changed). */
    hostRebooted: bool,
    settled: strs,
    rolledBack: strs,
    completedStops: strs,
    staleBuilds: strs,
    mounts: strs,
    runtimeStates: strs,
    cgroups: strs,
    network: strs,
    /** Leftovers of interrupted template saves, imports, exports, deletes. */
    storage: strs,
    autostarted: strs,
    problems: strs,
  }),
);

/** A stored template (var/lib/jaula/templates/NAME). */
export const TemplateInfo = component(
  'TemplateInfo',
  obj({
    name: str,
    created: str,
    /** Where it came from: "guest NAME", "guest NAME (its changes only)", "file PATH". */
    source: str,
    files: int,
    bytes: num,
    'devices?': int,
    /** Guests that stack it as a layer. */
    usedBy: strs,
  }),
);

export const HashifyReport = component(
  'HashifyReport',
  obj({
    dryRun: bool,
    guests: arr(obj({ name: str, driver: str, result: str, 'reason?': str, files: int, bytes: num })),
    scanned: obj({ files: int, candidates: int, hashedFiles: int, hashedBytes: num }),
    unified: obj({ files: int, bytes: num }),
    objectsRemoved: int,
    ms: obj({ scan: num, apply: num, total: num }),
  }),
);

/** Disk usage of guests (`jaula du`). */
export const DuReport = component(
  'DuReport',
  obj({
    guests: arr(
      obj({
        name: str,
        driver: str,
        /** Bytes only this guest holds: deleting it would free them. */
        exclusiveBytes: num,
        exclusiveInodes: int,
        /** Bytes of files it sees that others hold too. */
        sharedBytes: num,
        /** inodes: only where the limit is an ext4 image (a pool's btrfs counts inodes as space). */
        'quota?': obj({ bytes: num, bytesLimit: num, 'inodes?': int, 'inodesLimit?': int }),
        /** Its snapshots: how many, and the bytes they hold that the guest no longer has, where known. */
        'snapshots?': obj({ count: int, 'bytes?': num }),
      }),
    ),
    /** Really used on disk by all guests, templates and shared objects, each inode once. */
    totalBytes: num,
    /** What the guests see, summed. */
    seenBytes: num,
  }),
);

/** A guest's limits: each saved in its config ("" = the default), live in its cgroup (when it runs), and the default. */
export const GuestLimits = component(
  'GuestLimits',
  obj({
    name: str,
    running: bool,
    limits: arr(obj({ key: str, saved: str, 'live?': str, default: str })),
  }),
);

export const SetLimitsResult = component(
  'SetLimitsResult',
  obj({
    name: str,
    running: bool,
    /** Keys changed in the running guest. */
    live: strs,
    saved: bool,
    /** The changed keys, as text ("" = back to the default). */
    changes: record(str),
  }),
);

export const EngineInfo = component(
  'EngineInfo',
  obj({
    version: str,
    engine: oneOf(['local', 'remote']),
    root: str,
    bootId: str,
    /** What this jaula offers: operations that other parts of jaula add later are listed as false. */
    features: obj({
      daemon: bool,
      jobs: bool,
      console: bool,
      limits: bool,
      templates: bool,
      clone: bool,
      hashify: bool,
      du: bool,
    }),
    'daemon?': obj({
      pid: int,
      startedAt: str,
      socket: str,
      'listen?': str,
      /** Over TCP, host paths (copy, template import and export) only beneath this directory. */
      'hostFiles?': str,
      /** Over TCP, token holders may move this host's guests to its remotes (jaulad --allow-moves). */
      'tcpMoves?': bool,
      'reconcile?': ReconcileReport,
    }),
  }),
);

const orNull = nullable(num);

/** A running guest's counters at one moment (jaula top, stat, metrics): two of them make its rates. */
export const GuestSample = component(
  'GuestSample',
  obj({
    name: str,
    context: int,
    pid: int,
    'startedAt?': str,
    /** When the sample was taken (ms, the monotonic clock of the process that took it). */
    at: num,
    cgroup: obj({
      /** CPU time used (user + system, ns); bandwidth periods and how many were throttled (cpu.max). */
      cpu: obj({ usageNs: num, userNs: num, systemNs: num, periods: num, throttled: num, throttledNs: num }),
      /** Bytes; null: no limit. limitHits: times the limit was hit; oomKills: processes the OOM killer ended. */
      memory: obj({
        current: num,
        limit: orNull,
        high: orNull,
        swapLimit: orNull,
        'anon?': num,
        'file?': num,
        limitHits: num,
        oomKills: num,
      }),
      /** refusals: forks refused at the limit (pids.events "max"). */
      pids: obj({ current: num, limit: orNull, refusals: num }),
      io: obj({ readBytes: num, writeBytes: num, readOps: num, writeOps: num }),
    }),
    net: obj({ rxBytes: num, txBytes: num, rxPackets: num, txPackets: num }),
    /** Number of processes (with `detail`). */
    'processes?': int,
  }),
);

/** The storage pool (jaula pool show): a btrfs filesystem for guests' files, with a disk limit per guest. */
const poolInfo = obj({
  /** The image file; absent when var/lib/jaula is on the host's own btrfs. */
  'image?': str,
  'bytes?': num,
  /** The space limit of a new guest (bytes). */
  guestQuota: num,
  path: str,
  /** Mounted (and so with quota groups: guests get subvolumes with limits). */
  mounted: bool,
  'usedBytes?': num,
  'totalBytes?': num,
});
export const PoolInfo = component('PoolInfo', poolInfo);
/** The pool, or null: there is none (a $ref cannot be nullable beside it). */
export const PoolInfoOrNull = nullable(poolInfo);

/** Shared schemas (components.schemas in the OpenAPI document). */
export const SCHEMAS: Readonly<Record<string, Schema>> = COMPONENTS;
