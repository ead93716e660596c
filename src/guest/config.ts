import { stringify as stringifyToml } from 'smol-toml';
import { JaulaError } from '../common/errors.js';
import { validateContext, validateHostname, validateName } from '../common/names.js';
import { parseForward, formatForward, type ForwardSpec } from './forward.js';
import {
  IF_MODES,
  parseCidr,
  validateIfName,
  validateMac,
  type IfMode,
  type InterfaceSpec,
} from './ifspec.js';
import * as cmdenv from './cmdenv.js';
import { haPolicyFromToml, haPolicyToToml, type HaSettings } from './ha-policy.js';
import {
  snapshotPolicyFromToml,
  snapshotPolicyToToml,
  validateSnapshotPolicy,
  type SnapshotSettings,
} from './snapshot-policy.js';
import { at, inTable, noneLeft, parseTomlText, strings, take, type Toml, type Where } from './toml.js';
import { limitsFromToml, limitsToToml, validateLimits, type Limits } from '../cgroups/limits.js';

export const INIT_STYLES = ['plain', 'sysv', 'cmd'] as const;
export type InitStyle = (typeof INIT_STYLES)[number];
export const RUNTIME_CHOICES = ['auto', 'crun', 'runc'] as const;
export const PROFILES = ['default', 'full-os'] as const;
export type Profile = (typeof PROFILES)[number];
export type RuntimeChoice = (typeof RUNTIME_CHOICES)[number];
/** The OCI runtime a guest runs under (recorded in its state). */
export type RuntimeName = Exclude<RuntimeChoice, 'auto'>;

export interface StorageConfig {
  driver: string;
  /** The stored template the guest was built from (or cloned from a guest built from). */
  template?: string;
  /** Read-only layers (stored templates) under the guest's own changes, bottom first. */
  layers?: string[];
  /** Limits on the guest's own files (see docs/adr/0003-storage-and-unification.md). */
  quotaBytes?: number;
  quotaInodes?: number;
}

export interface BuildInfo {
  method: string;
  args: string[];
  created: string;
}

/** A guest's configuration: everything that survives a host reboot. Stored as TOML. */
export interface GuestConfig extends cmdenv.CommandSettings, SnapshotSettings, HaSettings {
  name: string;
  context: number;
  hostname: string;
  initstyle: InitStyle;
  /** The command run by the "cmd" init style. */
  cmd: string[];
  marks: string[];
  depends: string[];
  runtime: RuntimeChoice;
  /**
   * Privileged guests have no user namespace: their root is the host's root (opt-in, shown as
   * such by list and doctor). Unprivileged guests (the default) run in a user namespace of their own.
   */
  privileged: boolean;
  /** Security profile: "default", or "full-os" for distributions whose init mounts file systems. */
  profile: Profile;
  /** Seconds `stop` waits for the guest's init to halt before it kills the guest. */
  stopTimeout: number;
  storage: StorageConfig;
  interfaces: InterfaceSpec[];
  /** Port forwards from the host to this guest. */
  forwards: ForwardSpec[];
  build: BuildInfo;
  /** Resource limits applied at start: the [limits] table (`jaula set ... --save`). */
  limits?: Limits;
}

export function validateProfile(s: string): Profile {
  if (!(PROFILES as readonly string[]).includes(s))
    throw new JaulaError('invalid', `Unknown security profile "${s}": use one of ${PROFILES.join(', ')}`);
  return s as Profile;
}

export function validateInitStyle(s: string): InitStyle {
  if (!(INIT_STYLES as readonly string[]).includes(s))
    throw new JaulaError('invalid', `Unknown init style "${s}": use one of ${INIT_STYLES.join(', ')}`);
  return s as InitStyle;
}

export const MAX_INTERFACES = 10;

