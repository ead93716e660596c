/**
 * The Engine: every operation the CLI (and jaulad's API) offers on guests, networks and the
 * host, behind one interface with two implementations, as Podman does:
 *   - LocalEngine (core/local-engine.ts) calls core in this process;
 *   - RemoteEngine (client/remote-engine.ts) asks jaulad over its unix socket.
 * The CLI picks RemoteEngine when jaulad answers (cli/engine.ts). Requests and answers are the
 * API's wire types (api/types.ts), so both engines behave alike, down to the error codes.
 *
 * To add an operation: a route in api/routes.ts (engine: true, method name = op), its method
 * here, its implementation in LocalEngine. RemoteEngine gets a one-line entry; jaulad's router
 * calls LocalEngine by the route's op.
 */
import type {
  BuildRequest,
  Check,
  CloneRequest,
  DuReport,
  DuRequest,
  GuestLimits,
  HashifyReport,
  HashifyRequest,
  ImageInfo,
  ImagePullRequest,
  SetLimitsRequest,
  SetLimitsResult,
  TemplateExportRequest,
  TemplateExportResult,
  TemplateImportRequest,
  TemplateInfo,
  TemplateMeta,
  LayerRow,
  GuestSample,
  SampleRequest,
  PoolInfo,
  PoolCreateRequest,
  PoolSetRequest,
  QuotaRequest,
  QuotaResult,
  LayersRequest,
  LayersResult,
  TemplateSaveRequest,
  ConfigureRequest,
  CopyRequest,
  CopyResult,
  DeleteRequest,
  DeleteResult,
  DoctorRequest,
  EngineInfo,
  ExecCaptureRequest,
  ExecCaptureResult,
  ExecRequest,
  ExitInfo,
  GuestSettings,
  GuestSummary,
  GuestUsage,
  ListRequest,
  NameRequest,
  NetworkCreateRequest,
  NetworkGcResult,
  NetworkSummary,
  RunRequest,
  StopRequest,
  TrapFinding,
  UsageRequest,
  ProcessRow,
  ProcessesRequest,
  RenameRequest,
  GuestLogs,
  GuestLogsRequest,
  ConsoleEnd,
  FleetGuest,
  FleetHa,
  FleetHost,
  FleetJoinRequest,
  FleetStatus,
  AddRemoteRequest,
  MigrateRequest,
  FleetDrainRequest,
  FleetDrainResult,
  FleetBalanceResult,
  FleetProcesses,
  FleetSamples,
  MigrateResult,
  MoveInfo,
  RemoteInfo,
  BackupRequest,
  BackupResult,
  RestoreRequest,
  RestoreResult,
  SnapshotInfo,
  SnapshotRequest,
  SnapshotCreateRequest,
  SnapshotRestoreResult,
} from './types.js';

/** How a long operation reports progress and is cancelled. */
export interface JobHooks {
  onProgress?: (line: string, fraction?: number) => void;
  signal?: AbortSignal;
}

