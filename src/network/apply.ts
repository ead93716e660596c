/**
 * Bringing a guest's network up and down on the host. The guest gets a network namespace of its
 * own, bound to a file so it exists before the guest's init runs (services find their addresses
 * at boot) and so the runtime only joins it. Bridged veths, their addresses and routes are made
 * over rtnetlink in this process (native/netlink.c); other devices by two `ip -batch` runs (one
 * inside the namespace, one on the host); shaping by one `tc -batch`, the firewall by one
 * `nft -f` (shared between concurrent starts and stops): no per-command spawn.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { readFileOr, writeFileAtomic } from '../os/fs.js';
import { withLock } from '../os/lock.js';
import { writeGuestNetFiles } from './guestfiles.js';
import { nativeOp } from '../os/native.js';
import { helperBin, paths } from '../os/paths.js';
import { bootId } from '../os/proc.js';
import { run, runOk } from '../os/spawn.js';
import { unmount } from '../os/mounts.js';
import { nftApply } from './nftbatch.js';
import { hostEndsGone, lazyHostEnds, leftovers } from './hostends.js';
import { trace } from '../os/trace.js';
import { assignInterfaces, hostAddresses, hostDevices, hostDns } from './assign.js';
import type { GuestNetConfig } from './guestnet.js';
import type { MountedRoot } from '../storage/driver.js';
import { DEFAULT_NETWORK, listNetworks, networkFor, type NetworkConfig } from './networks.js';
import {
  bridgeBatch,
  guestBatch,
  hostDownBatch,
  hostPostBatch,
  hostPreBatch,
  planNetwork,
  tcBatch,
  vethFields,
  type NetPlan,
} from './plan.js';
import { firewallDefinition, firewallElements, natElement, tableName } from './firewall.js';

export function netnsDir(): string {
  return join(paths().run, 'netns');
}

export function netnsPath(guest: string): string {
  return join(netnsDir(), guest);
}

function ipBatch(batch: string, what: string, ns?: string): Promise<unknown> {
  const argv = ns ? ['nsenter', `--net=${ns}`, 'ip', '-batch', '-'] : ['ip', '-batch', '-'];
  return runOk(argv, { input: batch, what, timeoutMs: 30_000 });
}

function explainIpError(e: unknown, plan: NetPlan): never {
  const msg = e instanceof Error ? e.message : String(e);
  if (/Unknown device type/.test(msg) && plan.interfaces.some((i) => i.mode === 'ipvlan'))
    throw new JaulaError(
      'unsupported',
      `This kernel has no ipvlan support (CONFIG_IPVLAN): use mode=macvlan or bridge mode`,
      { cause: e },
    );
  if (/File exists/.test(msg))
    throw new JaulaError(
      'exists',
      `${msg} (a device of that name exists: a leftover of a crash? "jaula stop" or "jaula network gc" removes it)`,
      { cause: e },
    );
  throw e;
}

/**
 * The host's TCP ports guests may not reach (jaulad's, network/guard.ts), kept in a file so that
 * the firewall keeps them whenever its tables are made again.
 */
export function daemonPortsFile(): string {
  return join(paths().run, 'net', `daemon-ports.${paths().instanceTag || 'system'}`);
}

export function daemonPorts(): number[] {
  return readFileOr(daemonPortsFile(), '')
    .split('\n')
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0 && n < 65536);
}

/**
 * Create a network's bridge, and jaula's firewall tables once per boot. Idempotent, and safe
 * under any concurrency: starts of several guests (in one process or many) may find the same
 * bridge missing at once, so making it (and the tables, which are defined anew, dropping the
 * guests' elements) happens under the instance's network lock, after a second look. Only the
 * common case, everything there already, takes no lock.
 */
export async function ensureNetworks(nets: NetworkConfig[]): Promise<void> {
  const tag = paths().instanceTag;
  const marker = join(paths().run, 'net', `firewall.${tag || 'system'}`);
  const ready = (): boolean =>
    readFileOr(marker, '') === bootId() && nets.every((n) => fs.existsSync(`/sys/class/net/${n.bridge}`));
  if (!ready())
    await withLock(paths().locks, 'network', "jaula's networks", async () => {
      let nft = '';
      if (readFileOr(marker, '') !== bootId()) nft += firewallDefinition(tag, daemonPorts());
      for (const n of nets) if (!fs.existsSync(`/sys/class/net/${n.bridge}`)) await createBridge(n);
      if (nft) {
        await runOk(['nft', '-f', '-'], { input: nft, what: "Setting up jaula's firewall (nft)" });
        fs.mkdirSync(join(paths().run, 'net'), { recursive: true });
        writeFileAtomic(marker, bootId(), 0o644, { durable: false });
      }
    });
}