export function validateConfig(c: GuestConfig): GuestConfig {
  validateName(c.name);
  validateContext(c.context);
  validateHostname(c.hostname);
  validateInitStyle(c.initstyle);
  if (c.initstyle === 'cmd' && c.cmd.length === 0)
    throw new JaulaError(
      'invalid',
      `Guest "${c.name}" has init style "cmd" but no command: give it after "--" or set cmd = [...]`,
    );
  for (const m of c.marks) validateName(m, 'mark');
  for (const d of c.depends) validateName(d, 'dependency');
  if (c.depends.includes(c.name))
    throw new JaulaError('invalid', `Guest "${c.name}" cannot depend on itself`);
  if (c.interfaces.length > MAX_INTERFACES)
    throw new JaulaError(
      'invalid',
      `Guest "${c.name}" has ${c.interfaces.length} interfaces (at most ${MAX_INTERFACES})`,
    );
  for (const i of c.interfaces) {
    if (i.name) validateIfName(i.name, 'interface name');
    if (i.dev) validateIfName(i.dev, 'host device');
    if (i.address && i.address !== 'auto') parseCidr(i.address);
    if (i.address6 && i.address6 !== 'auto' && parseCidr(i.address6).family !== 6)
      throw new JaulaError('invalid', `Guest "${c.name}": address6 "${i.address6}" is not an IPv6 address`);
    if (i.mac) validateMac(i.mac);
    if (i.mode && !(IF_MODES as readonly string[]).includes(i.mode))
      throw new JaulaError('invalid', `Guest "${c.name}": unknown interface mode "${i.mode}"`);
  }
  for (const f of c.forwards) parseForward(formatForward(f));
  cmdenv.validateCommandSettings(c);
  for (const l of c.storage.layers ?? []) validateName(l, 'layer');
  if (c.storage.template !== undefined) validateName(c.storage.template, 'template');
  for (const [k, v] of [
    ['quota_bytes', c.storage.quotaBytes],
    ['quota_inodes', c.storage.quotaInodes],
  ] as const)
    if (v !== undefined && (!Number.isSafeInteger(v) || v <= 0))
      throw new JaulaError('invalid', `Guest "${c.name}": ${k} must be a whole number above 0`);
  if (c.storage.quotaInodes !== undefined && c.storage.quotaBytes === undefined)
    throw new JaulaError(
      'invalid',
      `Guest "${c.name}": an inode limit needs a space limit too (give --quota SIZE with --quota-inodes N)`,
    );
  if (!Number.isFinite(c.stopTimeout) || c.stopTimeout < 0)
    throw new JaulaError('invalid', `stop_timeout must be a number of seconds >= 0`);
  if (c.limits) validateLimits(c.limits);
  if (c.snapshots) validateSnapshotPolicy(c.snapshots, c.name);
  return c;
}

/** One [[interface]] table (the `i`th, from 0). */
function parseInterface(x: unknown, i: number, where: Where): InterfaceSpec {
  const w = inTable(where, 'interface', i + 1);
  if (typeof x !== 'object' || x === null)
    throw new JaulaError('invalid', `${at(where, 'interface')}: interface ${i + 1} must be a table`);
  const it = { ...(x as Toml) };
  const spec: InterfaceSpec = {};
  const str = (k: string): string | undefined => take<string>(it, k, 'string', w);
  const n = str('name');
  const d = str('dev');
  const a = str('address');
  const a6 = str('address6');
  const mode = str('mode');
  const mac = str('mac');
  const gw = str('gateway');
  const gw6 = str('gateway6');
  const iso = take<boolean>(it, 'isolated', 'boolean', w);
  const ing = take<number>(it, 'ingress', 'number', w);
  const eg = take<number>(it, 'egress', 'number', w);
  if (n !== undefined) spec.name = n;
  if (d !== undefined) spec.dev = d;
  if (a !== undefined) spec.address = a;
  if (a6 !== undefined) spec.address6 = a6;
  if (mode !== undefined) spec.mode = mode as IfMode;
  if (mac !== undefined) spec.mac = mac;
  if (gw !== undefined) spec.gateway = gw;
  if (gw6 !== undefined) spec.gateway6 = gw6;
  if (iso) spec.isolated = true;
  if (ing !== undefined) spec.ingress = ing;
  if (eg !== undefined) spec.egress = eg;
  noneLeft(it, w);
  return spec;
}

/** One [[forward]] table (the `i`th, from 0). */
function parseForwardTable(x: unknown, i: number, where: Where): ForwardSpec {
  const w = inTable(where, 'forward', i + 1);
  if (typeof x !== 'object' || x === null)
    throw new JaulaError('invalid', `${at(where, 'forward')}: forward ${i + 1} must be a table`);
  const ft = { ...(x as Toml) };
  const proto = take<string>(ft, 'proto', 'string', w) ?? 'tcp';
  const hostIp = take<string>(ft, 'host_ip', 'string', w) ?? '0.0.0.0';
  const hostPort = take<number>(ft, 'host_port', 'number', w);
  const guestPort = take<number>(ft, 'guest_port', 'number', w);
  noneLeft(ft, w);
  if (hostPort === undefined || guestPort === undefined)
    throw new JaulaError('invalid', `${at(w)}: host_port and guest_port are required`);
  return parseForward(`${hostIp}:${hostPort}:${guestPort}/${proto}`);
}

