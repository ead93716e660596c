/** The files of a guest's network inside its tree, written at each start (network/apply.ts). */
import { GuestFs } from '../os/guestfs.js';
import type { GuestNetConfig } from './guestnet.js';
import type { NetPlan } from './plan.js';

/** /etc/resolv.conf and the guest's address in /etc/hosts, written through GuestFs. */
export function writeGuestNetFiles(rootfs: string, g: GuestNetConfig, plan: NetPlan, shift?: number): void {
  GuestFs.with(
    rootfs,
    (gfs) => {
      // What a start wrote before is not written again: a write replaces the file (on an
      // overlay guest, a new file in its upper layer each start). A symlink there is replaced.
      const put = (f: string, text: string): void => {
        if (!gfs.lstat(f)?.isFile() || gfs.readText(f) !== text) gfs.writeFile(f, text);
      };
      if (plan.dns.length)
        put(
          '/etc/resolv.conf',
          `# written by jaula at start\n${plan.dns.map((d) => `nameserver ${d}`).join('\n')}\n`,
        );
      const hostname = (gfs.readText('/etc/hostname') ?? g.name).trim() || g.name;
      const hosts = (gfs.readText('/etc/hosts') ?? '')
        .split('\n')
        .filter((l) => l.trim() && !l.endsWith('# jaula'));
      const mine = plan.interfaces.flatMap((i) =>
        [i.address, i.address6]
          .filter((a): a is string => !!a)
          .map((a) => `${a.split('/')[0]}\t${hostname}\t# jaula`),
      );
      put('/etc/hosts', [...hosts, ...mine, ''].join('\n'));
    },
    { shift },
  );
}