/**
 * NAT for each network that has it, as nft input (idempotent: adding an element that is there
 * changes nothing); forwarding on if any has.
 */
function natElements(nets: NetworkConfig[]): string {
  let nat = '';
  for (const n of nets)
    if (n.nat) {
      nat += natElement(n, paths().instanceTag);
      if (readFileOr('/proc/sys/net/ipv4/ip_forward', '0').trim() !== '1')
        fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
    }
  return nat;
}

/**
 * Make a network's bridge. Another program may have made it meanwhile (a jaula of another
 * version, or the administrator): a bridge of that name is taken as it is, given the gateway
 * address and brought up; a device of that name that is not a bridge is an error.
 */
async function createBridge(n: NetworkConfig): Promise<void> {
  const what = `Creating the bridge "${n.bridge}" of network "${n.name}"`;
  try {
    await ipBatch(bridgeBatch(n), what);
  } catch (e) {
    if (!fs.existsSync(`/sys/class/net/${n.bridge}`)) throw e;
    if (!fs.existsSync(`/sys/class/net/${n.bridge}/bridge`))
      throw new JaulaError(
        'exists',
        `The host has a device named "${n.bridge}" that is not a bridge: network "${n.name}" needs that name for its bridge (remove the device, or give the network another bridge)`,
        { cause: e },
      );
    await ipBatch(bridgeBatch(n, { exists: true }), what);
  }
}

export function needsForwarding(plan: NetPlan): boolean {
  return plan.forwards.length > 0;
}

/** The plan for a guest as configured now (addresses and MACs assigned at build/set). */
export function guestPlan(g: GuestNetConfig, all: GuestNetConfig[]): NetPlan {
  const resolved = assignInterfaces(g, all);
  const nets = new Map<string, NetworkConfig>();
  for (const i of resolved.interfaces) {
    const n = i.dev ? networkFor(i.dev) : undefined;
    if (n) nets.set(n.name, n);
  }
  return planNetwork({
    name: g.name,
    context: g.context,
    interfaces: resolved.interfaces,
    forwards: resolved.forwards,
    networks: nets,
    hostDevices: hostDevices(resolved.interfaces.map((i) => i.dev ?? DEFAULT_NETWORK)),
    tag: paths().instanceTag,
    hostDns: hostDns(),
  });
}

/**
 * Bring the guest's network up; returns the namespace path for the runtime. The guest's files
 * (resolv.conf, hosts) are written last, into `root` once it is mounted: the start mounts it
 * meanwhile. On failure everything made is removed before the error is thrown.
 */
export async function networkUp(
  g: GuestNetConfig,
  all: GuestNetConfig[],
  root: MountedRoot | Promise<MountedRoot>,
  opts: { userns?: string } = {},
): Promise<string> {
  const plan = guestPlan(g, all);
  if (leftovers(netnsPath(g.name), plan)) await networkDown(g, plan); // of a crash
  trace('net: planned');
  const ns = netnsPath(g.name);
  try {
    // (the networks' NAT goes in the one nft transaction below, with the guest's elements)
    if (plan.networks.length) await ensureNetworks(plan.networks);
    trace('net: bridges and firewall ensured');
    fs.mkdirSync(netnsDir(), { recursive: true, mode: 0o711 });
    // An unprivileged guest's namespace belongs to its user namespace; the gids that may ping
    // (ICMP echo sockets) are read in the writer's user namespace: all the guest's, or the host's.
    await nativeOp("Creating the guest's network namespace", (n) =>
      n.nsCreate(null, 0, 0, opts.userns ?? null, ns, 0, opts.userns ? 65535 : 2147483647),
    );
    trace('net: namespace made');
    if (plan.interfaces.length === 0) return ns;
    const veths = vethFields(plan);
    if (veths) {
      // Bridged veths: over rtnetlink in this process (native/netlink.c), no ip program.
      await nativeOp("Configuring the guest's interfaces", (n) => n.netVeths(ns, veths)).catch((e: unknown) =>
        explainIpError(e, plan),
      );
      return await finishUp(g, plan, root, ns);
    }
    const pre = hostPreBatch(plan);
    if (pre) {
      await ipBatch(pre, "Creating the guest's host-side devices").catch((e: unknown) =>
        explainIpError(e, plan),
      );
      for (const i of plan.interfaces)
        if (i.tmpIf)
          await runOk([helperBin, 'netns-move', ns, i.tmpIf, i.name], {
            what: `Moving ${i.tmpIf} into the guest`,
          });
    }
    await ipBatch(guestBatch(plan, process.pid), "Configuring the guest's interfaces", ns).catch(
      (e: unknown) => explainIpError(e, plan),
    );
    trace('net: guest side');
    const post = hostPostBatch(plan);
    if (post) await ipBatch(post, 'Attaching the guest to its bridges and routes');
    return await finishUp(g, plan, root, ns);
  } catch (e) {
    await networkDown(g, plan);
    throw e;
  }
}

