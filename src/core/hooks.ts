import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError, messageOf } from '../common/errors.js';
import { isExecutable } from '../os/fs.js';
import { paths } from '../os/paths.js';
import { run } from '../os/spawn.js';
import type { GuestConfig } from '../guest/config.js';
import { guestLog } from '../guest/log.js';

/**
 * Hooks, like OpenVZ's action scripts, in the guest's config dir under hooks/:
 *   pre-start, post-stop  executables run on the host; a failing pre-start aborts the start;
 *   start, stop           shell scripts run inside the guest (by /bin/sh) after start, before stop.
 * Host hooks get JAULA_GUEST, JAULA_CONTEXT, JAULA_ROOTFS, JAULA_HOSTNAME, JAULA_HOOK, JAULA_ROOT
 * (and JAULA_EXIT_REASON for post-stop) in their environment.
 */
export type HostHook = 'pre-start' | 'post-stop';
export type GuestHook = 'start' | 'stop';

export const HOOK_TIMEOUT_MS = 120_000;

export function hookPath(name: string, hook: HostHook | GuestHook): string {
  return join(paths().guestConf(name), 'hooks', hook);
}

export async function runHostHook(
  cfg: GuestConfig,
  hook: HostHook,
  rootfs: string,
  extra: Record<string, string> = {},
): Promise<void> {
  const file = hookPath(cfg.name, hook);
  if (!fs.existsSync(file)) return;
  if (!isExecutable(file))
    throw new JaulaError('invalid', `The ${hook} hook "${file}" is not executable (chmod +x it)`);
  const env = {
    ...process.env,
    JAULA_GUEST: cfg.name,
    JAULA_CONTEXT: String(cfg.context),
    JAULA_ROOTFS: rootfs,
    JAULA_HOSTNAME: cfg.hostname,
    JAULA_HOOK: hook,
    JAULA_ROOT: paths().root,
    ...extra,
  };
  const r = await run([file], { env, timeoutMs: HOOK_TIMEOUT_MS, cwd: paths().guestConf(cfg.name) });
  const out = (r.stdout + r.stderr).trim();
  guestLog(cfg.name, `hook ${hook}: status ${r.code}${out ? `: ${out}` : ''}`);
  if (r.code !== 0)
    throw new JaulaError(
      'runtime',
      `The ${hook} hook of guest "${cfg.name}" failed with status ${r.code}${out ? `: ${out.split('\n').slice(-3).join(' ')}` : ''}`,
    );
}

export function guestHookScript(name: string, hook: GuestHook): string | undefined {
  try {
    return fs.readFileSync(hookPath(name, hook), 'utf8');
  } catch {
    return undefined;
  }
}

/** Run a guest hook script (start/stop) inside the guest with /bin/sh; failures are logged. */
export async function runGuestHook(cfg: GuestConfig, hook: GuestHook): Promise<void> {
  const script = guestHookScript(cfg.name, hook);
  if (script === undefined) return;
  // As jaula exec runs commands: the guest's environment (PATH) and nothing of jaula in sight.
  const { execCapture } = await import('./exec.js');
  const r = await execCapture(cfg.name, ['/bin/sh', '-s'], {
    env: [`JAULA_HOOK=${hook}`],
    input: script,
    timeoutMs: 120_000,
  }).catch((e: unknown) => ({ code: -1, stdout: '', stderr: messageOf(e) }));
  guestLog(
    cfg.name,
    `hook ${hook} (inside): status ${r.code}${(r.stdout + r.stderr).trim() ? `: ${(r.stdout + r.stderr).trim()}` : ''}`,
  );
}
