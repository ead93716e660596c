import { GuestFs } from '../os/guestfs.js';
import type { InitKind } from '../runtime/signals.js';

/**
 * Adapt a Linux tree to run as a guest, as the seed's baselayout-vserver and OpenVZ's
 * post-create scripts did: nothing at boot may touch the host's terminals, devices, clock,
 * kernel log or disks. Every change goes through GuestFs, so a hostile tree's symlinks cannot
 * redirect a write to the host. Returns a line per change, for the build log.
 */
export interface AdaptOptions {
  hostname: string;
}

/** Boot scripts a guest must not run: clock, fsck, devices, kernel modules, kernel log, mounts. */
const SYSV_DISABLED =
  /^[SK]\d\d(hwclock|hostname|checkroot|checkfs|checkroot-bootclean|udev|kmod|mountkernfs|mountdevsubfs|mountall|mountall-bootclean|mountnfs|mountnfs-bootclean|brightness|keyboard-setup|console-setup|klogd|setserial|hdparm)(\.sh)?$/;

/** systemd units masked in a guest. Gettys on tty1-6 are host terminals; the console is jaula's. */
const SYSTEMD_MASKED = [
  'systemd-udevd.service',
  'systemd-udevd-control.socket',
  'systemd-udevd-kernel.socket',
  'systemd-udev-trigger.service',
  'systemd-udev-settle.service',
  'systemd-timesyncd.service',
  'systemd-journald-audit.socket',
  'systemd-modules-load.service',
  'systemd-hwdb-update.service',
  'systemd-remount-fs.service',
  'systemd-fsck-root.service',
  'systemd-random-seed.service',
  'getty@tty1.service',
  'getty@tty2.service',
  'getty@tty3.service',
  'getty@tty4.service',
  'getty@tty5.service',
  'getty@tty6.service',
  'sys-kernel-config.mount',
  'sys-kernel-debug.mount',
  'sys-kernel-tracing.mount',
  'dev-hugepages.mount',
  'dev-mqueue.mount',
  'hwclock.service',
];

export function adaptTree(rootfs: string, opts: AdaptOptions): string[] {
  return GuestFs.with(rootfs, (g) => adapt(g, opts));
}

function adapt(g: GuestFs, opts: AdaptOptions): string[] {
  const changes: string[] = [];
  for (const d of ['etc', 'proc', 'sys', 'dev', 'run', 'tmp', 'root', 'var/log']) g.mkdirp(d);
  adaptIdentity(g, opts.hostname, changes);
  adaptMounts(g, changes);
  adaptInit(g, changes);
  return changes;
}

/** The guest's name: /etc/hostname, and /etc/hosts' loopback lines. */
function adaptIdentity(g: GuestFs, hostname: string, changes: string[]): void {
  g.writeFile('/etc/hostname', `${hostname}\n`);
  changes.push(`/etc/hostname: ${hostname}`);
  const short = hostname.split('.')[0] ?? hostname;
  const hostsOld = g.readText('/etc/hosts') ?? '';
  const kept = hostsOld
    .split('\n')
    .filter(
      (l) =>
        l.trim() && !/^\s*127\.0\.1\.1\s/.test(l) && !/^\s*127\.0\.0\.1\s/.test(l) && !/^# jaula/.test(l),
    );
  g.writeFile(
    '/etc/hosts',
    [
      '127.0.0.1\tlocalhost',
      `127.0.1.1\t${hostname}${short !== hostname ? `\t${short}` : ''}`,
      ...kept,
      '',
    ].join('\n'),
  );
  changes.push('/etc/hosts: localhost and the hostname');
}

/** No disks at boot: /etc/mtab from /proc, an empty /etc/fstab. */
function adaptMounts(g: GuestFs, changes: string[]): void {
  if (g.readlink('/etc/mtab') !== '/proc/mounts') {
    g.unlink('/etc/mtab');
    g.symlink('/etc/mtab', '/proc/mounts');
    changes.push('/etc/mtab -> /proc/mounts');
  }

  const fstab = g.readText('/etc/fstab');
  if (fstab !== undefined && fstab.split('\n').some((l) => l.trim() && !l.trim().startsWith('#'))) {
    g.writeFile(
      '/etc/fstab',
      "# A jaula guest mounts nothing at boot: its mounts are in jaula's per-guest fstab.\n",
    );
    changes.push('/etc/fstab emptied (no disks, no fsck)');
  }
}