/** The rest of networkUp once the devices are made: shaping, firewall, the guest's files. */
async function finishUp(
  g: GuestNetConfig,
  plan: NetPlan,
  root: MountedRoot | Promise<MountedRoot>,
  ns: string,
): Promise<string> {
  await hostSideDone(plan);
  await firewallAdd(plan);
  const { hostView, hostShift } = await root;
  writeGuestNetFiles(hostView, g, plan, hostShift);
  trace('net: up');
  return ns;
}

/** The host side once the guest's host ends exist: sysctls of routed ends and forwards, shaping. */
async function hostSideDone(plan: NetPlan): Promise<void> {
  routedSysctls(plan);
  if (plan.forwards.length) allowLoopbackForwards(plan);
  trace('net: host side');
  const tc = tcBatch(plan);
  if (tc) await runOk(['tc', '-batch', '-'], { input: tc, what: 'Setting bandwidth limits (tc)' });
}

/** The guest's elements in jaula's firewall (and its networks' NAT), in one nft transaction. */
async function firewallAdd(plan: NetPlan): Promise<void> {
  const fw = natElements(plan.networks) + firewallElements(plan, paths().instanceTag, 'add');
  if (fw) await nftApply(fw, "Adding the guest to jaula's firewall (nft)");
  trace('net: firewall');
  if (plan.forwards.length && readFileOr('/proc/sys/net/ipv4/ip_forward', '0').trim() !== '1')
    fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
}

/**
 * A live move's restore (core/migrate/live.ts): CRIU makes the guest's network namespace (inside
 * the user namespace it makes), so jaula cannot make the devices beforehand. This makes what
 * lives on the host (bridges, firewall elements) and returns the two ip batches that CRIU's
 * action script runs: `guest` inside the new namespace at "setup-namespaces" (the veths with
 * the guest's MACs and addresses, their host ends moved here, left down), `host` at
 * "network-unlock" (the host ends on their bridges, up). `finish` does the rest once the guest
 * runs (shaping, sysctls). The undo (networkDown) is the caller's.
 */
export async function networkForRestore(
  g: GuestNetConfig,
  all: GuestNetConfig[],
): Promise<{ guest: string; host: string; finish: () => Promise<void> }> {
  const plan = guestPlan(g, all);
  const odd = plan.interfaces.find((i) => i.mode !== 'bridge' && i.mode !== 'routed');
  if (odd)
    throw new JaulaError(
      'unsupported',
      `Guest "${g.name}" has a ${odd.mode} interface (${odd.name}): live moves re-plumb bridged and routed veths only; move it with --mode sync`,
    );
  if (leftovers(netnsPath(g.name), plan)) await networkDown(g, plan);
  if (plan.networks.length) await ensureNetworks(plan.networks);
  await firewallAdd(plan);
  fs.mkdirSync(netnsDir(), { recursive: true, mode: 0o711 });
  return {
    guest: `link set lo up\n${plan.interfaces.length ? guestBatch(plan, process.pid) : ''}`,
    host: hostPostBatch(plan),
    finish: () => hostSideDone(plan),
  };
}

function sysctl(key: string, value: string): void {
  const f = `/proc/sys/net/ipv4/${key}`;
  if (readFileOr(f, value).trim() !== value) fs.writeFileSync(f, value);
}

/**
 * A routed guest's host end: strict reverse-path filtering (the guest sends only from the
 * addresses routed to it), proxy ARP (the neighbours of its prefix are reached through the
 * host), and forwarding, so that the host device's network reaches it.
 */
