/* eslint-disable max-lines -- one short method per Engine operation (the Engine is wide, each method small) */
/**
 * LocalEngine: the Engine in this process, calling core directly. The CLI uses it when jaulad
 * does not run (or JAULA_NO_DAEMON=1); jaulad itself serves its API with it. Core modules are
 * loaded per operation, so that `jaula status` loads no builder, runtime or network code.
 */
import type {
  Features,
  GuestSettings,
  GuestSummary,
  GuestUsage,
  NetworkSummary,
  ProcessRow,
  ProcessesRequest,
} from '../api/types.js';
import { JaulaError } from '../common/errors.js';
import { VERSION } from '../common/version.js';
import type { HostFiles } from '../os/hostfiles.js';
import type { GuestConfig } from '../guest/config.js';
import type { Engine, JobHooks } from '../api/engine.js';

/** What this build of jaula offers; other parts of jaula turn their features on as they land. */
export const FEATURES: Features = {
  daemon: false,
  jobs: false,
  console: false,
  limits: true,
  templates: true,
  clone: true,
  hashify: true,
  du: true,
};

export async function settingsOf(cfg: GuestConfig): Promise<GuestSettings> {
  const { formatInterfaceSpec } = await import('../guest/ifspec.js');
  const { formatForward } = await import('../guest/forward.js');
  return {
    name: cfg.name,
    context: cfg.context,
    hostname: cfg.hostname,
    initstyle: cfg.initstyle,
    cmd: cfg.cmd,
    marks: cfg.marks,
    depends: cfg.depends,
    stopTimeout: cfg.stopTimeout,
    runtime: cfg.runtime,
    interfaces: cfg.interfaces.map(formatInterfaceSpec),
    forwards: cfg.forwards.map(formatForward),
    privileged: cfg.privileged,
    profile: cfg.profile,
    storage: cfg.storage.driver,
    build: cfg.build,
    snapshots: await snapshotPolicyInfo(cfg),
    ...(cfg.ha ? { ha: cfg.ha } : {}),
  };
}

/** A guest's snapshots.* keys with their defaults, and the next minute its schedule matches. */
async function snapshotPolicyInfo(cfg: GuestConfig): Promise<GuestSettings['snapshots']> {
  const { nextRun, parseSchedule, spreadSeed } = await import('../common/cron.js');
  const { DEFAULT_PATTERN } = await import('../common/snapname.js');
  const p = cfg.snapshots ?? {};
  const next = nextRun(parseSchedule(p.schedule ?? '', spreadSeed(cfg.name)), new Date());
  return {
    schedule: p.schedule ?? '',
    stopped: p.stopped ?? false,
    expiry: p.expiry ?? '',
    pattern: p.pattern ?? DEFAULT_PATTERN,
    ...(next ? { next: next.toISOString() } : {}),
  };
}

/** Where each running guest's counters are, by init pid and start time (its cgroup does not move). */
const usageFileCache = new Map<string, import('../cgroups/usage.js').UsageFiles>();

export interface LocalEngineOptions {
  /**
   * Which host paths the caller may name (copy, template import and export, a build from an
   * archive): any absolute path for root (the default), beneath jaulad's --host-files directory
   * (or none) for an API client over TCP.
   */
  hostFiles?: HostFiles;
  /**
   * The caller holds jaulad's token, not root: it may not make a privileged guest (whose root
   * is the host's root: build or clone one as root) nor list the host's own processes.
   */
  tokenHolder?: boolean;
  /**
   * A token holder may still move this host's guests to its remotes (jaulad --allow-moves): only
   * to hosts root added as remotes, with tokens that never leave jaulad.
   */
  tokenMoves?: boolean;
}

export class LocalEngine implements Engine {
  readonly kind = 'local' as const;
  private readonly hostFiles: HostFiles | undefined;
  private readonly tokenHolder: boolean;
  private readonly tokenMoves: boolean;

  constructor(o: LocalEngineOptions = {}) {
    this.hostFiles = o.hostFiles;
    this.tokenHolder = o.tokenHolder === true;
    this.tokenMoves = o.tokenMoves === true;
  }

