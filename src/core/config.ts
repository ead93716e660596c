import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';
import { JaulaError, messageOf } from '../common/errors.js';
import { validateContext, validateHostname, validateName } from '../common/names.js';
import { parseCidr, validateIfName, type InterfaceSpec } from '../network/ifspec.js';
import { limitsFromToml, limitsToToml, validateLimits, type Limits } from '../cgroups/limits.js';

export const INIT_STYLES = ['plain', 'sysv', 'cmd'] as const;
export type InitStyle = (typeof INIT_STYLES)[number];
export const RUNTIME_CHOICES = ['auto', 'crun', 'runc'] as const;
export type RuntimeChoice = (typeof RUNTIME_CHOICES)[number];

export interface StorageConfig {
  driver: string;
  template?: string;
}

export interface BuildInfo {
  method: string;
  args: string[];
  created: string;
}

/** A guest's configuration: everything that survives a host reboot. Stored as TOML. */
export interface GuestConfig {
  name: string;
  context: number;
  hostname: string;
  initstyle: InitStyle;
  /** The command run by the "cmd" init style. */
  cmd: string[];
  marks: string[];
  depends: string[];
  runtime: RuntimeChoice;
  /** Seconds `stop` waits for the guest's init to halt before it kills the guest. */
  stopTimeout: number;
  /** Overrides the signal that asks the guest's init to halt (e.g. "SIGPWR", "SIGRTMIN+3"). */
  stopSignal?: string;
  storage: StorageConfig;
  interfaces: InterfaceSpec[];
  build: BuildInfo;
  /** Resource limits applied at start: the [limits] table (`jaula set ... --save`). */
  limits?: Limits;
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
    if (i.address) parseCidr(i.address);
  }
  if (!Number.isFinite(c.stopTimeout) || c.stopTimeout < 0)
    throw new JaulaError('invalid', `stop_timeout must be a number of seconds >= 0`);
  if (c.limits) validateLimits(c.limits);
  return c;
}

type Toml = Record<string, unknown>;

function take<T>(
  obj: Toml,
  key: string,
  kind: 'string' | 'number' | 'boolean' | 'array' | 'table',
  where: string,
): T | undefined {
  const v = obj[key];
  delete obj[key];
  if (v === undefined) return undefined;
  const ok =
    kind === 'array'
      ? Array.isArray(v)
      : kind === 'table'
        ? typeof v === 'object' && v !== null && !Array.isArray(v)
        : typeof v === kind;
  if (!ok) throw new JaulaError('invalid', `${where}: "${key}" must be a ${kind}`);
  return v as T;
}

function strings(v: unknown[] | undefined, key: string, where: string): string[] {
  if (!v) return [];
  if (!v.every((x) => typeof x === 'string'))
    throw new JaulaError('invalid', `${where}: "${key}" must be a list of strings`);
  return v as string[];
}

function noneLeft(obj: Toml, where: string): void {
  const keys = Object.keys(obj);
  if (keys.length)
    throw new JaulaError(
      'invalid',
      `${where}: unknown setting${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')}`,
    );
}

export function parseConfig(text: string, file: string): GuestConfig {
  let t: Toml;
  try {
    t = parseToml(text) as Toml;
  } catch (e) {
    throw new JaulaError('invalid', `The config file "${file}" is not valid TOML: ${messageOf(e)}`, {
      cause: e,
    });
  }
  const where = `In "${file}"`;
  const name = take<string>(t, 'name', 'string', where);
  const context = take<number>(t, 'context', 'number', where);
  if (name === undefined || context === undefined)
    throw new JaulaError('invalid', `${where}: "name" and "context" are required`);
  const storageT = take<Toml>(t, 'storage', 'table', where) ?? {};
  const buildT = take<Toml>(t, 'build', 'table', where) ?? {};
  const ifaces = take<unknown[]>(t, 'interface', 'array', where) ?? [];
  const stopSignal = take<string>(t, 'stop_signal', 'string', where);
  const runtime = take<string>(t, 'runtime', 'string', where) ?? 'auto';
  if (!(RUNTIME_CHOICES as readonly string[]).includes(runtime))
    throw new JaulaError('invalid', `${where}: runtime must be one of ${RUNTIME_CHOICES.join(', ')}`);
  const c: GuestConfig = {
    name,
    context,
    hostname: take<string>(t, 'hostname', 'string', where) ?? name,
    initstyle: validateInitStyle(take<string>(t, 'initstyle', 'string', where) ?? 'plain'),
    cmd: strings(take(t, 'cmd', 'array', where), 'cmd', where),
    marks: strings(take(t, 'marks', 'array', where), 'marks', where),
    depends: strings(take(t, 'depends', 'array', where), 'depends', where),
    runtime: runtime as RuntimeChoice,
    stopTimeout: take<number>(t, 'stop_timeout', 'number', where) ?? 30,
    storage: { driver: take<string>(storageT, 'driver', 'string', where) ?? 'dir' },
    interfaces: ifaces.map((x, i) => {
      if (typeof x !== 'object' || x === null)
        throw new JaulaError('invalid', `${where}: interface ${i + 1} must be a table`);
      const it = { ...(x as Toml) };
      const spec: InterfaceSpec = {};
      const n = take<string>(it, 'name', 'string', where);
      const d = take<string>(it, 'dev', 'string', where);
      const a = take<string>(it, 'address', 'string', where);
      if (n !== undefined) spec.name = n;
      if (d !== undefined) spec.dev = d;
      if (a !== undefined) spec.address = a;
      noneLeft(it, `${where}, interface ${i + 1}`);
      return spec;
    }),
    build: {
      method: take<string>(buildT, 'method', 'string', where) ?? 'unknown',
      args: strings(take(buildT, 'args', 'array', where), 'args', where),
      created: take<string>(buildT, 'created', 'string', where) ?? '',
    },
  };
  if (stopSignal !== undefined) c.stopSignal = stopSignal;
  const template = take<string>(storageT, 'template', 'string', where);
  if (template !== undefined) c.storage.template = template;
  const limitsT = take<Toml>(t, 'limits', 'table', where);
  if (limitsT) c.limits = limitsFromToml(limitsT, `${where}, [limits]`);
  noneLeft(storageT, `${where}, [storage]`);
  noneLeft(buildT, `${where}, [build]`);
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
  t['stop_timeout'] = c.stopTimeout;
  if (c.stopSignal) t['stop_signal'] = c.stopSignal;
  t['storage'] = { ...c.storage };
  t['build'] = { ...c.build };
  if (c.interfaces.length) t['interface'] = c.interfaces.map((i) => ({ ...i }));
  if (c.limits && Object.keys(c.limits).length) t['limits'] = limitsToToml(c.limits);
  return `# jaula guest "${c.name}": see docs/config.md. jaula rewrites this file on changes.\n${stringifyToml(t)}\n`;
}
