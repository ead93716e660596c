/**
 * After a move the guest's addresses live behind another port of the network: neighbours (and
 * the switches between) must learn it at once, or they keep sending to the old host until their
 * ARP and forwarding entries age out (minutes). The guest keeps its MACs, so one unsolicited ARP
 * per address, sent from the guest's own network namespace on the interface that holds it,
 * updates both the switches' tables and the neighbours' ARP caches (busybox arping -U, part of
 * busybox-static, which jaula needs anyway). IPv6 neighbours are not announced yet (an unsolicited
 * NA needs a tool or the native helper): they follow at their next neighbour discovery.
 */
import { JaulaError } from '../../common/errors.js';
import type { GuestConfig } from '../../guest/config.js';
import { paths } from '../../os/paths.js';
import { run } from '../../os/spawn.js';
import { join } from 'node:path';

/** The guest's IPv4 addresses per device, inside its netns (`ip -o -4 addr`). */
async function devicesOf(netns: string): Promise<Map<string, string>> {
  const r = await run(['nsenter', `--net=${netns}`, 'ip', '-o', '-4', 'addr', 'show'], { timeoutMs: 5000 });
  const m = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const f = /^\d+:\s+(\S+)\s+inet\s+([\d.]+)\//.exec(line);
    if (f?.[1] && f[2] && f[1] !== 'lo') m.set(f[2], f[1].replace(/@.*$/, ''));
  }
  return m;
}

export async function announceGuest(cfg: GuestConfig): Promise<number> {
  const netns = join(paths().run, 'netns', cfg.name);
  const wanted = new Set(
    cfg.interfaces.map((i) => i.address?.split('/')[0]).filter((a): a is string => !!a && a !== 'auto'),
  );
  if (!wanted.size) return 0;
  const devs = await devicesOf(netns);
  const sends = [...devs].filter(([a]) => wanted.has(a));
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
  if (failed.length)
    throw new JaulaError(
      'runtime',
      `Announcing "${cfg.name}"'s addresses failed: ${failed.map((r) => r.stderr.trim()).join('; ')}`,
    );
  return sends.length;
}