  /**
   * The engine of a command working in its own process (the CLI without jaulad): as root, a
   * storage pool's image is mounted again after a reboot before anything looks at it, as jaulad
   * does at its start (one stat without a pool, one statfs when it is mounted).
   */
  static async open(): Promise<LocalEngine> {
    if (process.getuid?.() === 0) await (await import('../storage/pool.js')).ensurePool();
    return new LocalEngine();
  }

  /** What only root may do, refused to a token holder. */
  private rootOnly(what: string): void {
    if (this.tokenHolder)
      throw new JaulaError(
        'denied',
        `Over TCP jaulad does not ${what}: that is root's, on the unix socket (jaula as root on the host)`,
      );
  }

  /** A move to other hosts: root's, or a token holder's where jaulad was started with --allow-moves. */
  private movesOnly(what: string): void {
    if (this.tokenHolder && !this.tokenMoves)
      throw new JaulaError(
        'denied',
        `Over TCP this jaulad does not ${what}: start it with --allow-moves to let its token holders move guests to its remotes, or run the command as root on the host`,
      );
  }

  /**
   * A job's refusal before it starts, answered as such (403) rather than as a job that fails:
   * the moves a token holder may not make. The methods check again.
   */
  checkJob(op: string, args: Record<string, unknown>): void {
    if (op === 'migrateGuest') this.movesOnly('move guests to other hosts');
    else if (op === 'fleetDrain') this.movesOnly('drain this host');
    else if (op === 'fleetBalance' && args['dryRun'] !== true) this.movesOnly('balance the fleet');
  }

  /** The host-paths policy as an option (absent: any, as root). */
  private get hostOpt(): { hostFiles?: HostFiles } {
    return this.hostFiles ? { hostFiles: this.hostFiles } : {};
  }

  async getInfo() {
    const { paths } = await import('../os/paths.js');
    const { bootId } = await import('../os/proc.js');
    return {
      version: VERSION,
      engine: 'local' as const,
      root: paths().root,
      bootId: bootId(),
      features: FEATURES,
    };
  }

  async listGuests(r: { mark?: string; running?: boolean }): Promise<GuestSummary[]> {
    const { listGuests } = await import('./guests.js');
    let gs = listGuests();
    if (r.running) gs = gs.filter((g) => g.status !== 'stopped' && (g.status !== 'broken' || g.pid));
    if (r.mark) gs = gs.filter((g) => g.marks.includes(r.mark as string));
    return gs;
  }

  async getGuest(r: { name: string }): Promise<GuestSummary> {
    return (await import('./guests.js')).guestStatus(r.name);
  }

  async buildGuest(r: import('../api/types.js').BuildRequest, hooks: JobHooks = {}): Promise<GuestSettings> {
    // (a guest of a spread group, in a fleet, is placed: its group's hosts are weighed; a
    // build another host placed here, over TCP, is built here)
    if (r.host === undefined && !this.tokenHolder && r.marks?.some((m) => m.startsWith('spread.'))) {
      const { readFleetConfig } = await import('../fleet/config.js');
      if (readFleetConfig()) r = { ...r, host: 'auto' };
    }
    if (r.host !== undefined) {
      // (with this host's remote tokens: root's only, never for a TCP client)
      this.rootOnly('build guests on other hosts of the fleet');
      // In a fleet: built where placement says, followed from here when it is another host.
      const { needsOf, placeGuest, remoteJob } = await import('./fleet-place.js');
      const { host, ...rest } = r;
      const at = await placeGuest(host, needsOf(rest));
      if (at.peer)
        return remoteJob<GuestSettings>(at.peer, '/v1/guests', rest, hooks.onProgress, hooks.signal);
      r = rest;
    }
    if (r.privileged) this.rootOnly("build a privileged guest (its root is the host's root)");
    const { buildGuest } = await import('./build.js');
    const { parseInterfaceSpec } = await import('../guest/ifspec.js');
    const { parseForward } = await import('../guest/forward.js');
    const { validateProfile } = await import('../guest/config.js');
    const o: Parameters<typeof buildGuest>[0] = {
      name: r.name,
      method: r.method,
      interfaces: (r.interfaces ?? []).map(parseInterfaceSpec),
      forwards: (r.forwards ?? []).map(parseForward),
      marks: r.marks ?? [],
      depends: r.depends ?? [],
      methodArgs: r.methodArgs ?? [],
      ...this.hostOpt,
    };
    if (hooks.onProgress) o.onProgress = hooks.onProgress;
    if (hooks.signal) o.signal = hooks.signal;
    if (r.hostname !== undefined) o.hostname = r.hostname;
    if (r.context !== undefined) o.context = r.context;
    if (r.initstyle !== undefined) o.initstyle = r.initstyle;
    if (r.storage !== undefined) o.storage = r.storage;
    if (r.quotaBytes !== undefined) o.quotaBytes = r.quotaBytes;
    if (r.quotaInodes !== undefined) o.quotaInodes = r.quotaInodes;
    if (r.privileged) o.privileged = true;
    if (r.profile !== undefined) o.profile = validateProfile(r.profile);
    if (r.cmd !== undefined) o.cmd = r.cmd;
    return settingsOf(await buildGuest(o));
  }

