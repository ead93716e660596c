/**
 * fstab bind mounts into unprivileged guests, idmapped (what Incus calls `shift`): a host
 * directory is seen inside the guest with the host's owners (the host's root is the guest's
 * root), so the guest's root may write where the host's root may, and files it makes there
 * belong on disk to the host's IDs 0..65535. jaula makes the idmapped view itself (the runtime
 * only binds it): runc and crun alike, one helper process per start. A line with `noidmap` is
 * bound as it is (files of host IDs outside the guest's range show as 65534, "nobody").
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError, messageOf } from '../common/errors.js';
import { unmountEntries } from '../os/mounts.js';
import { paths } from '../os/paths.js';
import type { IdRange } from '../runtime/idmap.js';
import { guestRunDir } from '../storage/barrier.js';
import { idmapMounts } from '../storage/idmapped.js';
import { isBind, type FstabEntry } from '../guest/fstab.js';

/** Where a running guest's idmapped bind sources are mounted (one entry per fstab line). */
export function bindsPath(name: string): string {
  return join(paths().guestRun(name), 'binds');
}

/** Whether jaula idmaps this fstab line for a guest with this ID range. */
export function idmapsBind(e: FstabEntry, idmap: IdRange | undefined): boolean {
  return idmap !== undefined && isBind(e) && !e.options.includes('noidmap');
}

/**
 * Mount the idmapped views of the guest's bind sources; returns the fstab with those views as
 * sources. Undone by unmountBinds (registered by the caller).
 */
export async function mountBinds(
  name: string,
  fstab: FstabEntry[],
  idmap: IdRange | undefined,
): Promise<FstabEntry[]> {
  if (!idmap || !fstab.some((e) => idmapsBind(e, idmap))) return fstab;
  const dir = bindsPath(name);
  unmountBinds(name); // (a crash's leftovers)
  guestRunDir(name, idmap.hostId); // (the barrier: 0710 with the group of the guest's root, whose runtime binds these)
  fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
  const plain: [string, string][] = [];
  const recursive: [string, string][] = [];
  const out = fstab.map((e, i) => {
    if (!idmapsBind(e, idmap)) return e;
    const at = join(dir, String(i));
    if (!fs.existsSync(e.source))
      throw new JaulaError(
        'not_found',
        `Guest "${name}": the bind mount source "${e.source}" (for ${e.target}) does not exist on the host; create it or fix ${join(paths().guestConf(name), 'fstab')}`,
      );
    // The view's mount point is of the source's kind: a file is bound on a file.
    if (fs.statSync(e.source).isDirectory()) fs.mkdirSync(at, { mode: 0o711 });
    else fs.writeFileSync(at, '', { mode: 0o600 });
    (e.options.includes('rbind') ? recursive : plain).push([e.source, at]);
    return { ...e, source: at };
  });
  try {
    const what = `Guest "${name}": idmapping its fstab bind mounts`;
    if (plain.length) await idmapMounts(plain, idmap, what, { keepFlags: true });
    if (recursive.length) await idmapMounts(recursive, idmap, what, { recursive: true, keepFlags: true });
  } catch (e) {
    unmountBinds(name);
    throw new JaulaError(
      'runtime',
      `${messageOf(e)}; to bind a directory as it is (its files then show as owned by "nobody" unless chowned to the guest's IDs), add "noidmap" to its options in ${join(paths().guestConf(name), 'fstab')}`,
      { cause: e },
    );
  }
  return out;
}

/** Unmount the guest's idmapped bind views and remove their mount points. Idempotent. */
export function unmountBinds(name: string): void {
  const dir = bindsPath(name);
  if (!fs.existsSync(dir)) return;
  // Each entry's mounts, then dir's: past this, none of them is a mount point (or it threw).
  unmountEntries(dir);
  for (const f of fs.readdirSync(dir))
    try {
      if (fs.lstatSync(join(dir, f)).isDirectory()) fs.rmdirSync(join(dir, f));
      else fs.unlinkSync(join(dir, f));
    } catch {
      /* reported by the leftovers check */
    }
  try {
    fs.rmdirSync(dir);
  } catch {
    /* not empty */
  }
}
