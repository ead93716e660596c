/* eslint-disable max-lines -- the whole API in one table, read in one place */
/**
 * jaula's REST API, version 1: every route, its request and its answer, in one table. jaulad's
 * router, the RemoteEngine (the CLI's client) and the OpenAPI document (GET /v1/openapi.json)
 * are all made from it, and the API tests check every answer against it.
 *
 * Adding an operation: one entry here (with `engine: true` when the Engine has a method of the
 * same name), the method in the Engine interface (api/engine.ts) and LocalEngine; RemoteEngine
 * and jaulad's handler follow from this table. `job: true` runs it as a job with progress.
 */
import {
  arr,
  bool,
  int,
  nullable,
  num,
  obj,
  oneOf,
  record,
  str,
  strs,
  type Schema,
  type WireType,
} from './schema.js';
import {
  BuildRequest,
  Check,
  DuReport,
  EngineInfo,
  ExitInfo,
  GuestLimits,
  GuestSettings,
  GuestSample,
  GuestSummary,
  GuestUsage,
  Job,
  names,
  nameStr,
  NetworkSummary,
  PoolInfo,
  PoolInfoOrNull,
  ProcessRow,
  SetLimitsResult,
  TemplateInfo,
} from './schemas.js';
import { ImageInfo, ImagePullRequest } from './schemas-image.js';

import {
  FleetGuest,
  FleetHa,
  FleetHost,
  FleetProcesses,
  FleetSamples,
  FleetStatus,
} from './schemas-fleet.js';
import { MoveInfo, RemoteInfo } from './schemas-migrate.js';
import { SnapshotInfo } from './snapshot-schemas.js';

export { nameStr, SCHEMAS } from './schemas.js';

/** The schemas of path parameters, by their name in the route's path. */
export const PARAMS: Record<string, Schema> = {
  name: nameStr,
  id: { type: 'string', pattern: '^[a-z0-9]{1,64}$', description: 'a job ID (see GET /v1/jobs)' },
  move: { type: 'string', pattern: '^[a-z0-9]{8,64}$', description: 'a move ID (see GET /v1/moves)' },
  part: {
    type: 'string',
    pattern: '^(own|unified|delta|deleted|changed|conf|images|layer-[0-9a-f]{64})$',
    description: "a part of a moved guest: its own files, hashify's layer, a last pass, a layer by digest",
  },
  snapshot: { ...nameStr, description: "a snapshot's name (see GET /v1/guests/{name}/snapshots)" },
};

export const API_VERSION = 'v1';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface Route {
  /** The operationId; for engine routes also the Engine method's name. */
  op: string;
  method: HttpMethod;
  /** With {param} placeholders. */
  path: string;
  summary: string;
  tag: string;
  /** Query parameters (arrays are comma-separated). */
  query?: Record<string, Schema>;
  /** The JSON request body. */
  body?: Schema;
  /** The JSON answer of a success. */
  response: Schema;
  /** The route calls the Engine method named `op` with path params, query and body merged. */
  engine?: boolean;
  /** Run as a job: the answer is 202 with the Job; progress and the end come on /v1/events. */
  job?: boolean;
  /**
   * Why the CLI calls this operation in its own process (LocalEngine) even while jaulad runs: a
   * read faster here than a round trip to jaulad. jaulad serves it too, for programs.
   */
  local?: string;
  /** How the answer comes, when it is not one JSON document. */
  stream?: 'sse' | 'websocket';
  /** The request body is raw bytes (application/octet-stream), read by the route's handler. */
  upload?: boolean;
}

const stopBody = obj({ 'timeout?': { ...num, minimum: 0 }, 'kill?': bool });

