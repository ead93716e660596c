import { basename } from 'node:path';
import { JaulaError } from '../../common/errors.js';
import { GuestFs } from '../../os/guestfs.js';
import { HostFiles } from '../../os/hostfiles.js';
import type { GuestConfig, InitStyle } from '../../guest/config.js';
import { importImage } from './archive.js';
import { readLayerMeta } from './layer.js';
import { pullImage } from './pull.js';
import { layerKeys, readImage, type ImageRecord } from './store.js';

/**
 * `jaula build NAME -m oci -- -i REF|FILE`: the guest's root stacks the image's layers (shared,
 * read-only) under its own changes. The image's config becomes the guest's: Entrypoint + Cmd its
 * "cmd" init style's command (jaula-init as PID 1), unless the image is a system with an init of
 * its own (it then boots like a debootstrap guest); Env, WorkingDir, User, StopSignal.
 */
export function parseOciArgs(args: string[]): string {
  if (args[0] !== '-i' || args[1] === undefined || args.length !== 2)
    throw new JaulaError(
      'usage',
      'The oci method takes an image after "--": jaula build NAME -m oci -- -i REF (a stored image, else pulled) or -- -i FILE|DIR (a docker save archive, an oci-archive or an OCI layout directory)',
    );
  return args[1];
}