  async deleteGuest(r: { name: string; force?: boolean }) {
    await (await import('./delete.js')).deleteGuest(r.name, { force: r.force === true });
    return { deleted: r.name };
  }

  async getGuestSettings(r: { name: string }): Promise<GuestSettings> {
    return settingsOf((await import('../guest/store.js')).loadConfig(r.name));
  }

  async configureGuest(r: import('../api/types.js').ConfigureRequest): Promise<GuestSettings> {
    const { configureGuest } = await import('./configure.js');
    const { parseInterfaceSpec } = await import('../guest/ifspec.js');
    const { parseForward } = await import('../guest/forward.js');
    const ch: import('./configure.js').ConfigChanges = {};
    if (r.hostname !== undefined) ch.hostname = r.hostname;
    if (r.initstyle !== undefined) ch.initstyle = r.initstyle;
    if (r.cmd !== undefined) ch.cmd = r.cmd;
    if (r.marks !== undefined) ch.marks = r.marks;
    if (r.depends !== undefined) ch.depends = r.depends;
    if (r.stopTimeout !== undefined) ch.stopTimeout = r.stopTimeout;
    if (r.runtime !== undefined) ch.runtime = r.runtime;
    if (r.interfaces !== undefined) ch.interfaces = r.interfaces.map(parseInterfaceSpec);
    if (r.addInterfaces !== undefined) ch.addInterfaces = r.addInterfaces.map(parseInterfaceSpec);
    if (r.removeInterfaces !== undefined) ch.removeInterfaces = r.removeInterfaces;
    if (r.forwards !== undefined) ch.forwards = r.forwards.map(parseForward);
    if (r.addForwards !== undefined) ch.addForwards = r.addForwards.map(parseForward);
    if (r.removeForwards !== undefined) ch.removeForwards = r.removeForwards.map(parseForward);
    if (r.snapshots !== undefined) ch.snapshots = r.snapshots;
    if (r.ha !== undefined) ch.ha = r.ha;
    return settingsOf(await configureGuest(r.name, ch));
  }

  async startGuest(r: { name: string }): Promise<GuestSummary> {
    await (await import('./lifecycle.js')).startGuest(r.name);
    return this.getGuest(r);
  }

  async stopGuest(r: import('../api/types.js').StopRequest) {
    const o: { timeout?: number; kill?: boolean } = { kill: r.kill === true };
    if (r.timeout !== undefined) o.timeout = r.timeout;
    return (await import('./lifecycle.js')).stopGuest(r.name, o);
  }

  async restartGuest(r: import('../api/types.js').StopRequest): Promise<GuestSummary> {
    const o: { timeout?: number; kill?: boolean } = { kill: r.kill === true };
    if (r.timeout !== undefined) o.timeout = r.timeout;
    await (await import('./lifecycle.js')).restartGuest(r.name, o);
    return this.getGuest(r);
  }

  async execCapture(r: import('../api/types.js').ExecCaptureRequest) {
    const { execCapture } = await import('./exec.js');
    const o: import('./exec.js').CaptureOptions = { env: r.env ?? [] };
    if (r.cwd !== undefined) o.cwd = r.cwd;
    if (r.user !== undefined) o.user = r.user;
    if (r.input !== undefined) o.input = r.input;
    if (r.timeout !== undefined) o.timeoutMs = r.timeout * 1000;
    return { name: r.name, ...(await execCapture(r.name, r.cmd, o)) };
  }