export function parseConfig(text: string, file: string): GuestConfig {
  const t = parseTomlText(text, file);
  const where: Where = { file, text, table: '', nth: 0, label: '' };
  const storageW = inTable(where, 'storage');
  const buildW = inTable(where, 'build');
  const name = take<string>(t, 'name', 'string', where);
  const context = take<number>(t, 'context', 'number', where);
  if (name === undefined || context === undefined)
    throw new JaulaError('invalid', `${at(where)}: "name" and "context" are required`);
  const storageT = take<Toml>(t, 'storage', 'table', where) ?? {};
  const buildT = take<Toml>(t, 'build', 'table', where) ?? {};
  const ifaces = take<unknown[]>(t, 'interface', 'array', where) ?? [];
  const runtime = take<string>(t, 'runtime', 'string', where) ?? 'auto';
  const privileged = take<boolean>(t, 'privileged', 'boolean', where) ?? false;
  const profile = take<string>(t, 'profile', 'string', where) ?? 'default';
  if (!(PROFILES as readonly string[]).includes(profile))
    throw new JaulaError('invalid', `${at(where, 'profile')}: profile must be one of ${PROFILES.join(', ')}`);
  if (!(RUNTIME_CHOICES as readonly string[]).includes(runtime))
    throw new JaulaError(
      'invalid',
      `${at(where, 'runtime')}: runtime must be one of ${RUNTIME_CHOICES.join(', ')}`,
    );
  const c: GuestConfig = {
    name,
    context,
    hostname: take<string>(t, 'hostname', 'string', where) ?? name,
    initstyle: validateInitStyle(take<string>(t, 'initstyle', 'string', where) ?? 'plain'),
    cmd: strings(take(t, 'cmd', 'array', where), 'cmd', where),
    marks: strings(take(t, 'marks', 'array', where), 'marks', where),
    depends: strings(take(t, 'depends', 'array', where), 'depends', where),
    runtime: runtime as RuntimeChoice,
    privileged,
    profile: profile as Profile,
    stopTimeout: take<number>(t, 'stop_timeout', 'number', where) ?? 30,
    storage: { driver: take<string>(storageT, 'driver', 'string', storageW) ?? 'dir' },
    interfaces: ifaces.map((x, i) => parseInterface(x, i, where)),
    forwards: (take<unknown[]>(t, 'forward', 'array', where) ?? []).map((x, i) =>
      parseForwardTable(x, i, where),
    ),
    build: {
      method: take<string>(buildT, 'method', 'string', buildW) ?? 'unknown',
      args: strings(take(buildT, 'args', 'array', buildW), 'args', buildW),
      created: take<string>(buildT, 'created', 'string', buildW) ?? '',
    },
  };
  const took = (k: string, kind: 'string' | 'array'): unknown => take(t, k, kind, where);
  Object.assign(c, cmdenv.commandSettingsFromToml(took));
  const template = take<string>(storageT, 'template', 'string', storageW);
  if (template !== undefined) c.storage.template = template;
  const layers = strings(take(storageT, 'layers', 'array', storageW), 'layers', storageW);
  if (layers.length) c.storage.layers = layers;
  const qb = take<number>(storageT, 'quota_bytes', 'number', storageW);
  const qi = take<number>(storageT, 'quota_inodes', 'number', storageW);
  if (qb !== undefined) c.storage.quotaBytes = qb;
  if (qi !== undefined) c.storage.quotaInodes = qi;
  const limitsT = take<Toml>(t, 'limits', 'table', where);
  if (limitsT) {
    // One key at a time, so that an error names its line.
    const limitsW = inTable(where, 'limits');
    c.limits = {};
    for (const [k, v] of Object.entries(limitsT))
      Object.assign(c.limits, limitsFromToml({ [k]: v }, at(limitsW, k)));
  }
  const snaps = snapshotPolicyFromToml(take(t, 'snapshots', 'table', where), inTable(where, 'snapshots'));
  if (snaps) c.snapshots = snaps;
  const ha = haPolicyFromToml(take(t, 'ha', 'table', where), inTable(where, 'ha'));
  if (ha) c.ha = ha;
  noneLeft(storageT, storageW);
  noneLeft(buildT, buildW);
  noneLeft(t, where);
  return validateConfig(c);
}

export function serializeConfig(c: GuestConfig): string {
  const t: Toml = {
    name: c.name,
    context: c.context,
    hostname: c.hostname,
    initstyle: c.initstyle,
  };
  if (c.cmd.length) t['cmd'] = c.cmd;
  t['marks'] = c.marks;
  t['depends'] = c.depends;
  t['runtime'] = c.runtime;
  t['privileged'] = c.privileged;
  t['profile'] = c.profile;
  t['stop_timeout'] = c.stopTimeout;
  const st: Toml = { driver: c.storage.driver };
  if (c.storage.template !== undefined) st['template'] = c.storage.template;
  if (c.storage.layers?.length) st['layers'] = c.storage.layers;
  if (c.storage.quotaBytes !== undefined) st['quota_bytes'] = c.storage.quotaBytes;
  if (c.storage.quotaInodes !== undefined) st['quota_inodes'] = c.storage.quotaInodes;
  cmdenv.commandSettingsToToml(c, t);
  t['storage'] = st;
  t['build'] = { ...c.build };
  if (c.interfaces.length)
    t['interface'] = c.interfaces.map((i) => {
      const o: Toml = {};
      for (const [k, v] of Object.entries(i)) if (v !== undefined && v !== false) o[k] = v;
      return o;
    });
  if (c.forwards.length)
    t['forward'] = c.forwards.map((f) => ({
      proto: f.proto,
      host_ip: f.hostIp,
      host_port: f.hostPort,
      guest_port: f.guestPort,
    }));
  if (c.limits && Object.keys(c.limits).length) t['limits'] = limitsToToml(c.limits);
  const snaps = snapshotPolicyToToml(c.snapshots);
  if (snaps) t['snapshots'] = snaps;
  const ha = haPolicyToToml(c.ha);
  if (ha) t['ha'] = ha;
  return `# jaula guest "${c.name}": see docs/config.md. jaula rewrites this file on changes.\n${stringifyToml(t)}\n`;
}