/** The image a build names: stored, else imported from a file or directory, else pulled. */
export async function imageForBuild(
  arg: string,
  o: { hostFiles?: HostFiles; progress?: (l: string) => void; signal?: AbortSignal },
): Promise<ImageRecord> {
  const hooks = {
    ...(o.progress ? { progress: o.progress } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  };
  if (arg.startsWith('/') || arg.startsWith('.')) {
    const path = (o.hostFiles ?? HostFiles.any).check(
      arg.startsWith('/') ? arg : `${process.cwd()}/${arg}`,
      'image archive or directory',
    );
    const name = `localhost/${
      basename(path)
        .toLowerCase()
        .replace(/\.(tar|tgz|tar\.gz)$/, '')
        .replace(/[^a-z0-9._-]/g, '-')
        .replace(/^[^a-z0-9]+/, '') || 'image'
    }:latest`;
    try {
      return await importImage(path, hooks);
    } catch (e) {
      if (e instanceof JaulaError && e.code === 'usage' && /has no name/.test(e.message))
        return importImage(path, { ...hooks, name });
      throw e;
    }
  }
  return readImage(arg) ?? (await pullImage(arg, hooks));
}

/** Paths where a system image's own init is. */
const INITS = ['/sbin/init', '/lib/systemd/systemd', '/usr/lib/systemd/systemd', '/usr/sbin/init'];

export interface OciSettings {
  layers: string[];
  initstyle: InitStyle;
  cmd: string[];
  env?: string[];
  cwd?: string;
  user?: string;
  stopSignal?: string;
  exposed: string[];
}

/** The guest's settings from the image's config (the user's --initstyle and --cmd win). */
export function ociSettings(rec: ImageRecord, given: { initstyle?: string; cmd?: string[] }): OciSettings {
  const c = rec.config.config ?? {};
  const argv = [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
  const system = argv.length === 0 || (INITS.includes(argv[0] ?? '') && argv.length === 1);
  const initstyle = (given.initstyle ?? (system ? 'plain' : 'cmd')) as InitStyle;
  const s: OciSettings = {
    layers: layerKeys(rec),
    initstyle,
    cmd: given.cmd ?? (initstyle === 'cmd' ? argv : []),
    exposed: Object.keys(c.ExposedPorts ?? {}),
  };
  if (c.Env?.length) s.env = c.Env.filter((e) => /^[^=\0]+=/.test(e));
  if (c.WorkingDir) s.cwd = c.WorkingDir.startsWith('/') ? c.WorkingDir : `/${c.WorkingDir}`;
  if (c.User) s.user = c.User;
  if (c.StopSignal)
    s.stopSignal =
      /^[0-9]+$/.test(c.StopSignal) || c.StopSignal.startsWith('SIG') ? c.StopSignal : `SIG${c.StopSignal}`;
  return s;
}

/** Device nodes are for privileged guests only: refused in an unprivileged guest's layers, the member named. */
export function checkImageDevices(cfg: GuestConfig, rec: ImageRecord): void {
  if (cfg.privileged) return;
  for (const k of layerKeys(rec)) {
    const m = readLayerMeta(k);
    if (m && m.devices > 0)
      throw new JaulaError(
        'invalid',
        `The image "${rec.ref}" is refused for an unprivileged guest: its layer ${k.slice(0, 19)} holds ${m.devices} device node${m.devices === 1 ? '' : 's'} ("${m.firstDevice ?? '?'}"; only privileged guests may have device nodes): build it with --privileged, or use an image without them`,
      );
  }
}

const MAX_DB = 4 << 20;

function dbEntries(g: GuestFs, path: string): string[][] {
  const st = g.stat(path);
  if (!st?.isFile() || st.size > MAX_DB) return [];
  return (g.readText(path) ?? '').split('\n').map((l) => l.split(':'));
}

/** The image's User ("name", "uid", "name:group", "uid:gid") as UID:GID, from the image's own /etc/passwd and /etc/group. */
export function resolveUser(rootfs: string, user: string, ref: string): string {
  return GuestFs.with(rootfs, (g) => {
    const [u = '', grp] = user.split(':');
    const passwd = dbEntries(g, '/etc/passwd');
    const pw =
      passwd.find((e) => e[0] === u) ?? (/^[0-9]+$/.test(u) ? passwd.find((e) => e[2] === u) : undefined);
    const uid = /^[0-9]+$/.test(u) ? u : pw?.[2];
    if (uid === undefined)
      throw new JaulaError(
        'invalid',
        `The image "${ref}" runs as user "${u}", which its /etc/passwd does not have`,
      );
    let gid = pw?.[3] ?? '0';
    if (grp !== undefined) {
      const gr = dbEntries(g, '/etc/group').find((e) => e[0] === grp);
      gid = /^[0-9]+$/.test(grp) ? grp : (gr?.[2] ?? '');
      if (!/^[0-9]+$/.test(gid))
        throw new JaulaError(
          'invalid',
          `The image "${ref}" runs as group "${grp}", which its /etc/group does not have`,
        );
    }
    return `${uid}:${gid}`;
  });
}

/** A system image must have its init: else the guest could not boot. */
export function checkInit(rootfs: string, s: OciSettings, ref: string): void {
  if (s.initstyle === 'cmd') return;
  const found = GuestFs.with(rootfs, (g) => INITS.some((p) => g.stat(p)?.isFile()));
  if (!found && s.initstyle === 'plain')
    throw new JaulaError(
      'invalid',
      `The image "${ref}" has no command (Entrypoint, Cmd) and no init (/sbin/init): give one with --initstyle cmd --cmd "CMD ARGS"`,
    );
}

/**
 * What the build does with the image once the guest's root is mounted: its init checked, its
 * User resolved in its own /etc/passwd, the config saved; its ports suggested as --forward.
 */
export function finishOciGuest(
  cfg: GuestConfig,
  rootfs: string,
  rec: ImageRecord,
  s: OciSettings,
  progress: (l: string) => void,
): boolean {
  checkInit(rootfs, s, rec.ref);
  let changed = false;
  if (s.user !== undefined && s.initstyle === 'cmd') {
    const u = resolveUser(rootfs, s.user, rec.ref);
    if (u !== '0:0') {
      cfg.user = u;
      changed = true;
    }
  }
  if (s.exposed.length)
    progress(
      `The image exposes ${s.exposed.join(', ')}: forward ${s.exposed.length === 1 ? 'it' : 'them'} from the host with ${s.exposed.map((p) => `--forward HOSTPORT:${p}`).join(' ')} (jaula build, or jaula set ${cfg.name})`,
    );
  progress(
    s.initstyle === 'cmd'
      ? `The image's command: ${JSON.stringify(cfg.cmd)}${cfg.user ? ` as ${cfg.user}` : ''} (jaula-init as PID 1)`
      : 'The image is a system with its own init: it boots like a debootstrap guest',
  );
  return changed;
}

/** The part of a new guest's config the image gives. */
export function ociConfigPart(s: OciSettings): Partial<GuestConfig> {
  return {
    initstyle: s.initstyle,
    cmd: s.cmd,
    ...(s.env ? { env: s.env } : {}),
    ...(s.cwd ? { cwd: s.cwd } : {}),
    ...(s.stopSignal ? { stopSignal: s.stopSignal } : {}),
  };
}