  async listProcesses(r: ProcessesRequest): Promise<ProcessRow[]> {
    if (r.all) this.rootOnly("list the host's own processes");
    const { listProcesses } = await import('./monitor/ps.js');
    return listProcesses({ guests: r.names ?? [], all: r.all === true, args: r.args === true });
  }

  async sampleGuests(r: import('../api/types.js').SampleRequest) {
    const { sampleGuests } = await import('./monitor/sample.js');
    return sampleGuests(r.names ?? [], { detail: r.detail === true });
  }

  async getUsage(r: { names?: string[] }): Promise<GuestUsage[]> {
    const { usageFilesOf, readUsage } = await import('../cgroups/usage.js');
    const { readState, liveStatus } = await import('../guest/state.js');
    const { listGuestNames } = await import('../guest/store.js');
    const names = r.names ?? listGuestNames();
    const out: GuestUsage[] = [];
    const seen = new Set<string>();
    for (const name of names) {
      const st = readState(name);
      if (!st.pid || liveStatus(st) === 'stopped') continue;
      const key = `${st.pid}:${st.pidStart ?? 0}`;
      seen.add(key);
      let files = usageFileCache.get(key);
      if (!files) {
        files = usageFilesOf(st.pid);
        if (!files) continue;
        usageFileCache.set(key, files);
      }
      const u = readUsage(files);
      if (u) out.push({ name, ...u, at: Date.now() });
    }
    if (!r.names) for (const k of usageFileCache.keys()) if (!seen.has(k)) usageFileCache.delete(k);
    return out;
  }

  async copy(r: import('../api/types.js').CopyRequest) {
    const c = await (
      await import('./cp.js')
    ).copy(r.src, r.dst, { archive: r.archive === true, ...this.hostOpt });
    return { files: c.files, direction: c.direction, ...(c.skipped ? { skipped: c.skipped } : {}) };
  }

  async doctor(r: { security?: boolean }) {
    const d = await import('./doctor.js');
    return r.security ? d.securityReport() : d.doctor();
  }

  async listNetworks(): Promise<NetworkSummary[]> {
    return (await import('./networks.js')).networkSummaries();
  }

  async createNetwork(r: import('../api/types.js').NetworkCreateRequest): Promise<NetworkSummary> {
    const { createNetwork, networkSummaries } = await import('./networks.js');
    const n = {
      name: r.name,
      bridge: r.bridge ?? `jbr-${r.name}`.slice(0, 15),
      subnet: r.subnet,
      nat: r.nat === true,
      dns: r.dns ?? [],
    };
    await createNetwork(r.subnet6 ? { ...n, subnet6: r.subnet6 } : n);
    return networkSummaries().find((x) => x.name === r.name) as NetworkSummary;
  }

  async deleteNetwork(r: { name: string }) {
    await (await import('./networks.js')).deleteNetwork(r.name);
    return { deleted: r.name };
  }

  async networkGc() {
    return { removed: await (await import('./networks.js')).networkGc() };
  }

  async networkCheck() {
    const { loadAllConfigs } = await import('../guest/store.js');
    return (await import('../network/trap.js')).checkBindingTrap(loadAllConfigs());
  }

  async cloneGuest(r: import('../api/types.js').CloneRequest, hooks: JobHooks = {}): Promise<GuestSettings> {
    if (this.tokenHolder && (await import('../guest/store.js')).loadConfig(r.name).privileged)
      this.rootOnly("clone a privileged guest (its root is the host's root)");
    const { cloneGuest } = await import('./clone.js');
    const o: import('./clone.js').CloneOptions = {};
    if (r.hostname !== undefined) o.hostname = r.hostname;
    if (r.context !== undefined) o.context = r.context;
    if (r.interfaces !== undefined)
      o.interfaces = r.interfaces.map((await import('../guest/ifspec.js')).parseInterfaceSpec);
    if (hooks.onProgress) o.onProgress = hooks.onProgress;
    return settingsOf(await cloneGuest(r.name, r.dst, o));
  }

  async getLimits(r: { name: string }) {
    return (await import('./limits.js')).showLimits(r.name);
  }