export const ROUTES = [
  {
    op: 'getInfo',
    method: 'GET',
    path: '/v1/info',
    summary: "jaula's version, features and the daemon's last reconcile",
    tag: 'system',
    response: EngineInfo,
    engine: true,
  },
  {
    op: 'getOpenapi',
    method: 'GET',
    path: '/v1/openapi.json',
    summary: 'this document',
    tag: 'system',
    response: { type: 'object' },
  },
  {
    op: 'listGuests',
    method: 'GET',
    path: '/v1/guests',
    summary: 'all guests with their live state',
    tag: 'guests',
    query: { mark: nameStr, running: bool },
    response: arr(GuestSummary),
    engine: true,
  },
  {
    op: 'buildGuest',
    method: 'POST',
    path: '/v1/guests',
    summary: 'build a guest (a job: follow it on /v1/events?job=ID)',
    tag: 'guests',
    body: BuildRequest,
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'getGuest',
    method: 'GET',
    path: '/v1/guests/{name}',
    summary: "a guest's live state",
    tag: 'guests',
    response: GuestSummary,
    engine: true,
  },
  {
    op: 'deleteGuest',
    method: 'DELETE',
    path: '/v1/guests/{name}',
    summary: 'delete a guest (force: kill it first if it runs)',
    tag: 'guests',
    query: { force: bool },
    response: obj({ deleted: str }),
    engine: true,
  },
  {
    op: 'getGuestSettings',
    method: 'GET',
    path: '/v1/guests/{name}/settings',
    summary: "a guest's stored settings",
    tag: 'guests',
    response: GuestSettings,
    engine: true,
  },
  {
    op: 'configureGuest',
    method: 'PATCH',
    path: '/v1/guests/{name}/settings',
    summary: "change a guest's settings (applied at its next start)",
    tag: 'guests',
    body: obj({
      'hostname?': str,
      'initstyle?': str,
      'cmd?': strs,
      'marks?': names,
      'depends?': names,
      'stopTimeout?': { ...num, minimum: 0 },
      'runtime?': str,
      'interfaces?': strs,
      'addInterfaces?': strs,
      'removeInterfaces?': strs,
      'forwards?': strs,
      'addForwards?': strs,
      'removeForwards?': strs,
      /** Incus' keys and their values, as `jaula set NAME snapshots.schedule=@daily` ("" removes one). */
      'snapshots?': record(str),
      /** High availability in a fleet: ha=on|off, ha.standby=HOST|auto, ha.interval=SECONDS. */
      'ha?': record(str),
    }),
    response: GuestSettings,
    engine: true,
  },
  {
    op: 'renameGuest',
    method: 'POST',
    path: '/v1/guests/{name}/rename',
    summary:
      'rename a stopped guest (its config, files, logs, pool subvolume and the depends of others follow)',
    tag: 'guests',
    body: obj({ newName: str }),
    response: GuestSettings,
    engine: true,
  },
  {
    op: 'guestLogs',
    method: 'GET',
    path: '/v1/guests/{name}/logs',
    summary:
      "a guest's console output and jaula's events for it; with the offsets of a previous answer, only what came since (to follow them)",
    tag: 'guests',
    query: {
      eventsOffset: { ...int, minimum: 0 },
      consoleOffset: { ...int, minimum: 0 },
      lines: { ...int, minimum: 0 },
    },
    response: obj({ name: str, events: str, eventsOffset: int, console: str, consoleOffset: int }),
    engine: true,
  },
  {
    op: 'startGuest',
    method: 'POST',
    path: '/v1/guests/{name}/start',
    summary: 'start a guest',
    tag: 'lifecycle',
    response: GuestSummary,
    engine: true,
  },
  {
    op: 'stopGuest',
    method: 'POST',
    path: '/v1/guests/{name}/stop',
    summary: 'stop a guest (its init is asked to halt, then killed after the timeout)',
    tag: 'lifecycle',
    body: stopBody,
    response: ExitInfo,
    engine: true,
  },
  {
    op: 'restartGuest',
    method: 'POST',
    path: '/v1/guests/{name}/restart',
    summary: 'stop a guest if it runs, then start it',
    tag: 'lifecycle',
    body: stopBody,
    response: GuestSummary,
    engine: true,
  },
  {
    op: 'guestExited',
    method: 'POST',
    path: '/v1/guests/{name}/exited',
    summary:
      "internal: a guest's supervisor reports that the guest's init ended (instance: the run that ended); " +
      'jaulad records why and cleans up, as `jaula __exited` does without it',
    tag: 'lifecycle',
    body: obj({ instance: { ...str, pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'the run' } }),
    response: obj({ name: str }),
  },
  {
    op: 'execCapture',
    method: 'POST',
    path: '/v1/guests/{name}/exec',
    summary:
      'run a command in a running guest to its end and return its output and exit status ' +
      '(at most 1 MiB of stdout and of stderr: `dropped` counts the bytes past it)',
    tag: 'exec',
    body: obj({
      cmd: strs,
      'env?': strs,
      'cwd?': str,
      'user?': str,
      'input?': str,
      'timeout?': { ...num, minimum: 0 },
    }),
    response: obj({
      name: str,
      code: int,
      stdout: str,
      stderr: str,
      'dropped?': obj({ stdout: int, stderr: int }),
    }),
    engine: true,
  },
  {
    op: 'attach',
    method: 'GET',
    path: '/v1/guests/{name}/attach',
    summary:
      'WebSocket: exec (mode=exec), a login shell (mode=enter), a one-shot run (mode=run) with its stdio streamed, or the ' +
      "guest's console, which its supervisor holds (mode=console: no hello needed, the session ends when the client closes). " +
      'The client sends one JSON text message {cmd, env, cwd, user, tty, rows, cols} first; then binary messages whose ' +
      'first byte is the stream (0 stdin, 1 stdout, 2 stderr), and text messages {"type":"resize","rows","cols"} or ' +
      '{"type":"eof"}; the server ends with the text message {"type":"exit","code"}.',
    tag: 'exec',
    query: { mode: oneOf(['exec', 'enter', 'run', 'console']) },
    response: { type: 'object', description: 'a WebSocket (101 Switching Protocols)' },
    stream: 'websocket',
  },
  {
    op: 'getUsage',
    method: 'GET',
    path: '/v1/usage',
    summary: 'CPU time and memory of running guests, from their cgroups',
    tag: 'monitoring',
    query: { names },
    response: arr(GuestUsage),
    engine: true,
  },
  {
    op: 'listProcesses',
    method: 'GET',
    path: '/v1/processes',
    summary: 'every process of the running guests (jaula ps), with host processes as context 0 when asked',
    tag: 'monitoring',
    query: { names, all: bool, args: bool },
    response: arr(ProcessRow),
    engine: true,
    local:
      "jaula ps reads /proc itself: jaulad's HTTP client and a round trip cost more than the reads (200 guests: 152 ms through jaulad, 130 ms here)",
  },
  {
    op: 'sampleGuests',
    method: 'GET',
    path: '/v1/samples',
    summary:
      "running guests' cgroup and network counters at one moment (detail: the costlier ones too); two samples make rates",
    tag: 'monitoring',
    query: { names, detail: bool },
    response: arr(GuestSample),
    engine: true,
    local:
      'jaula top refreshes every few seconds over hundreds of guests: one bulk read of /proc and the cgroup files here, no round trip; `at` is the monotonic clock of the process that samples',
  },
  {
    op: 'copy',
    method: 'POST',
    path: '/v1/copy',
    summary: "copy files into or out of a guest (GUEST:/path and absolute paths of jaulad's host)",
    tag: 'exec',
    body: obj({ src: str, dst: str, 'archive?': bool }),
    response: obj({
      files: int,
      direction: oneOf(['in', 'out']),
      /** Special files (fifos, sockets, device nodes) below the source, left out. */
      'skipped?': strs,
    }),
    engine: true,
  },
  {
    op: 'doctor',
    method: 'GET',
    path: '/v1/doctor',
    summary: "the host's runtime, cgroups and kernel features (security=true: what protects guests)",
    tag: 'system',
    query: { security: bool },
    response: arr(Check),
    engine: true,
  },
  {
    op: 'listNetworks',
    method: 'GET',
    path: '/v1/networks',
    summary: 'networks (bridges, pools, NAT)',
    tag: 'networks',
    response: arr(NetworkSummary),
    engine: true,
  },
  {
    op: 'createNetwork',
    method: 'POST',
    path: '/v1/networks',
    summary: 'create a network',
    tag: 'networks',
    body: obj({ name: nameStr, subnet: str, 'subnet6?': str, 'bridge?': str, 'nat?': bool, 'dns?': strs }),
    response: NetworkSummary,
    engine: true,
  },
  {
    op: 'deleteNetwork',
    method: 'DELETE',
    path: '/v1/networks/{name}',
    summary: 'delete a network no guest uses',
    tag: 'networks',
    response: obj({ deleted: str }),
    engine: true,
  },
  {
    op: 'networkGc',
    method: 'POST',
    path: '/v1/networks/gc',
    summary: 'remove network leftovers of guests that do not run',
    tag: 'networks',
    response: obj({ removed: strs }),
    engine: true,
  },
  {
    op: 'networkCheck',
    method: 'GET',
    path: '/v1/networks/check',
    summary: "the address binding trap: host daemons that would take guests' traffic",
    tag: 'networks',
    response: arr(obj({ problem: str, fix: str })),
    engine: true,
  },
  {
    op: 'cloneGuest',
    method: 'POST',
    path: '/v1/guests/{name}/clone',
    summary:
      'clone a stopped guest to dst under a new identity (a job; interfaces omitted: renewed from the same pools)',
    tag: 'storage',
    body: obj({ dst: nameStr, 'hostname?': str, 'context?': int, 'interfaces?': strs }),
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'getLimits',
    method: 'GET',
    path: '/v1/guests/{name}/limits',
    summary: "a guest's limits: saved in its config, live in its cgroup (when it runs), and the defaults",
    tag: 'limits',
    response: GuestLimits,
    engine: true,
  },
  {
    op: 'setLimits',
    method: 'PUT',
    path: '/v1/guests/{name}/limits',
    summary:
      'change limits (KEY=VALUE, empty VALUE = the default) of a running guest at once; save: also in its config',
    tag: 'limits',
    body: obj({ assignments: strs, 'save?': bool }),
    response: SetLimitsResult,
    engine: true,
  },
  {
    op: 'setQuota',
    method: 'PUT',
    path: '/v1/guests/{name}/quota',
    summary:
      "change a stopped guest's quota on its own files (bytes: null removes it); its files are copied into a new image unless it only grows",
    tag: 'limits',
    body: obj({ 'bytes?': nullable(int), 'inodes?': int }),
    response: obj({ name: str, 'quotaBytes?': int, 'quotaInodes?': int }),
    engine: true,
  },
  {
    op: 'listTemplates',
    method: 'GET',
    path: '/v1/templates',
    summary: 'stored templates',
    tag: 'storage',
    response: arr(TemplateInfo),
    engine: true,
  },
  {
    op: 'saveTemplate',
    method: 'POST',
    path: '/v1/templates',
    summary:
      "save a stopped guest's tree as a template (a job; changes: only an overlay guest's own changes)",
    tag: 'storage',
    body: obj({ name: nameStr, guest: nameStr, 'changes?': bool }),
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'importTemplate',
    method: 'POST',
    path: '/v1/templates/import',
    summary: "import an archive on jaulad's host as a template, every member checked first (a job)",
    tag: 'storage',
    body: obj({ file: str, 'name?': nameStr }),
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'exportTemplate',
    method: 'POST',
    path: '/v1/templates/{name}/export',
    summary: "write a template to an archive on jaulad's host (a job; written aside, renamed when complete)",
    tag: 'storage',
    body: obj({ file: str }),
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'listLayers',
    method: 'GET',
    path: '/v1/guests/{name}/layers',
    summary: "an overlay guest's root, top first: its own changes, hashify's unified layer, its layers",
    tag: 'storage',
    response: arr(obj({ what: oneOf(['own', 'unified', 'layer']), name: str, path: str })),
    engine: true,
  },
  {
    op: 'changeLayers',
    method: 'PATCH',
    path: '/v1/guests/{name}/layers',
    summary:
      "put a stored template on top of a guest's layers (add) or take one away (remove); applied at its next start",
    tag: 'storage',
    body: obj({ 'add?': nameStr, 'remove?': str }),
    response: obj({ name: str, layers: strs, atNextStart: bool }),
    engine: true,
  },
  {
    op: 'getTemplate',
    method: 'GET',
    path: '/v1/templates/{name}',
    summary: 'one stored template',
    tag: 'storage',
    response: TemplateInfo,
    engine: true,
  },
  {
    op: 'deleteTemplate',
    method: 'DELETE',
    path: '/v1/templates/{name}',
    summary: 'delete a template no guest stacks as a layer',
    tag: 'storage',
    response: obj({ deleted: str }),
    engine: true,
  },
  {
    op: 'hashify',
    method: 'POST',
    path: '/v1/hashify',
    summary: 'unify identical files of guests, copy-on-write (a job; dryRun: only say what it would do)',
    tag: 'storage',
    body: obj({
      'guests?': names,
      'all?': bool,
      'dryRun?': bool,
      'minSize?': { ...int, minimum: 0 },
      'excludes?': strs,
    }),
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'diskUsage',
    method: 'GET',
    path: '/v1/du',
    summary: 'disk usage of guests: exclusive, shared, quota, and the total on disk',
    tag: 'storage',
    query: { names },
    response: DuReport,
    engine: true,
  },
  {
    op: 'getPool',
    method: 'GET',
    path: '/v1/pool',
    summary: 'the storage pool (null: there is none)',
    tag: 'storage',
    response: PoolInfoOrNull,
    engine: true,
  },
  {
    op: 'createPool',
    method: 'POST',
    path: '/v1/pool',
    summary:
      'make the storage pool before the first guest (a job; ifAbsent: do nothing, rather than fail, when there is one, or guests or templates)',
    tag: 'storage',
    // ifAbsent is required: an empty request makes no pool by accident.
    body: obj({ 'bytes?': int, 'guestQuota?': int, ifAbsent: bool }),
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'setPool',
    method: 'PATCH',
    path: '/v1/pool',
    summary: 'change the space limit of each new guest (existing guests keep theirs)',
    tag: 'storage',
    body: obj({ guestQuota: int }),
    response: PoolInfo,
    engine: true,
  },
  {
    op: 'deletePool',
    method: 'DELETE',
    path: '/v1/pool',
    summary: 'unmount the storage pool and remove its image; refused while it holds guests or templates',
    tag: 'storage',
    response: obj({ deleted: str }),
    engine: true,
  },
  {
    op: 'listJobs',
    method: 'GET',
    path: '/v1/jobs',
    summary: 'jobs running and recently ended',
    tag: 'jobs',
    response: arr(Job),
  },
  {
    op: 'getJob',
    method: 'GET',
    path: '/v1/jobs/{id}',
    summary: 'one job',
    tag: 'jobs',
    response: Job,
  },
  {
    op: 'cancelJob',
    method: 'DELETE',
    path: '/v1/jobs/{id}',
    summary: 'cancel a running job (what it made is removed)',
    tag: 'jobs',
    response: Job,
  },
  {
    op: 'events',
    method: 'GET',
    path: '/v1/events',
    summary:
      'Server-Sent Events: "hello" (all guests and jobs), then "guest", "guest-removed" and "job" as they change ' +
      '(also changes made by other processes). job=ID: only that job, from its start, ending when it ends.',
    tag: 'events',
    query: { job: str },
    response: { type: 'string', description: 'text/event-stream; each data line is a JSON JaulaEvent' },
    stream: 'sse',
  },
  {
    op: 'getFleet',
    method: 'GET',
    path: '/v1/fleet',
    summary: "this host's membership of a fleet of hosts on etcd",
    tag: 'fleet',
    response: FleetStatus,
    engine: true,
  },
  {
    op: 'joinFleet',
    method: 'POST',
    path: '/v1/fleet',
    summary:
      "join a fleet (create: make it first): this host's record and lease in etcd, its guests' names reserved",
    tag: 'fleet',
    body: obj({
      'endpoints?': strs,
      'create?': bool,
      'host?': str,
      'labels?': record(str),
      'ttl?': { ...int, minimum: 2, maximum: 60 },
      'networks?': names,
      'address?': str,
    }),
    response: FleetStatus,
    engine: true,
  },
  {
    op: 'leaveFleet',
    method: 'DELETE',
    path: '/v1/fleet',
    summary: "leave the fleet: this host's lease and record go (refused while it owns guests, unless force)",
    tag: 'fleet',
    query: { force: bool },
    response: FleetStatus,
    engine: true,
  },
  {
    op: 'fleetHosts',
    method: 'GET',
    path: '/v1/fleet/hosts',
    summary: 'the hosts of the fleet: state, capacity, guests, labels',
    tag: 'fleet',
    response: arr(FleetHost),
    engine: true,
  },
  {
    op: 'fleetProcesses',
    method: 'GET',
    path: '/v1/fleet/processes',
    summary:
      "every process of every host's running guests (jaula ps --fleet): this host's, and the others' asked through their jaulads as remotes",
    tag: 'fleet',
    query: { args: bool },
    response: FleetProcesses,
    engine: true,
  },
  {
    op: 'fleetSamples',
    method: 'GET',
    path: '/v1/fleet/samples',
    summary: "every host's running guests' counters (jaula stat --fleet), asked as for fleetProcesses",
    tag: 'fleet',
    query: { detail: bool },
    response: FleetSamples,
    engine: true,
  },
  {
    op: 'fleetBalance',
    method: 'POST',
    path: '/v1/fleet/balance',
    summary:
      "this host down to its share of the fleet's guests (a job): while it owns two more than the up host owning the fewest, one of its guests moves there (dryRun: the plan only)",
    tag: 'fleet',
    body: obj({ 'mode?': oneOf(['cold', 'sync', 'live']), 'dryRun?': bool }),
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'fleetDrain',
    method: 'POST',
    path: '/v1/fleet/drain',
    summary:
      "move every guest of this host to the fleet's other hosts (a job): each to the up host, known as a remote, with the fewest guests",
    tag: 'fleet',
    body: obj({ 'mode?': oneOf(['cold', 'sync', 'live']), 'to?': strs }),
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'fleetHa',
    method: 'GET',
    path: '/v1/fleet/ha',
    summary:
      "high availability: the fleet's leader, each HA guest's latest replica (where, from which owner, as of when), and the failovers with the writes they lost",
    tag: 'fleet',
    response: FleetHa,
    engine: true,
  },
  {
    op: 'fleetGuests',
    method: 'GET',
    path: '/v1/fleet/guests',
    summary: 'every guest of the fleet with its host (from etcd: each host publishes its guests)',
    tag: 'fleet',
    response: arr(FleetGuest),
    engine: true,
  },
  {
    op: 'backupGuest',
    method: 'POST',
    path: '/v1/guests/{name}/backup',
    summary:
      "write a guest's archive (config, layers by digest, its own files) to a file on jaulad's host (a job; written aside, renamed when complete); snapshot: of that snapshot; from: only what changed since that snapshot (an increment)",
    tag: 'storage',
    body: obj({ file: str, 'snapshot?': nameStr, 'from?': nameStr }),
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'restoreGuest',
    method: 'POST',
    path: '/v1/restore',
    summary:
      "make a guest from an archive on jaulad's host, every member checked first (a job; name: another name than the archived guest's; increments: archives of backup --from applied on it, in order)",
    tag: 'storage',
    body: obj({ file: str, 'increments?': arr(str), 'name?': nameStr }),
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'listImages',
    method: 'GET',
    path: '/v1/images',
    summary: 'stored OCI images',
    tag: 'images',
    response: arr(ImageInfo),
    engine: true,
  },
  {
    op: 'pullImage',
    method: 'POST',
    path: '/v1/images/pull',
    summary: 'pull an image from its registry, every blob checked against its digest (a job)',
    tag: 'images',
    body: ImagePullRequest,
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'importImage',
    method: 'POST',
    path: '/v1/images/import',
    summary:
      "import an image from a docker save archive, an oci-archive or an OCI layout directory on jaulad's host (a job)",
    tag: 'images',
    body: obj({ file: str, 'name?': str, 'maxLayerBytes?': num, 'maxLayerEntries?': int }),
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'inspectImage',
    method: 'GET',
    path: '/v1/image',
    summary: 'one stored image, by its reference',
    tag: 'images',
    query: { ref: str },
    response: ImageInfo,
    engine: true,
  },
  {
    op: 'deleteImage',
    method: 'DELETE',
    path: '/v1/image',
    summary: 'delete a stored image no guest uses (its layers and blobs go unless another image holds them)',
    tag: 'images',
    query: { ref: str },
    response: obj({ deleted: str }),
    engine: true,
  },
  {
    op: 'pushImage',
    method: 'POST',
    path: '/v1/images/push',
    summary:
      "publish a stopped guest's root or a stored template as an OCI image (a job; layers from an image sent as they came)",
    tag: 'images',
    body: obj({ source: nameStr, ref: str, 'creds?': str, 'authFile?': str, 'insecure?': bool }),
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'listSnapshots',
    method: 'GET',
    path: '/v1/guests/{name}/snapshots',
    summary: "a guest's snapshots, oldest first: when, how each was made, what it alone holds where known",
    tag: 'storage',
    response: arr(SnapshotInfo),
    engine: true,
  },
  {
    op: 'createSnapshot',
    method: 'POST',
    path: '/v1/guests/{name}/snapshots',
    summary:
      'take a snapshot of a guest\'s files and config (a running guest is frozen for the instant); snapshot omitted: snap0, snap1, ...; expiry: how long jaulad keeps it (e.g. "2d": M H d w m y)',
    tag: 'storage',
    body: obj({ 'snapshot?': nameStr, 'expiry?': str }),
    response: SnapshotInfo,
    engine: true,
  },
  {
    op: 'restoreSnapshot',
    method: 'POST',
    path: '/v1/guests/{name}/snapshots/{snapshot}/restore',
    summary:
      'put a guest back as it was at a snapshot (a job; a running guest is stopped for it and started again, as Incus does)',
    tag: 'storage',
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'deleteSnapshot',
    method: 'DELETE',
    path: '/v1/guests/{name}/snapshots/{snapshot}',
    summary: "delete one of a guest's snapshots",
    tag: 'storage',
    response: obj({ deleted: str }),
    engine: true,
  },
  {
    op: 'listRemotes',
    method: 'GET',
    path: '/v1/remotes',
    summary: 'the other jaulads this host knows by name (jaula remote list)',
    tag: 'migration',
    response: arr(RemoteInfo),
    engine: true,
  },
  {
    op: 'addRemote',
    method: 'POST',
    path: '/v1/remotes',
    summary:
      "know another jaulad by name: its certificate's fingerprint pinned (given, or accepted as it is shown), its token (read from tokenFile on jaulad's host) stored root-only",
    tag: 'migration',
    body: obj({ name: nameStr, url: str, tokenFile: str, 'fingerprint?': str, 'acceptCertificate?': bool }),
    response: RemoteInfo,
    engine: true,
  },
  {
    op: 'removeRemote',
    method: 'DELETE',
    path: '/v1/remotes/{name}',
    summary: 'forget a remote and its token',
    tag: 'migration',
    response: obj({ deleted: str }),
    engine: true,
  },
  {
    op: 'migrateGuest',
    method: 'POST',
    path: '/v1/guests/{name}/migrate',
    summary:
      'move a guest to a remote (a job): cold (stop, copy, start there) or sync (copy while it runs, then only what changed)',
    tag: 'migration',
    body: obj({ remote: nameStr, 'mode?': oneOf(['cold', 'sync', 'live']) }),
    response: Job,
    engine: true,
    job: true,
  },
  {
    op: 'listMoves',
    method: 'GET',
    path: '/v1/moves',
    summary:
      "this host's moves of guests, either side; unseen: only outcomes no command has shown, marked shown",
    tag: 'migration',
    query: { unseen: bool },
    response: arr(MoveInfo),
    engine: true,
  },
  {
    op: 'peerBegin',
    method: 'POST',
    path: '/v1/peer/moves',
    summary:
      'a source jaulad begins moving a guest here: its name and context reserved, hidden until it is placed; the layers (by digest) this host lacks',
    tag: 'peer',
    body: obj({
      id: { ...str, pattern: '^[a-z0-9]{8,64}$' },
      source: str,
      config: str,
      running: bool,
      mode: oneOf(['cold', 'sync', 'live', 'replica']),
      'base?': str,
      'fleetHost?': str,
      bytes: int,
      layers: arr(obj({ name: nameStr, digest: { ...str, pattern: '^[0-9a-f]{64}$' } })),
    }),
    response: obj({ context: int, need: strs, 'full?': bool }),
  },
  {
    op: 'peerPart',
    method: 'PUT',
    path: '/v1/peer/moves/{move}/parts/{part}',
    summary:
      'a chunk of a part (a tar stream, or a list of paths) of a moved guest, appended at offset (application/octet-stream, at most 16 MiB)',
    tag: 'peer',
    query: { offset: int },
    response: obj({ bytes: int }),
    upload: true,
  },
  {
    op: 'peerApply',
    method: 'POST',
    path: '/v1/peer/moves/{move}/apply',
    summary: 'unpack a part that arrived whole, every member checked first',
    tag: 'peer',
    body: obj({ part: { ...str, pattern: '^(own|unified|delta|conf|images|layer-[0-9a-f]{64})$' } }),
    response: obj({ applied: str }),
  },
  {
    op: 'peerCommit',
    method: 'POST',
    path: '/v1/peer/moves/{move}/commit',
    summary: "the handover: the guest becomes this host's (and starts, if it ran on the source)",
    tag: 'peer',
    body: obj({ start: bool }),
    response: obj({ state: oneOf(['running', 'stored']), context: int }),
  },
  {
    op: 'peerReplica',
    method: 'POST',
    path: '/v1/peer/moves/{move}/replica',
    summary:
      "a replica round's commit: its parts applied to this host's replica of the owner's HA guest, as of asOf",
    tag: 'peer',
    body: obj({ asOf: str }),
    response: obj({ round: str }),
  },
  {
    op: 'peerStatus',
    method: 'GET',
    path: '/v1/peer/moves/{move}',
    summary: "a move's phase here (none: this host never heard of it)",
    tag: 'peer',
    response: obj({ phase: str, 'guest?': str }),
  },
  {
    op: 'peerAbort',
    method: 'DELETE',
    path: '/v1/peer/moves/{move}',
    summary: 'give a move up: what this host received of it goes (refused once placed)',
    tag: 'peer',
    body: obj({ 'why?': str }),
    response: obj({ phase: str }),
  },
] as const satisfies readonly Route[];