/** The init system: no gettys, halt on SIGPWR, no services that need hardware or the kernel log. */
function adaptInit(g: GuestFs, changes: string[]): void {
  // sysvinit and busybox init: no gettys on host terminals; halt on SIGPWR (what jaula stop sends).
  const inittab = g.readText('/etc/inittab');
  if (inittab !== undefined) {
    let changed = false;
    const lines = inittab.split('\n').map((l) => {
      if (!l.startsWith('#') && /getty/.test(l) && /(respawn|askfirst)/.test(l) && !/console/.test(l)) {
        changed = true;
        return `#${l}  # jaula: no gettys on host terminals`;
      }
      if (/^pf::powerwait:/.test(l) && !/shutdown/.test(l)) {
        changed = true;
        return 'pf::powerwait:/sbin/shutdown -t1 -a -h now';
      }
      return l;
    });
    if (changed) {
      g.writeFile('/etc/inittab', lines.join('\n'));
      changes.push('/etc/inittab: gettys off, power-fail halts');
    }
  }

  for (const rc of ['rcS.d', 'rc0.d', 'rc1.d', 'rc2.d', 'rc3.d', 'rc4.d', 'rc5.d', 'rc6.d']) {
    for (const entry of g.readdir(`/etc/${rc}`)) {
      if (SYSV_DISABLED.test(entry)) {
        g.unlink(`/etc/${rc}/${entry}`);
        changes.push(`/etc/${rc}/${entry} removed`);
      }
    }
  }

  const rsyslog = g.readText('/etc/rsyslog.conf');
  if (rsyslog !== undefined && /^\s*(module\(load="imklog"|\$ModLoad imklog)/m.test(rsyslog)) {
    g.writeFile(
      '/etc/rsyslog.conf',
      rsyslog.replace(
        /^(\s*)(module\(load="imklog".*|\$ModLoad imklog.*)$/gm,
        '$1# jaula: no kernel log in a guest: $2',
      ),
    );
    changes.push('/etc/rsyslog.conf: imklog off');
  }

  if (g.exists('/lib/systemd/systemd') || g.exists('/usr/lib/systemd/systemd')) {
    g.mkdirp('/etc/systemd/system');
    for (const unit of SYSTEMD_MASKED) g.symlink(`/etc/systemd/system/${unit}`, '/dev/null');
    changes.push(`systemd: ${SYSTEMD_MASKED.length} units masked`);
  }
}

/** What the guest's /sbin/init is: decides how `jaula stop` asks it to halt (runtime/signals.ts). */
export type { InitKind };

export function detectInit(rootfs: string): InitKind {
  return GuestFs.with(rootfs, (g) => {
    const real = g.realpath('/sbin/init');
    if (!real) return 'missing';
    if (/systemd/.test(real)) return 'systemd';
    if (/busybox/.test(real)) return 'busybox';
    const st = g.stat(real);
    if (st && st.isFile()) {
      const head =
        g
          .readFile(real)
          ?.subarray(0, 1 << 20)
          .toString('latin1') ?? '';
      if (head.includes('BusyBox')) return 'busybox';
      if (head.includes('systemd')) return 'systemd';
      if (head.includes('INIT_VERSION') || head.includes('sysvinit')) return 'sysvinit';
    }
    return 'other';
  });
}

/**
 * The mount points the runtime uses must be real directories of the guest's own tree: a hostile
 * template's symlinked /proc, /sys, /dev, /run or /tmp is replaced (runtimes resolve mount
 * targets inside the root anyway; this keeps the guest working and the intent plain).
 */
export function sanitizeMountPoints(rootfs: string, shift?: number): string[] {
  return GuestFs.with(
    rootfs,
    (g) => {
      const fixed: string[] = [];
      for (const d of ['/proc', '/sys', '/dev', '/run', '/tmp']) {
        const st = g.lstat(d);
        if (st && !st.isDirectory()) {
          g.unlink(d);
          fixed.push(d);
        }
        if (!st || !st.isDirectory()) g.mkdirp(d);
      }
      return fixed;
    },
    { shift },
  );
}