  async setLimits(r: import('../api/types.js').SetLimitsRequest) {
    const res = await (
      await import('./limits.js')
    ).setLimits(r.name, r.assignments, { save: r.save === true });
    return { ...res, changes: res.changes as Record<string, string> };
  }

  async listTemplates() {
    return (await import('./templates.js')).listTemplates();
  }

  async setQuota(r: import('../api/types.js').QuotaRequest) {
    const { setQuota } = await import('./quota.js');
    const { name, ...ch } = r;
    const { storage } = await setQuota(name, ch);
    return {
      name,
      ...(storage.quotaBytes !== undefined ? { quotaBytes: storage.quotaBytes } : {}),
      ...(storage.quotaInodes !== undefined ? { quotaInodes: storage.quotaInodes } : {}),
    };
  }

  async getPool() {
    return (await import('../storage/pool.js')).poolInfo() ?? null;
  }

  async createPool(r: import('../api/types.js').PoolCreateRequest, hooks: JobHooks = {}) {
    this.rootOnly('make the storage pool');
    const { createPool } = await import('../storage/pool.js');
    return (await createPool(r, hooks.onProgress)) ?? null;
  }

  async setPool(r: import('../api/types.js').PoolSetRequest) {
    this.rootOnly("change the storage pool's guest quota");
    return (await import('../storage/pool.js')).setPoolGuestQuota(r.guestQuota);
  }

  async deletePool() {
    this.rootOnly('delete the storage pool');
    const { deletePool, poolInfo } = await import('../storage/pool.js');
    const path = poolInfo()?.path ?? '';
    await deletePool();
    return { deleted: path };
  }

  async listLayers(r: { name: string }) {
    return (await import('./layers.js')).listLayers(r.name);
  }

  async changeLayers(r: import('../api/types.js').LayersRequest) {
    const { appliesAtNextStart, changeLayers } = await import('./layers.js');
    const cfg = await changeLayers(r.name, r.add, r.remove);
    return { name: r.name, layers: cfg.storage.layers ?? [], atNextStart: appliesAtNextStart(r.name) };
  }

  async getTemplate(r: { name: string }) {
    return (await import('./templates.js')).templateInfo(r.name);
  }

  async saveTemplate(r: import('../api/types.js').TemplateSaveRequest, hooks: JobHooks = {}) {
    return (await import('./templates.js')).saveTemplate(r.guest, r.name, {
      changesOnly: r.changes === true,
      ...(hooks.onProgress ? { progress: hooks.onProgress } : {}),
    });
  }

  async importTemplate(r: import('../api/types.js').TemplateImportRequest, hooks: JobHooks = {}) {
    return (await import('./templates.js')).importTemplate(r.file, r.name, hooks.onProgress, this.hostFiles);
  }

  async exportTemplate(r: import('../api/types.js').TemplateExportRequest, hooks: JobHooks = {}) {
    await (
      await import('./templates.js')
    ).exportTemplate(r.name, r.file, hooks.onProgress, hooks.signal, this.hostFiles);
    return { name: r.name, file: r.file };
  }

  async deleteTemplate(r: { name: string }) {
    await (await import('./templates.js')).deleteTemplate(r.name);
    return { deleted: r.name };
  }

  async hashify(r: import('../api/types.js').HashifyRequest, hooks: JobHooks = {}) {
    const o: import('../unify/hashify.js').HashifyOptions = {
      guests: r.guests ?? [],
      all: r.all === true,
      dryRun: r.dryRun === true,
      excludes: r.excludes ?? [],
    };
    if (r.minSize !== undefined) o.minSize = r.minSize;
    if (hooks.onProgress) o.progress = hooks.onProgress;
    return (await import('../unify/hashify.js')).hashify(o);
  }

  async diskUsage(r: { names?: string[] }) {
    return (await import('../unify/du.js')).diskUsage(r.names ?? []);
  }

  async execInteractive(r: import('../api/types.js').ExecRequest): Promise<number> {
    const o: import('./exec.js').ExecOptions = { tty: r.tty === true, env: r.env ?? [] };
    if (r.cwd !== undefined) o.cwd = r.cwd;
    if (r.user !== undefined) o.user = r.user;
    return (await import('./exec.js')).execInGuest(r.name, r.cmd, o);
  }