export type RouteOp = (typeof ROUTES)[number]['op'];
export type EngineOp = Extract<(typeof ROUTES)[number], { engine: true }>['op'];
/** Engine operations run as jobs (202 and a Job; the method's result comes at the job's end). */
export type JobOp = Extract<(typeof ROUTES)[number], { job: true }>['op'];

type RouteNamed<K extends RouteOp> = Extract<(typeof ROUTES)[number], { op: K }>;
type PathParams<P> = P extends `${string}{${infer N}}${infer Rest}`
  ? { [k in N]: string } & PathParams<Rest>
  : unknown;
type QueryOf<R> = R extends { query: infer Q } ? { -readonly [K in keyof Q]?: WireType<Q[K]> } : unknown;
type BodyOf<R> = R extends { body: infer B } ? WireType<B> : unknown;
type Flat<T> = { [K in keyof T]: T[K] };

/**
 * What an operation takes, derived from its route: path parameters, query and body merged into
 * one object (as the Engine's methods take it, and as jaulad's dispatch hands it over).
 */
export type RequestOf<K extends RouteOp> = Flat<
  PathParams<RouteNamed<K>['path']> & QueryOf<RouteNamed<K>> & BodyOf<RouteNamed<K>>
>;
/** What a success answers, derived from its route (a job's route answers its Job). */
export type ResponseOf<K extends RouteOp> = WireType<RouteNamed<K>['response']>;

