import { JaulaError } from '../common/errors.js';

/**
 * How a guest's command runs (an OCI image's config, for the "cmd" init style): NAME=VALUE added
 * to its environment, its working directory, the "UID:GID" it runs as; and the signal that asks
 * the guest's init to halt.
 */
export interface CommandSettings {
  env?: string[];
  cwd?: string;
  user?: string;
  /** Overrides the signal that asks the guest's init to halt (e.g. "SIGPWR", "SIGRTMIN+3"). */
  stopSignal?: string;
}

export function validateCommandSettings(c: CommandSettings & { name: string }): void {
  if (c.user !== undefined && !/^[0-9]{1,10}:[0-9]{1,10}$/.test(c.user))
    throw new JaulaError('invalid', `Guest "${c.name}": user "${c.user}" is not UID:GID (numbers)`);
  if (c.cwd !== undefined && !c.cwd.startsWith('/'))
    throw new JaulaError('invalid', `Guest "${c.name}": cwd "${c.cwd}" is not an absolute path`);
  for (const e of c.env ?? [])
    if (!/^[^=\0]+=/.test(e))
      throw new JaulaError('invalid', `Guest "${c.name}": env "${e}" is not NAME=VALUE`);
}

/** The settings from a config's top level; `take` reads one key of a type (with the config's own error). */
export function commandSettingsFromToml(
  take: (key: string, type: 'string' | 'array') => unknown,
): CommandSettings {
  const s: CommandSettings = {};
  const env = take('env', 'array') as unknown[] | undefined;
  if (env?.length) s.env = env.map(String);
  for (const [k, key] of [
    ['cwd', 'cwd'],
    ['user', 'user'],
    ['stopSignal', 'stop_signal'],
  ] as const) {
    const v = take(key, 'string') as string | undefined;
    if (v !== undefined) s[k] = v;
  }
  return s;
}

export function commandSettingsToToml(c: CommandSettings, t: Record<string, unknown>): void {
  if (c.env?.length) t['env'] = c.env;
  if (c.cwd !== undefined) t['cwd'] = c.cwd;
  if (c.user !== undefined) t['user'] = c.user;
  if (c.stopSignal) t['stop_signal'] = c.stopSignal;
}
