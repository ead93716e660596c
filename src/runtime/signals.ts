/**
 * Signals between jaula and a guest's init: the names jaula knows, the one that asks each kind
 * of init to halt, what the signal that ended an init means, and sending one.
 */
import { JaulaError } from '../common/errors.js';
import type { GuestConfig } from '../guest/config.js';

export const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGUSR2: 12,
  SIGTERM: 15,
  SIGPWR: 30,
  SIGRTMIN: 34,
};

export function signalNumber(s: string): number {
  const name = s.toUpperCase().startsWith('SIG') ? s.toUpperCase() : `SIG${s.toUpperCase()}`;
  const rt = /^SIGRTMIN\+(\d+)$/.exec(name);
  if (rt?.[1]) return 34 + Number(rt[1]);
  const n = SIGNALS[name] ?? (/^\d+$/.test(s) ? Number(s) : undefined);
  if (n === undefined || n < 1 || n > 64)
    throw new JaulaError('invalid', `"${s}" is not a signal jaula knows (e.g. SIGPWR, SIGTERM, SIGRTMIN+3)`);
  return n;
}

/** What a guest's /sbin/init is (core/adapt.ts detectInit reads it from the guest's root). */
export type InitKind = 'busybox' | 'systemd' | 'sysvinit' | 'missing' | 'other';

/** What of a guest's config decides its halt signal. */
export type HaltConfig = Pick<GuestConfig, 'name' | 'initstyle' | 'stopSignal'>;

/**
 * The signal that asks the guest's init to halt, in the way that init understands. `detect`
 * says what the guest's /sbin/init is; asked only for the "plain" style without a stop signal.
 */
export function haltSignal(cfg: HaltConfig, detect: () => InitKind): number {
  if (cfg.stopSignal) return signalNumber(cfg.stopSignal);
  if (cfg.initstyle !== 'plain') return SIGNALS['SIGPWR'] as number; // jaula-init
  switch (detect()) {
    case 'busybox':
      return SIGNALS['SIGUSR2'] as number; // busybox init: poweroff
    case 'systemd':
      return 34 + 3; // SIGRTMIN+3: halt
    case 'sysvinit':
      return SIGNALS['SIGPWR'] as number; // inittab's powerwait action (adapted at build)
    case 'missing':
      throw new JaulaError(
        'invalid',
        `Guest "${cfg.name}" has no /sbin/init for the "plain" init style: use --initstyle sysv or cmd, or install an init in it`,
      );
    default:
      return SIGNALS['SIGTERM'] as number;
  }
}

/**
 * What the signal that ended a guest's init says, when jaula did not ask it to stop: jaula-init
 * and the kernel (reboot(2) in a PID namespace) end the init with SIGHUP for a reboot inside and
 * SIGINT for a halt; any other signal killed it; none, it exited.
 */
export function initEndedBy(signal: number | undefined): 'reboot' | 'halt' | 'killed' | 'exited' {
  if (signal === SIGNALS['SIGHUP']) return 'reboot';
  if (signal === SIGNALS['SIGINT']) return 'halt';
  if (signal !== undefined) return 'killed';
  return 'exited';
}

/**
 * Send `signal` to a guest's init (by its pid: jaula holds it, no runtime process is needed);
 * nothing when it is gone already. SIGKILL to the init ends every process of its PID namespace.
 */
export function signalInit(pid: number, signal: number | NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}