  async enterGuest(r: { name: string }): Promise<number> {
    return (await import('./exec.js')).enterGuest(r.name);
  }

  async runOnce(r: { name: string; cmd: string[] }): Promise<number> {
    return (await import('./run.js')).runOnce(r.name, r.cmd);
  }

  async renameGuest(r: import('../api/types.js').RenameRequest): Promise<GuestSettings> {
    return settingsOf(await (await import('./rename.js')).renameGuest(r.name, r.newName));
  }

  async guestLogs(r: import('../api/types.js').GuestLogsRequest) {
    return (await import('./logs.js')).guestLogs(r);
  }

  async attachConsole(r: { name: string }, onAttached?: () => void) {
    return (await import('./console.js')).attachConsole(r.name, onAttached);
  }

  async getFleet() {
    return (await import('./fleet.js')).fleetStatus();
  }

  async joinFleet(r: import('../api/types.js').FleetJoinRequest) {
    this.rootOnly('join a fleet');
    return (await import('./fleet.js')).joinFleet(r);
  }

  async leaveFleet(r: { force?: boolean }) {
    this.rootOnly('leave a fleet');
    return (await import('./fleet.js')).leaveFleet(r.force === true);
  }

  async fleetHosts() {
    return (await import('./fleet.js')).listFleetHosts();
  }

  async fleetGuests() {
    return (await import('./fleet.js')).listFleetGuests();
  }

  async fleetHa() {
    return (await import('./fleet.js')).fleetHa();
  }

  async listRemotes() {
    return (await import('./migrate/remotes.js'))
      .listRemotes()
      .map(({ name, url, fingerprint, added }) => ({ name, url, fingerprint, added }));
  }

  async addRemote(r: import('../api/types.js').AddRemoteRequest) {
    this.rootOnly('add remotes');
    const { name, url, fingerprint, added } = await (await import('./migrate/admin.js')).addRemote(r);
    return { name, url, fingerprint, added };
  }

  async removeRemote(r: { name: string }) {
    this.rootOnly('remove remotes');
    return { deleted: (await import('./migrate/remotes.js')).removeRemote(r.name).name };
  }

  async migrateGuest(r: import('../api/types.js').MigrateRequest, hooks: JobHooks = {}) {
    this.movesOnly('move guests to other hosts');
    const { migrateGuest } = await import('./migrate/source.js');
    return migrateGuest(r.name, r.remote, {
      mode: r.mode ?? 'sync',
      ...(hooks.onProgress ? { onProgress: hooks.onProgress } : {}),
    });
  }

  async fleetProcesses(r: { args?: boolean }) {
    this.rootOnly("ask the fleet's other hosts (with this host's remote tokens)");
    const { askFleet } = await import('./fleet-view.js');
    const q = r.args ? '?args=true' : '';
    const a = await askFleet(`/v1/processes${q}`, () => this.listProcesses({ args: r.args === true }));
    return { hosts: a.answers.map(({ host, value }) => ({ host, rows: value })), missing: a.missing };
  }

  async fleetSamples(r: { detail?: boolean }) {
    this.rootOnly("ask the fleet's other hosts (with this host's remote tokens)");
    const { askFleet } = await import('./fleet-view.js');
    const q = r.detail ? '?detail=true' : '';
    const a = await askFleet(`/v1/samples${q}`, () => this.sampleGuests({ detail: r.detail === true }));
    return { hosts: a.answers.map(({ host, value }) => ({ host, samples: value })), missing: a.missing };
  }

  async fleetBalance(r: { mode?: 'cold' | 'sync' | 'live'; dryRun?: boolean }, hooks: JobHooks = {}) {
    if (!r.dryRun) this.movesOnly('balance the fleet');
    return (await import('./fleet-drain.js')).balanceFleet({
      mode: r.mode ?? 'sync',
      dryRun: r.dryRun === true,
      ...(hooks.onProgress ? { onProgress: hooks.onProgress } : {}),
    });
  }

  async fleetDrain(r: import('../api/types.js').FleetDrainRequest, hooks: JobHooks = {}) {
    this.movesOnly('drain this host');
    return (await import('./fleet-drain.js')).drainHost({
      mode: r.mode ?? 'sync',
      ...(r.to ? { to: r.to } : {}),
      ...(hooks.onProgress ? { onProgress: hooks.onProgress } : {}),
    });
  }

