/**
 * Wire types of jaula's API: what the Engine's operations take and return, the same whether the
 * engine runs in-process (LocalEngine) or behind jaulad (RemoteEngine). Plain JSON values only;
 * no node:* imports (the web dashboard uses these too). Core's own types are structurally equal:
 * LocalEngine would not compile if they drifted apart.
 */

export type GuestStatus = 'stopped' | 'starting' | 'running' | 'stopping';

export type ExitReason =
  'stopped' | 'halt' | 'reboot' | 'exited' | 'killed' | 'failed' | 'lost' | 'host-reboot';

export interface ExitInfo {
  reason: ExitReason;
  code?: number;
  signal?: number;
  at: string;
  message?: string;
}

/** One guest as listings show it. */
export interface GuestSummary {
  name: string;
  context: number;
  /**
   * "broken": the guest's config.toml does not load (`error` says why, with the line); nothing
   * starts it until it is fixed, `delete --force` removes it. It may still run (`pid`).
   */
  status: GuestStatus | 'broken';
  /** What is wrong with a broken guest's config. */
  error?: string;
  hostname: string;
  initstyle: string;
  marks: string[];
  depends: string[];
  /** Interfaces in the command line's syntax (`eth0=jaula0:10.88.0.5/16`). */
  interfaces: string[];
  storage: string;
  privileged: boolean;
  profile: string;
  pid?: number;
  runtime?: string;
  startedAt?: string;
  lastExit?: ExitInfo;
}

/** A guest's stored settings, as `jaula set` and the dashboard edit them. */
export interface GuestSettings {
  name: string;
  context: number;
  hostname: string;
  initstyle: string;
  cmd: string[];
  marks: string[];
  depends: string[];
  stopTimeout: number;
  interfaces: string[];
  forwards: string[];
  privileged: boolean;
  profile: string;
  storage: string;
  build: { method: string; args: string[]; created: string };
}

export interface NameRequest {
  name: string;
}

export interface ListRequest {
  mark?: string;
  running?: boolean;
}

export interface BuildRequest {
  name: string;
  method: string;
  hostname?: string;
  context?: number;
  /** `[name=][dev:]ip/prefix|auto[,options]` each (see `jaula build --help`). */
  interfaces?: string[];
  /** `[host-ip:]host-port:guest-port[/tcp|/udp]` each. */
  forwards?: string[];
  initstyle?: string;
  cmd?: string[];
  marks?: string[];
  depends?: string[];
  storage?: string;
  /** A quota on the guest's own files, bytes (a per-guest filesystem image). */
  quotaBytes?: number;
  /** A quota on the guest's own inodes. */
  quotaInodes?: number;
  privileged?: boolean;
  profile?: string;
  /** The method's own arguments (`-t FILE` for template, `-d RELEASE` for debootstrap). */
  methodArgs?: string[];
}

export interface StopRequest {
  name: string;
  /** Seconds to wait for a clean halt before killing. */
  timeout?: number;
  /** Kill at once. */
  kill?: boolean;
}

export interface DeleteRequest {
  name: string;
  force?: boolean;
}

export interface DeleteResult {
  deleted: string;
}

/** Changes to a guest's stored settings; they apply at its next start. */
export interface ConfigureRequest {
  name: string;
  hostname?: string;
  initstyle?: string;
  cmd?: string[];
  marks?: string[];
  depends?: string[];
  stopTimeout?: number;
  interfaces?: string[];
  addInterfaces?: string[];
  removeInterfaces?: string[];
  forwards?: string[];
  addForwards?: string[];
  removeForwards?: string[];
}

export interface ExecRequest {
  name: string;
  cmd: string[];
  env?: string[];
  cwd?: string;
  user?: string;
  /** A pty inside the guest (interactive programs). */
  tty?: boolean;
}

/** A command run to its end with its output collected (bulk exec, programs). */
export interface ExecCaptureRequest {
  name: string;
  cmd: string[];
  env?: string[];
  cwd?: string;
  user?: string;
  /** Given to the command's standard input. */
  input?: string;
  /** Seconds before the command is killed (default 300). */
  timeout?: number;
}

export interface ExecCaptureResult {
  name: string;
  code: number;
  /** At most 1 MiB each (what is past it is dropped: see `dropped`). */
  stdout: string;
  stderr: string;
  /** Bytes of output past the 1 MiB kept that were dropped, when there were any. */
  dropped?: { stdout: number; stderr: number };
}

export interface RunRequest {
  name: string;
  cmd: string[];
}

export interface RenameRequest {
  name: string;
  /** The guest's new name. */
  newName: string;
}

/** How a console session ended: the user detached, or the console closed (the guest stopped). */
export type ConsoleEnd = 'detached' | 'ended';

