import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { cidrContains, parseCidrText } from '../common/ip.js';
import { validateName } from '../common/names.js';
import type { InterfaceSpec } from '../guest/ifspec.js';
import { networkFor } from '../network/networks.js';
import { copyTree } from '../os/copy.js';
import { paths } from '../os/paths.js';
import { trace } from '../os/trace.js';
import { adaptTree } from './adapt.js';
import { hostnameFor, reserveGuest } from './build.js';
import { validateConfig, type GuestConfig } from '../guest/config.js';
import { newIdentity } from './identity.js';
import { guestLog } from '../guest/log.js';
import { Reverter } from './reverter.js';
import { withStoppedGuest } from './running.js';
import { BUILDING_MARK, loadConfig } from '../guest/store.js';

export interface CloneOptions {
  hostname?: string;
  context?: number;
  /** Replace the interfaces (else each is renewed: new MAC, a new address from its pool). */
  interfaces?: InterfaceSpec[];
  onProgress?: (line: string) => void;
}

const ip = (cidr: string): string => cidr.split('/')[0] as string;

/**
 * The clone's interfaces: new MACs (assigned at reservation), and addresses from the pool of
 * the same jaula network ("auto"). An address outside a jaula network's pool (macvlan, a host
 * bridge) cannot be renewed: the clone needs its own, given with --interface.
 */
export function renewInterfaces(src: GuestConfig): InterfaceSpec[] {
  return src.interfaces.map((i0) => {
    const i: InterfaceSpec = { ...i0 };
    delete i.mac;
    const net = i.mode === 'macvlan' || i.mode === 'ipvlan' || !i.dev ? undefined : networkFor(i.dev);
    for (const [key, subnet] of [
      ['address', net?.subnet],
      ['address6', net?.subnet6],
    ] as const) {
      const a = i[key];
      if (a === undefined || a === 'auto') continue;
      const c = subnet ? parseCidrText(subnet) : undefined;
      if (!c || !cidrContains(c, ip(a)))
        throw new JaulaError(
          'invalid',
          `Guest "${src.name}" has the static address ${a} on ${i.name ?? 'an interface'} (${i.dev ?? '?'}), outside any jaula network's pool, so the clone cannot get a new one by itself: give the clone its interfaces with --interface SPEC (or none with --no-interfaces)`,
        );
      i[key] = 'auto';
    }
    return i;
  });
}

/**
 * Clone a stopped guest: the same files (copied cheaply where the storage driver can) under a
 * new identity: the next free context, hostname DST, new MACs and addresses, a new machine-id
 * and new SSH host keys. Port forwards are not copied (the host ports are the source's).
 */
export async function cloneGuest(
  srcName: string,
  dstName: string,
  o: CloneOptions = {},
): Promise<GuestConfig> {
  validateName(dstName);
  const progress = o.onProgress ?? (() => {});
  return withStoppedGuest(
    srcName,
    'so that its files do not change while they are copied',
    async (src, driver) => {
      const hostname = hostnameFor(dstName, o.hostname);
      const dst: GuestConfig = validateConfig({
        ...src,
        name: dstName,
        context: o.context ?? src.context,
        hostname,
        interfaces: o.interfaces ?? renewInterfaces(src),
        forwards: [],
        storage: { ...src.storage, ...(src.storage.layers ? { layers: [...src.storage.layers] } : {}) },
        build: { method: 'clone', args: [srcName], created: new Date().toISOString() },
      });
      const rev = new Reverter();
      try {
        await reserveGuest(dst, rev, o.context !== undefined);
        trace('clone: reserved');
        rev.add('remove the clone data', () => driver.destroy(dstName));
        progress(
          `Cloning guest "${srcName}" to "${dstName}" (context ${dst.context}) on ${driver.info.name} storage${driver.info.cheapClone ? '' : ' (a full copy)'}`,
        );
        await driver.mount(src);
        try {
          await driver.clone(src, dst, progress);
        } finally {
          await driver.unmount(src);
        }
        trace('clone: copied');
        const root = (await driver.mount(dst)).hostView;
        rev.add('unmount the clone', () => driver.unmount(dst));
        const changes = [...adaptTree(root, { hostname }), ...(await newIdentity(root, hostname))];
        await driver.unmount(dst);
        trace('clone: adapted');
        for (const c of changes) guestLog(dstName, `clone: ${c}`);
        // Its mounts and hooks are the source's.
        const from = paths().guestConf(srcName);
        const to = paths().guestConf(dstName);
        if (fs.existsSync(join(from, 'fstab'))) fs.copyFileSync(join(from, 'fstab'), join(to, 'fstab'));
        fs.mkdirSync(join(to, 'hooks'), { recursive: true });
        if (fs.existsSync(join(from, 'hooks'))) await copyTree(join(from, 'hooks'), join(to, 'hooks'));
        fs.rmSync(join(to, BUILDING_MARK));
        trace('clone: complete');
        guestLog(dstName, `cloned from "${srcName}", context ${dst.context}`);
        rev.success();
        return loadConfig(dstName);
      } catch (e) {
        return rev.fail(e);
      }
    },
  );
}