export interface Engine {
  readonly kind: 'local' | 'remote';
  getInfo(): Promise<EngineInfo>;
  listGuests(r: ListRequest): Promise<GuestSummary[]>;
  getGuest(r: NameRequest): Promise<GuestSummary>;
  buildGuest(r: BuildRequest, hooks?: JobHooks): Promise<GuestSettings>;
  deleteGuest(r: DeleteRequest): Promise<DeleteResult>;
  getGuestSettings(r: NameRequest): Promise<GuestSettings>;
  configureGuest(r: ConfigureRequest): Promise<GuestSettings>;
  startGuest(r: NameRequest): Promise<GuestSummary>;
  stopGuest(r: StopRequest): Promise<ExitInfo>;
  restartGuest(r: StopRequest): Promise<GuestSummary>;
  execCapture(r: ExecCaptureRequest): Promise<ExecCaptureResult>;
  getUsage(r: UsageRequest): Promise<GuestUsage[]>;
  /** Every process of the running guests (jaula ps), from the host's /proc. */
  listProcesses(r: ProcessesRequest): Promise<ProcessRow[]>;
  /** Running guests' counters at one moment (jaula top, stat, metrics), from their cgroups. */
  sampleGuests(r: SampleRequest): Promise<GuestSample[]>;
  copy(r: CopyRequest): Promise<CopyResult>;
  doctor(r: DoctorRequest): Promise<Check[]>;
  listNetworks(): Promise<NetworkSummary[]>;
  createNetwork(r: NetworkCreateRequest): Promise<NetworkSummary>;
  deleteNetwork(r: NameRequest): Promise<{ deleted: string }>;
  networkGc(): Promise<NetworkGcResult>;
  networkCheck(): Promise<TrapFinding[]>;
  /** Clone a stopped guest under a new identity (a job). */
  cloneGuest(r: CloneRequest, hooks?: JobHooks): Promise<GuestSettings>;
  getLimits(r: NameRequest): Promise<GuestLimits>;
  setLimits(r: SetLimitsRequest): Promise<SetLimitsResult>;
  /** Change a stopped guest's quota on its own files (jaula set --quota). */
  setQuota(r: QuotaRequest): Promise<QuotaResult>;
  listTemplates(): Promise<TemplateInfo[]>;
  /** The storage pool, or null (jaula pool show). */
  getPool(): Promise<PoolInfo | null>;
  /** Make the storage pool (a job: its progress lines). */
  createPool(r: PoolCreateRequest, hooks?: JobHooks): Promise<PoolInfo | null>;
  /** Change the space limit of each new guest. */
  setPool(r: PoolSetRequest): Promise<PoolInfo>;
  /** Unmount the pool and remove its image. */
  deletePool(): Promise<{ deleted: string }>;
  /** An overlay guest's root, top first (jaula layer list). */
  listLayers(r: NameRequest): Promise<LayerRow[]>;
  /** Add a stored template on top of a guest's layers, or remove one (jaula layer add|remove). */
  changeLayers(r: LayersRequest): Promise<LayersResult>;
  /** One stored template (not_found when there is none of that name). */
  getTemplate(r: NameRequest): Promise<TemplateInfo>;
  saveTemplate(r: TemplateSaveRequest, hooks?: JobHooks): Promise<TemplateMeta>;
  importTemplate(r: TemplateImportRequest, hooks?: JobHooks): Promise<TemplateMeta>;
  exportTemplate(r: TemplateExportRequest, hooks?: JobHooks): Promise<TemplateExportResult>;
  deleteTemplate(r: NameRequest): Promise<{ deleted: string }>;
  /** Unify identical files of guests (a job). */
  hashify(r: HashifyRequest, hooks?: JobHooks): Promise<HashifyReport>;
  diskUsage(r: DuRequest): Promise<DuReport>;
  /** Interactive: the command gets this process's stdin, stdout and stderr; returns its exit status. */
  execInteractive(r: ExecRequest): Promise<number>;
  /** A login shell on a fresh pty inside the guest, on this process's terminal. */
  enterGuest(r: NameRequest): Promise<number>;
  /** One-shot: start a stopped guest with the command, stop it when it ends (stdio attached). */
  runOnce(r: RunRequest): Promise<number>;
  /** Rename a stopped guest: everything keyed by its name moves. */
  renameGuest(r: RenameRequest): Promise<GuestSettings>;
  /** Its console's output and jaula's events for it, from given offsets (to follow them). */
  guestLogs(r: GuestLogsRequest): Promise<GuestLogs>;
  /**
   * Interactive: this process's terminal on the console the guest's supervisor holds, until
   * Ctrl-a q, the end of input or the guest's end. `onAttached` runs once it is attached.
   */
  attachConsole(r: NameRequest, onAttached?: () => void): Promise<ConsoleEnd>;
  /** This host's membership of a fleet of hosts on etcd. */
  getFleet(): Promise<FleetStatus>;
  /** Join a fleet (or make it, with `create`): the lease, the host's record, its guests reserved. */
  joinFleet(r: FleetJoinRequest): Promise<FleetStatus>;
  leaveFleet(r: { force?: boolean }): Promise<FleetStatus>;
  fleetHosts(): Promise<FleetHost[]>;
  /** Every guest of the fleet, with its host. */
  fleetGuests(): Promise<FleetGuest[]>;
  /** High availability: the leader, the replicas, the failovers. */
  fleetHa(): Promise<FleetHa>;
  /** Every host's guests' processes (this host's, the others' through their jaulads: core/fleet-view.ts). */
  fleetProcesses(r: { args?: boolean }): Promise<FleetProcesses>;
  /** Every host's running guests' counters, asked as fleetProcesses. */
  fleetSamples(r: { detail?: boolean }): Promise<FleetSamples>;
  /** This host down to its share of the fleet's guests (a job: core/fleet-drain.ts). */
  fleetBalance(
    r: { mode?: 'cold' | 'sync' | 'live'; dryRun?: boolean },
    hooks?: JobHooks,
  ): Promise<FleetBalanceResult>;
  /** Move every guest of this host to the fleet's other hosts (a job: core/fleet-drain.ts). */
  fleetDrain(r: FleetDrainRequest, hooks?: JobHooks): Promise<FleetDrainResult>;
  /** Other jaulads known by name (jaula remote list). */
  listRemotes(): Promise<RemoteInfo[]>;
  /** Know another jaulad by name: its certificate pinned, its token stored root-only. */
  addRemote(r: AddRemoteRequest): Promise<RemoteInfo>;
  removeRemote(r: NameRequest): Promise<{ deleted: string }>;
  /** Move a guest to a remote (a job): the source drives it; see docs/adr/0008-moving-guests.md. */
  migrateGuest(r: MigrateRequest, hooks?: JobHooks): Promise<MigrateResult>;
  /** This host's moves (unseen: the outcomes no command has shown yet, marked shown). */
  listMoves(r: { unseen?: boolean }): Promise<MoveInfo[]>;
  /** Write a guest's archive to a file on the engine's host (core/archive.ts). */
  backupGuest(r: BackupRequest, hooks?: JobHooks): Promise<BackupResult>;
  /** Make a guest from an archive on the engine's host; nothing is made if it is damaged. */
  restoreGuest(r: RestoreRequest, hooks?: JobHooks): Promise<RestoreResult>;
  /** A guest's snapshots, oldest first (jaula snapshot list). */
  listSnapshots(r: NameRequest): Promise<SnapshotInfo[]>;
  /** Take a snapshot of a guest, running or not (a running one is frozen for the instant). */
  createSnapshot(r: SnapshotCreateRequest): Promise<SnapshotInfo>;
  /** Put a guest back as it was at a snapshot (a job; a running guest is restarted). */
  restoreSnapshot(r: SnapshotRequest, hooks?: JobHooks): Promise<SnapshotRestoreResult>;
  deleteSnapshot(r: SnapshotRequest): Promise<{ deleted: string }>;
  /** Stored OCI images (jaula image list). */
  listImages(): Promise<ImageInfo[]>;
  /** Pull an image from its registry (a job: progress with bytes and rate). */
  pullImage(r: ImagePullRequest, hooks?: JobHooks): Promise<ImageInfo>;
  /** Import an image from a docker save archive, an oci-archive or an OCI layout directory (a job). */
  importImage(r: ImageImportRequest, hooks?: JobHooks): Promise<ImageInfo>;
  inspectImage(r: { ref?: string }): Promise<ImageInfo>;
  deleteImage(r: { ref?: string }): Promise<{ deleted: string }>;
  /** Publish a stopped guest's root or a stored template as an OCI image (a job). */
  pushImage(r: ImagePushRequest, hooks?: JobHooks): Promise<{ ref: string; digest: string }>;
}

export interface ImagePushRequest {
  source: string;
  ref: string;
  creds?: string;
  authFile?: string;
  insecure?: boolean;
}

export interface ImageImportRequest {
  file: string;
  name?: string;
  maxLayerBytes?: number;
  maxLayerEntries?: number;
}