export interface GuestLogsRequest {
  name: string;
  /** Read jaula's events for the guest from this byte on (from a previous answer); else all. */
  eventsOffset?: number;
  /** Read the console's output from this byte on; else all that is kept (2 MiB at most). */
  consoleOffset?: number;
  /** Without offsets: only the last N lines of each. */
  lines?: number;
}

export interface GuestLogs {
  name: string;
  /** jaula's events for the guest (var/log/jaula/NAME.log), one timestamped line each. */
  events: string;
  eventsOffset: number;
  /** What the guest's console showed (its init's output, what runs on the console). */
  console: string;
  consoleOffset: number;
}

export interface CopyRequest {
  /** `GUEST:/path` or an absolute path on the host jaula runs on. */
  src: string;
  dst: string;
  archive?: boolean;
}

export interface CopyResult {
  files: number;
  direction: 'in' | 'out';
  /** Special files (fifos, sockets, device nodes) below the source, left out. */
  skipped?: string[];
}

/** CPU and memory of a running guest, read from its cgroup. */
export interface GuestUsage {
  name: string;
  /** CPU time used since the guest started, nanoseconds. */
  cpuNs: number;
  /** Memory charged to the guest now, bytes. */
  memoryBytes: number;
  /** When it was read (milliseconds since the epoch). */
  at: number;
}

export interface UsageRequest {
  /** Only these guests (default: every running guest). */
  names?: string[];
}

/** A process of a guest (or of the host, context 0), as `jaula ps` shows it. */
export interface ProcessRow {
  /** null: a host process (context 0). */
  guest: string | null;
  context: number;
  /** PID on the host. */
  pid: number;
  /** PID inside the guest's PID namespace (NSpid). */
  vpid: number;
  ppid: number;
  /** The user ID inside the guest (an unprivileged guest's IDs are shifted on the host). */
  uid: number;
  /** The user ID on the host (differs from uid in an unprivileged guest). */
  hostUid: number;
  user: string;
  state: string;
  /** Average CPU use over the process's life, in % of one CPU (as ps shows it). */
  cpu: number;
  /** CPU time used, seconds. */
  time: number;
  rssKb: number;
  command: string;
  /** The full command line (with `args`). */
  args?: string;
}

export interface ProcessesRequest {
  /** Only these guests (each must run; default: every running guest). */
  names?: string[];
  /** Host processes too, as context 0. */
  all?: boolean;
  /** Full command lines. */
  args?: boolean;
}

export type CheckStatus = 'ok' | 'warn' | 'missing';
export interface Check {
  area: string;
  name: string;
  status: CheckStatus;
  detail: string;
}

export interface DoctorRequest {
  security?: boolean;
}

export interface NetworkCreateRequest {
  name: string;
  subnet: string;
  subnet6?: string;
  bridge?: string;
  nat?: boolean;
  dns?: string[];
}

export interface NetworkSummary {
  name: string;
  bridge: string;
  subnet: string;
  subnet6?: string;
  nat: boolean;
  dns: string[];
  up: boolean;
  guests: string[];
}

export interface NetworkGcResult {
  removed: string[];
}

export interface TrapFinding {
  problem: string;
  fix: string;
}

/** Clone a stopped guest (`name`) to `dst` under a new identity. */
export interface CloneRequest {
  /** The source guest. */
  name: string;
  dst: string;
  hostname?: string;
  context?: number;
  /** The clone's interfaces (default: the source's, renewed: new MACs and pool addresses). */
  interfaces?: string[];
}

/** A stored template (var/lib/jaula/templates/NAME). */
export interface TemplateInfo {
  name: string;
  created: string;
  /** Where it came from: "guest NAME", "guest NAME (its changes only)", "file PATH". */
  source: string;
  files: number;
  bytes: number;
  devices?: number;
  /** Guests that stack it as a layer. */
  usedBy: string[];
}

export type TemplateMeta = Omit<TemplateInfo, 'usedBy'>;

export interface TemplateSaveRequest {
  /** The new template's name. */
  name: string;
  /** The stopped guest to save. */
  guest: string;
  /** Only the guest's own changes (overlay guests), to stack as a layer. */
  changes?: boolean;
}

export interface TemplateImportRequest {
  /** An archive on jaulad's host (absolute path): .tar, .tar.gz or .tar.zst. */
  file: string;
  /** Default: the file's name without its extension. */
  name?: string;
}

export interface TemplateExportRequest {
  name: string;
  /** The archive to write on jaulad's host (absolute path); its name chooses the format. */
  file: string;
}

export interface TemplateExportResult {
  name: string;
  file: string;
}