function routedSysctls(plan: NetPlan): void {
  for (const i of plan.interfaces) {
    if (i.mode !== 'routed') continue;
    sysctl(`conf/${i.hostIf}/rp_filter`, '1');
    sysctl(`conf/${i.hostIf}/proxy_arp`, '1');
    sysctl(`neigh/${i.hostIf}/proxy_delay`, '0'); // (answered at once, not after up to 0.8 s)
    sysctl('ip_forward', '1');
  }
}

/**
 * Forwards answer on the host's loopback: the bridges of jaula networks the guest is on, and
 * its routed veths, route packets from 127.0.0.0/8 (masqueraded on their way out, see
 * firewallDefinition).
 */
function allowLoopbackForwards(plan: NetPlan): void {
  for (const n of plan.networks) sysctl(`conf/${n.bridge}/route_localnet`, '1');
  for (const i of plan.interfaces) if (i.mode === 'routed') sysctl(`conf/${i.hostIf}/route_localnet`, '1');
}

/** Remove everything networkUp made; idempotent and quiet about what is already gone. */
export async function networkDown(g: GuestNetConfig, plan?: NetPlan): Promise<void> {
  const ns = netnsPath(g.name);
  let p = plan;
  if (!p) {
    try {
      p = guestPlan(g, []);
    } catch {
      p = undefined;
    }
  }
  let lazy: string[] = [];
  if (p) {
    // A bridged veth goes with the guest's namespace (the kernel deletes both ends when it is
    // destroyed, many namespaces' devices at once): deleting it here took an RTNL-serialised
    // grace period per guest (10-30 ms each, one after another in a bulk stop). The others
    // (routed ends with their proxy ARP entries, shaping's ifb, macvlan/ipvlan) go here.
    lazy = fs.existsSync(ns) ? lazyHostEnds(p) : [];
    const down = hostDownBatch(p, lazy);
    const existing = p.interfaces.some(
      (i) =>
        i.mode === 'routed' ||
        [i.hostIf, i.ifb, i.tmpIf].some(
          (d) => d && !lazy.includes(d) && fs.existsSync(`/sys/class/net/${d}`),
        ),
    );
    if (existing && down) await run(['ip', '-force', '-batch', '-'], { input: down });
    const fw = firewallElements(p, paths().instanceTag, 'delete');
    // Added, then deleted, in one transaction: it succeeds whether the elements are there or
    // not (a crash, or a stopped guest looked at by jaulad's reconcile).
    const sure = fw && firewallElements(p, paths().instanceTag, 'add') + fw;
    if (sure)
      await nftApply(sure, "Removing the guest from jaula's firewall (nft)").catch(async () => {
        // (A port forwarded meanwhile to another guest, whose element the add cannot replace:)
        // delete one by one, ignoring the absent ones.
        for (const line of fw.split('\n').filter(Boolean)) await run(['nft', line]);
      });
  }
  if (fs.existsSync(ns)) {
    unmount(ns);
    fs.rmSync(ns, { force: true });
  }
  if (lazy.length) await hostEndsGone(lazy);
}

/** Remove this instance's firewall tables (when its last network goes). */
export async function removeFirewall(): Promise<void> {
  const tag = paths().instanceTag;
  for (const fam of ['bridge', 'ip']) await run(['nft', 'delete', 'table', fam, tableName(tag)]);
  fs.rmSync(join(paths().run, 'net', `firewall.${tag || 'system'}`), { force: true });
}

/** Networks' bridges that exist, for listings. */
export function bridgeExists(n: NetworkConfig): boolean {
  return fs.existsSync(`/sys/class/net/${n.bridge}`);
}

/** Remove a network's bridge (no guest may use it). */
export async function removeBridge(n: NetworkConfig): Promise<void> {
  if (bridgeExists(n))
    await runOk(['ip', 'link', 'del', n.bridge], { what: `Removing the bridge "${n.bridge}"` });
  if (n.nat)
    await run([
      'nft',
      `delete element ip ${paths().instanceTag ? `jaula_${paths().instanceTag}` : 'jaula'} nat { ${natElement(n, paths().instanceTag).match(/\{ (.*) \}/)?.[1] ?? ''} }`,
    ]);
}

export function knownNetworks(): NetworkConfig[] {
  return listNetworks();
}

export { hostAddresses };