export function routeOf(op: RouteOp): Route {
  return ROUTES.find((r) => r.op === op) as Route;
}

/** Turn "/v1/guests/{name}" and {name: "a b"} into "/v1/guests/a%20b". */
export function fillPath(path: string, params: Record<string, unknown>): string {
  return path.replace(/\{(\w+)\}/g, (_, k: string) => encodeURIComponent(String(params[k] ?? '')));
}

export function pathParams(path: string): string[] {
  return [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string);
}

/** Match a concrete path against a route path; returns the params or undefined. */
export function matchPath(pattern: string, path: string): Record<string, string> | undefined {
  const a = pattern.split('/');
  const b = path.split('/');
  if (a.length !== b.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    const p = a[i] as string;
    const v = b[i] as string;
    if (p.startsWith('{') && p.endsWith('}')) {
      if (!v) return undefined;
      try {
        params[p.slice(1, -1)] = decodeURIComponent(v);
      } catch {
        return undefined;
      }
    } else if (p !== v) return undefined;
  }
  return params;
}

/** Parse a query value by its schema (query strings carry text). */
export function parseQueryValue(text: string, schema: Schema): unknown {
  switch (schema.type) {
    case 'boolean':
      return text === '' || text === 'true' || text === '1'
        ? true
        : text === 'false' || text === '0'
          ? false
          : text;
    case 'integer':
    case 'number':
      return /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
    case 'array':
      return text === '' ? [] : text.split(',');
    default:
      return text;
  }
}