export interface HashifyRequest {
  guests?: string[];
  all?: boolean;
  dryRun?: boolean;
  /** Files smaller than this many bytes are left alone. */
  minSize?: number;
  /** Extra exclude rules (util-vserver's syntax). */
  excludes?: string[];
}

export interface HashifyReport {
  dryRun: boolean;
  guests: {
    name: string;
    driver: string;
    result: string;
    reason?: string;
    files: number;
    bytes: number;
  }[];
  scanned: { files: number; candidates: number; hashedFiles: number; hashedBytes: number };
  unified: { files: number; bytes: number };
  objectsRemoved: number;
  ms: { scan: number; apply: number; total: number };
}

/** Disk usage of one guest (`jaula du`). */
export interface GuestDiskUsage {
  name: string;
  driver: string;
  /** Bytes only this guest holds: deleting it would free them. */
  exclusiveBytes: number;
  exclusiveInodes: number;
  /** Bytes of files it sees that others hold too. */
  sharedBytes: number;
  /** inodes: only where the limit is an ext4 image (a pool's btrfs counts inodes as space). */
  quota?: { bytes: number; bytesLimit: number; inodes?: number; inodesLimit?: number };
}

export interface DuReport {
  guests: GuestDiskUsage[];
  /** Really used on disk by all guests, templates and shared objects, each inode once. */
  totalBytes: number;
  /** What the guests see, summed. */
  seenBytes: number;
}

export interface DuRequest {
  /** Only these guests (default: all). */
  names?: string[];
}

/** One limit of a guest: saved in its config, live in its cgroup, and the default. */
export interface LimitView {
  key: string;
  /** In config.toml ("" = the default). */
  saved: string;
  /** In force in the running guest (absent when it is stopped). */
  live?: string;
  default: string;
}

export interface GuestLimits {
  name: string;
  running: boolean;
  limits: LimitView[];
}

export interface SetLimitsRequest {
  name: string;
  /** KEY=VALUE each (an empty VALUE goes back to the default). */
  assignments: string[];
  /** Also store them in the guest's config (needed for a stopped guest). */
  save?: boolean;
}

export interface SetLimitsResult {
  name: string;
  running: boolean;
  /** Keys changed in the running guest. */
  live: string[];
  saved: boolean;
  /** The changed keys, as text ("" = back to the default). */
  changes: Record<string, string>;
}

export type JobState = 'running' | 'succeeded' | 'failed' | 'cancelled';

/** A long operation run by jaulad (build, clone, template save/import/export, hashify). */
export interface Job {
  id: string;
  /** The operation (the API's operationId, e.g. "buildGuest"). */
  op: string;
  /** What it works on (a guest's name). */
  target: string;
  state: JobState;
  /** Progress lines, oldest first. */
  progress: string[];
  /** Fraction done (0..1) when the operation knows it. */
  fraction?: number;
  createdAt: string;
  endedAt?: string;
  result?: unknown;
  error?: ErrorInfo;
}

/** What this jaula offers: operations that other parts of jaula add later are listed as false. */
export interface Features {
  daemon: boolean;
  jobs: boolean;
  console: boolean;
  limits: boolean;
  templates: boolean;
  clone: boolean;
  hashify: boolean;
  du: boolean;
}

export interface ReconcileReport {
  at: string;
  /** The host rebooted since jaulad last ran (boot_id changed). */
  hostRebooted: boolean;
  settled: string[];
  rolledBack: string[];
  completedStops: string[];
  staleBuilds: string[];
  mounts: string[];
  runtimeStates: string[];
  cgroups: string[];
  network: string[];
  /** Leftovers of interrupted template saves, imports, exports, deletes. */
  storage: string[];
  autostarted: string[];
  problems: string[];
}

export interface EngineInfo {
  version: string;
  engine: 'local' | 'remote';
  root: string;
  bootId: string;
  features: Features;
  daemon?: {
    pid: number;
    startedAt: string;
    socket: string;
    listen?: string;
    /** Over TCP, host paths (copy, template import and export) only beneath this directory. */
    hostFiles?: string;
    reconcile?: ReconcileReport;
  };
}

/** One message of the event stream (GET /v1/events, Server-Sent Events). */
export type JaulaEvent =
  | { type: 'hello'; at: string; guests: GuestSummary[]; jobs: Job[] }
  | { type: 'guest'; at: string; guest: GuestSummary }
  | { type: 'guest-removed'; at: string; name: string }
  | { type: 'job'; at: string; job: Job };

/** The error body of every failed request. */
export interface ApiError {
  error: ErrorInfo;
}

/** A failure as it crosses the wire: a JaulaError's code, message and details. */
export interface ErrorInfo {
  code: string;
  message: string;
  /** The JaulaError's details, when it has any (what failed, in data: a program's stderr, a config's line). */
  details?: Record<string, unknown>;
}
