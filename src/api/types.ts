/**
 * Wire types of jaula's API: what the Engine's operations take and return, the same whether the
 * engine runs in-process (LocalEngine) or behind jaulad (RemoteEngine). Plain JSON values only;
 * no node:* imports (the web dashboard uses these too).
 *
 * They are derived from the API's schemas (api/schemas.ts) and routes (api/routes.ts): a route's
 * request is its path parameters, query and body (RequestOf), its answer its response schema
 * (ResponseOf); the shared shapes are their schemas' types (WireType). Only what never goes
 * through a schema is written out here (the attach session's hello, the event stream).
 */
import type { RequestOf, ResponseOf } from './routes.js';
import type { WireType } from './schema.js';
import type * as S from './schemas.js';
import type * as F from './schemas-fleet.js';
import type * as M from './schemas-migrate.js';
import type * as SI from './schemas-image.js';

export type ExitInfo = WireType<typeof S.ExitInfo>;
export type ExitReason = ExitInfo['reason'];
/** One guest as listings show it. */
export type GuestSummary = WireType<typeof S.GuestSummary>;
export type GuestStatus = Exclude<GuestSummary['status'], 'broken'>;
/** A guest's stored settings, as `jaula set` and the dashboard edit them. */
export type GuestSettings = WireType<typeof S.GuestSettings>;
export type BuildRequest = WireType<typeof S.BuildRequest>;
export type Job = WireType<typeof S.Job>;
export type JobState = Job['state'];
export type GuestUsage = WireType<typeof S.GuestUsage>;
export type ProcessRow = WireType<typeof S.ProcessRow>;
export type Check = WireType<typeof S.Check>;
export type CheckStatus = Check['status'];
export type NetworkSummary = WireType<typeof S.NetworkSummary>;
export type ReconcileReport = WireType<typeof S.ReconcileReport>;
/** A stored template (var/lib/jaula/templates/NAME). */
export type TemplateInfo = WireType<typeof S.TemplateInfo>;
export type TemplateMeta = Omit<TemplateInfo, 'usedBy'>;
export type HashifyReport = WireType<typeof S.HashifyReport>;
export type ImageInfo = WireType<typeof SI.ImageInfo>;
export type ImagePullRequest = WireType<typeof SI.ImagePullRequest>;
export type DuReport = WireType<typeof S.DuReport>;
/** Disk usage of one guest (`jaula du`). */
export type GuestDiskUsage = DuReport['guests'][number];
export type GuestLimits = WireType<typeof S.GuestLimits>;
/** One limit of a guest: saved in its config, live in its cgroup, and the default. */
export type LimitView = GuestLimits['limits'][number];
export type SetLimitsResult = WireType<typeof S.SetLimitsResult>;
export type EngineInfo = WireType<typeof S.EngineInfo>;
/** What this jaula offers: operations that other parts of jaula add later are listed as false. */
export type Features = EngineInfo['features'];
/** A failure as it crosses the wire: a JaulaError's code, message and details. */
export type ErrorInfo = WireType<typeof S.ErrorInfo>;
/** The error body of every failed request. */
export type ApiError = WireType<typeof S.ApiError>;

