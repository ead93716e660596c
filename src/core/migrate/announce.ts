/**
 * After a move the guest's addresses live behind another port of the network: neighbours (and
 * the switches between) must learn it at once, or they keep sending to the old host until their
 * ARP and forwarding entries age out (minutes). The guest keeps its MACs, so one unsolicited ARP
 * per address, sent from the guest's own network namespace on the interface that holds it,
 * updates both the switches' tables and the neighbours' ARP caches (busybox arping -U, part of
 * busybox-static, which jaula needs anyway). IPv6 neighbours get unsolicited neighbour
 * advertisements from the kernel itself: with the interface's ndisc_notify set, a change of its
 * hardware address (to the one it has: "ip link set dev D address MAC") makes it send one for each
 * of its addresses (valid at once: jaula adds them with nodad), to all nodes, with the override
 * flag (net/ipv6/ndisc.c, NETDEV_CHANGEADDR). No tool beyond iproute2.
 */
import { JaulaError } from '../../common/errors.js';
import type { GuestConfig } from '../../guest/config.js';
import { netnsPath } from '../../network/apply.js';
import { run } from '../../os/spawn.js';

/** The guest's fixed IPv4 addresses and the devices inside it that hold them (its config's). */
function addressesOf(cfg: GuestConfig): [string, string][] {
  return cfg.interfaces
    .map((i, idx): [string, string] => [i.address?.split('/')[0] ?? '', i.name ?? `eth${idx}`])
    .filter(([a]) => /^\d+\.\d+\.\d+\.\d+$/.test(a));
}

/** The devices inside the guest with a fixed IPv6 address (its config's). */
const v6DevicesOf = (cfg: GuestConfig): string[] =>
  cfg.interfaces.flatMap((i, idx) => (i.address6 ? [i.name ?? `eth${idx}`] : []));

/** In the guest's network namespace, for each device: ndisc_notify on, its MAC set to itself. */
const NOTIFY6 =
  'set -e; for d in "$@"; do echo 1 > "/proc/sys/net/ipv6/conf/$d/ndisc_notify"; ' +
  'm=$(ip -br link show dev "$d" | awk \'{print $3}\'); ip link set dev "$d" address "$m"; done';

export async function announceGuest(cfg: GuestConfig): Promise<number> {
  const sends = addressesOf(cfg);
  const v6 = v6DevicesOf(cfg);
  if (!sends.length && !v6.length) return 0;
  const netns = netnsPath(cfg.name);
  const six = v6.length
    ? run(['nsenter', `--net=${netns}`, 'sh', '-c', NOTIFY6, 'sh', ...v6], { timeoutMs: 3000 })
    : undefined;
  const results = await Promise.all(
    sends.map(([addr, dev]) =>
      run(
        ['nsenter', `--net=${netns}`, 'busybox', 'arping', '-U', '-q', '-c', '1', '-w', '1', '-I', dev, addr],
        {
          timeoutMs: 3000,
        },
      ),
    ),
  );
  const failed = results.filter((r) => r.code !== 0 && r.code !== 1);
  const r6 = await six;
  if (r6 && r6.code !== 0) failed.push(r6);
  if (failed.length)
    throw new JaulaError(
      'runtime',
      `Announcing "${cfg.name}"'s addresses failed: ${failed.map((r) => r.stderr.trim()).join('; ')}`,
    );
  return sends.length + v6.length;
}

/**
 * The counterpart at the source, once a frozen guest was killed for a move: its interfaces are
 * set down in its network namespace (which outlives its processes until its stop's clean-up
 * removes it), so that it answers no neighbour (ARP, ICMP) and no switch learns its MACs back
 * at this port while the target starts it. False when that could not be done.
 */
export async function silenceGuest(cfg: GuestConfig): Promise<boolean> {
  const names = cfg.interfaces.map((i, idx) => i.name ?? `eth${idx}`);
  if (!names.length) return true;
  const r = await run(['nsenter', `--net=${netnsPath(cfg.name)}`, 'ip', '-batch', '-'], {
    input: names.map((n) => `link set dev ${n} down\n`).join(''),
    timeoutMs: 5000,
  }).catch(() => undefined);
  return r?.code === 0;
}