  async listMoves(r: { unseen?: boolean }) {
    return (await import('./migrate/admin.js')).listMoves(r.unseen === true);
  }

  async backupGuest(r: import('../api/types.js').BackupRequest, hooks: JobHooks = {}) {
    const { backupGuest } = await import('./archive.js');
    return backupGuest(r.name, r.file, {
      ...this.streamHooks(hooks),
      ...this.hostOpt,
      ...(r.snapshot ? { snapshot: r.snapshot } : {}),
      ...(r.from ? { from: r.from } : {}),
    });
  }

  async restoreGuest(r: import('../api/types.js').RestoreRequest, hooks: JobHooks = {}) {
    // An archive carries the guest's hooks (run on the host as root) and fstab (host paths).
    this.rootOnly('restore guests (an archive carries host hooks and host mounts)');
    const { restoreGuest } = await import('./archive-restore.js');
    return restoreGuest(r.file, {
      ...this.streamHooks(hooks),
      ...(r.name ? { name: r.name } : {}),
      ...(r.increments?.length ? { increments: r.increments } : {}),
      ...this.hostOpt,
    });
  }

  /**
   * A backup to a stream (stdout) and a restore from one (stdin): streams cannot cross jaulad's
   * JSON API, so the CLI runs these in its own process, as root (core/archive.ts).
   */
  async backupToStream(
    name: string,
    sink: import('node:stream').Writable,
    hooks: JobHooks = {},
    o: { snapshot?: string; from?: string } = {},
  ) {
    return (await import('./archive.js')).exportGuest(name, sink, { ...this.streamHooks(hooks), ...o });
  }

  async restoreFromStream(
    source: import('node:stream').Readable,
    name: string | undefined,
    hooks: JobHooks = {},
  ) {
    return (await import('./archive-restore.js')).importGuest(source, {
      ...this.streamHooks(hooks),
      ...(name ? { name } : {}),
      what: 'on standard input',
    });
  }

  private streamHooks(h: JobHooks): { progress?: (l: string) => void; signal?: AbortSignal } {
    return { ...(h.onProgress ? { progress: h.onProgress } : {}), ...(h.signal ? { signal: h.signal } : {}) };
  }

  async listSnapshots(r: { name: string }) {
    return (await import('./snapshots.js')).listSnapshots(r.name);
  }

  async createSnapshot(r: import('../api/types.js').SnapshotCreateRequest) {
    const o = r.expiry !== undefined ? { expiry: r.expiry } : {};
    return (await import('./snapshots.js')).createSnapshot(r.name, r.snapshot, o);
  }

  async restoreSnapshot(r: import('../api/types.js').SnapshotRequest, hooks: JobHooks = {}) {
    const o = hooks.onProgress ? { onProgress: hooks.onProgress } : {};
    return (await import('./snapshots.js')).restoreGuestSnapshot(r.name, r.snapshot, o);
  }

  async deleteSnapshot(r: import('../api/types.js').SnapshotRequest) {
    await (await import('./snapshots.js')).deleteSnapshot(r.name, r.snapshot);
    return { deleted: r.snapshot };
  }

  async listImages() {
    return (await import('./image/store.js')).listImages();
  }

  async pullImage(r: import('../api/types.js').ImagePullRequest, hooks: JobHooks = {}) {
    return (await import('./image/ops.js')).pullOp(r, hooks, this.hostFiles);
  }

  async importImage(r: import('../api/engine.js').ImageImportRequest, hooks: JobHooks = {}) {
    return (await import('./image/ops.js')).importOp(r, hooks, this.hostFiles);
  }

  async inspectImage(r: { ref?: string }) {
    return (await import('./image/store.js')).inspectImage(r.ref ?? '');
  }

  async pushImage(r: import('../api/engine.js').ImagePushRequest, hooks: JobHooks = {}) {
    return (await import('./image/ops.js')).pushOp(r, hooks, this.hostFiles);
  }

  async deleteImage(r: { ref?: string }) {
    return { deleted: await (await import('./image/store.js')).deleteImage(r.ref ?? '') };
  }
}
