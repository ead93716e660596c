import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../../common/errors.js';
import { which } from '../../os/fs.js';
import { run } from '../../os/spawn.js';

/** Where the statically linked busybox comes from (Debian's busybox-static). */
export function findBusybox(): string {
  const candidates = [process.env['JAULA_BUSYBOX'], '/bin/busybox', '/usr/bin/busybox', which('busybox')];
  for (const c of candidates) if (c && fs.existsSync(c)) return c;
  throw new JaulaError(
    'unsupported',
    'busybox is not installed: apt-get install busybox-static (the skeleton build method needs it)',
  );
}

const INITTAB = `# busybox init for a jaula guest. No gettys: a guest has no host terminals
# ("jaula enter NAME" gives a shell). jaula stop sends SIGUSR2 (poweroff).
# A shell on the console once Enter is pressed there ("jaula console NAME"), as busybox does.
::sysinit:/etc/init.d/rcS
::askfirst:-/bin/sh
::shutdown:/etc/init.d/rcK
::ctrlaltdel:/sbin/reboot
`;

const RCS = `#!/bin/sh
# Runs the guest's services: every /etc/init.d/S??* script with "start".
for s in /etc/init.d/S??*; do [ -x "$s" ] && "$s" start; done
exit 0
`;

const RCK = `#!/bin/sh
# Stops the guest's services in reverse order.
for s in $(ls -r /etc/init.d/S??* 2>/dev/null); do [ -x "$s" ] && "$s" stop; done
exit 0
`;

/** Fill `rootfs` with a minimal busybox system. */
export async function buildSkeleton(rootfs: string): Promise<void> {
  const busybox = findBusybox();
  const list = await run([busybox, '--list-full']);
  if (list.code !== 0)
    throw new JaulaError('unsupported', `"${busybox} --list-full" failed: install busybox-static`);
  for (const d of [
    'bin',
    'sbin',
    'usr/bin',
    'usr/sbin',
    'etc/init.d',
    'root',
    'home',
    'tmp',
    'var/log',
    'var/tmp',
    'run',
    'proc',
    'sys',
    'dev',
    'mnt',
  ]) {
    fs.mkdirSync(join(rootfs, d), { recursive: true, mode: 0o755 });
  }
  fs.chmodSync(join(rootfs, 'tmp'), 0o1777);
  fs.chmodSync(join(rootfs, 'var/tmp'), 0o1777);
  fs.chmodSync(join(rootfs, 'root'), 0o700);
  fs.copyFileSync(busybox, join(rootfs, 'bin/busybox'));
  fs.chmodSync(join(rootfs, 'bin/busybox'), 0o755);
  for (const applet of list.stdout.split('\n')) {
    const p = applet.trim();
    if (!p || p === 'bin/busybox' || p.includes('..')) continue;
    const dst = join(rootfs, p);
    fs.mkdirSync(join(dst, '..'), { recursive: true });
    if (!fs.existsSync(dst)) fs.symlinkSync('/bin/busybox', dst);
  }
  fs.symlinkSync('/run', join(rootfs, 'var/run'));
  const files: [string, string, number][] = [
    [
      'etc/passwd',
      'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
      0o644,
    ],
    ['etc/group', 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n', 0o644],
    ['etc/shadow', 'root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n', 0o600],
    ['etc/inittab', INITTAB, 0o644],
    ['etc/init.d/rcS', RCS, 0o755],
    ['etc/init.d/rcK', RCK, 0o755],
    ['etc/profile', 'export PATH=/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1="\\u@\\h:\\w\\$ "\n', 0o644],
    ['etc/resolv.conf', '', 0o644],
    ['etc/shells', '/bin/sh\n/bin/ash\n', 0o644],
  ];
  for (const [p, text, mode] of files) fs.writeFileSync(join(rootfs, p), text, { mode });
}