export type NameRequest = RequestOf<'getGuest'>;
export type ListRequest = RequestOf<'listGuests'>;
export type StopRequest = RequestOf<'stopGuest'>;
export type DeleteRequest = RequestOf<'deleteGuest'>;
export type DeleteResult = ResponseOf<'deleteGuest'>;
/** Changes to a guest's stored settings; they apply at its next start. */
export type ConfigureRequest = RequestOf<'configureGuest'>;
/** A command run to its end with its output collected (bulk exec, programs). */
export type ExecCaptureRequest = RequestOf<'execCapture'>;
export type ExecCaptureResult = ResponseOf<'execCapture'>;
export type RenameRequest = RequestOf<'renameGuest'>;
export type GuestLogsRequest = RequestOf<'guestLogs'>;
export type GuestLogs = ResponseOf<'guestLogs'>;
export type CopyRequest = RequestOf<'copy'>;
export type CopyResult = ResponseOf<'copy'>;
export type UsageRequest = RequestOf<'getUsage'>;
export type ProcessesRequest = RequestOf<'listProcesses'>;
export type DoctorRequest = RequestOf<'doctor'>;
export type NetworkCreateRequest = RequestOf<'createNetwork'>;
export type NetworkGcResult = ResponseOf<'networkGc'>;
export type TrapFinding = ResponseOf<'networkCheck'>[number];
/** Clone a stopped guest (`name`) to `dst` under a new identity. */
export type CloneRequest = RequestOf<'cloneGuest'>;
export type TemplateSaveRequest = RequestOf<'saveTemplate'>;
export type TemplateImportRequest = RequestOf<'importTemplate'>;
export type TemplateExportRequest = RequestOf<'exportTemplate'>;
export type HashifyRequest = RequestOf<'hashify'>;
export type DuRequest = RequestOf<'diskUsage'>;
export type SetLimitsRequest = RequestOf<'setLimits'>;
export type QuotaRequest = RequestOf<'setQuota'>;
/** The guest's quota after the change (none: no quota). */
export type QuotaResult = ResponseOf<'setQuota'>;
export type PoolInfo = WireType<typeof S.PoolInfo>;
export type PoolCreateRequest = RequestOf<'createPool'>;
export type PoolSetRequest = RequestOf<'setPool'>;
export type GuestSample = WireType<typeof S.GuestSample>;
export type SampleRequest = RequestOf<'sampleGuests'>;
export type LayerRow = ResponseOf<'listLayers'>[number];
export type LayersRequest = RequestOf<'changeLayers'>;
/** The guest's layers after the change, bottom first; atNextStart: it runs, the change applies at its next start. */
export type LayersResult = ResponseOf<'changeLayers'>;

export type BackupRequest = RequestOf<'backupGuest'>;
export type RestoreRequest = RequestOf<'restoreGuest'>;
/** A backup written: its bytes, the layers by digest (sent: inside the archive), from a running guest (live). */
export interface BackupResult {
  name: string;
  file: string;
  bytes: number;
  layers: { name: string; digest: string; sent: boolean }[];
  live: boolean;
  /** An increment (backup --from): its base snapshot, and the paths it sends again and removes. */
  base?: string;
  changed?: number;
  removed?: number;
}
/** A guest restored: its name and context here, each layer's template here (stored: made now). */
export interface RestoreResult {
  name: string;
  context: number;
  layers: { digest: string; template: string; stored: boolean }[];
  live: boolean;
}

export interface TemplateExportResult {
  name: string;
  file: string;
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

export interface RunRequest {
  name: string;
  cmd: string[];
}

/** How a console session ended: the user detached, or the console closed (the guest stopped). */
export type ConsoleEnd = 'detached' | 'ended';

/** One message of the event stream (GET /v1/events, Server-Sent Events). */
export type JaulaEvent =
  | { type: 'hello'; at: string; guests: GuestSummary[]; jobs: Job[] }
  | { type: 'guest'; at: string; guest: GuestSummary }
  | { type: 'guest-removed'; at: string; name: string }
  | { type: 'job'; at: string; job: Job };

/** The fleet of hosts on etcd (jaula fleet). */
export type FleetHost = WireType<typeof F.FleetHost>;
export type FleetGuest = WireType<typeof F.FleetGuest>;
export type FleetHa = WireType<typeof F.FleetHa>;
export type FleetDrainResult = WireType<typeof F.FleetDrainResult>;
export type FleetProcesses = WireType<typeof F.FleetProcesses>;
export type FleetSamples = WireType<typeof F.FleetSamples>;
export type FleetDrainRequest = RequestOf<'fleetDrain'>;
export type FleetBalanceResult = WireType<typeof F.FleetBalanceResult>;
export type FleetStatus = WireType<typeof F.FleetStatus>;
export type FleetJoinRequest = RequestOf<'joinFleet'>;
export type RemoteInfo = WireType<typeof M.RemoteInfo>;
export type MoveInfo = WireType<typeof M.MoveInfo>;
export type MigrateResult = WireType<typeof M.MigrateResult>;
export type AddRemoteRequest = RequestOf<'addRemote'>;
export type MigrateRequest = RequestOf<'migrateGuest'>;
export type SnapshotInfo = WireType<typeof import('./snapshot-schemas.js').SnapshotInfo>;
export type SnapshotRequest = RequestOf<'deleteSnapshot'>;
export type SnapshotCreateRequest = RequestOf<'createSnapshot'>;
export type SnapshotRestoreResult = { snapshot: SnapshotInfo; restarted: boolean };
