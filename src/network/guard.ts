/**
 * Keeping guests off the host's own services: jaulad's TCP port is an element of the
 * `daemon_ports` set of jaula's bridge-family firewall table, whose input chain drops packets
 * from a guest's port (a veth on a jaula bridge) to it. So `jaulad --listen 0.0.0.0:PORT` (or
 * any address the guests can route to, such as a bridge's gateway) is not reachable from the
 * guests unless jaulad is started with --allow-guests. The ports are also kept in a file
 * (apply.ts daemonPortsFile), so that tables made again (the first network after the last was
 * deleted, a new boot) hold them from the start. Guests on macvlan or ipvlan devices reach the
 * host only the way other machines of that network do.
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../os/fs.js';
import { paths } from '../os/paths.js';
import { run, runOk } from '../os/spawn.js';
import { daemonPortsFile, ensureNetworks } from './apply.js';
import { DAEMON_GUARD_RULE, tableName } from './firewall.js';

/**
 * The ports guests may not reach are exactly `ports` from now on (jaulad's own, or none when it
 * stops or runs with --allow-guests).
 */
export async function setDaemonPorts(ports: number[]): Promise<void> {
  const t = tableName(paths().instanceTag);
  fs.mkdirSync(dirname(daemonPortsFile()), { recursive: true });
  writeFileAtomic(daemonPortsFile(), ports.map((p) => `${p}\n`).join(''), 0o644, { durable: false });
  const elements = ports.length ? `add element bridge ${t} daemon_ports { ${ports.join(', ')} }\n` : '';
  if (!ports.length) {
    await run(['nft', 'flush', 'set', 'bridge', t, 'daemon_ports']); // no table: nothing to flush
    return;
  }
  await ensureNetworks([]); // jaula's tables (made once per boot, with the ports of the file)
  const set = `flush set bridge ${t} daemon_ports\n${elements}`;
  if ((await run(['nft', '-f', '-'], { input: set })).code === 0) return;
  // Tables made this boot by a jaula without the set: add it and its rule, once.
  await runOk(['nft', '-f', '-'], {
    input: `add set bridge ${t} daemon_ports { type inet_service; }\ninsert rule bridge ${t} input ${DAEMON_GUARD_RULE}\n${elements}`,
    what: `Keeping guests off jaulad's port ${ports.join(', ')} (nft)`,
  });
}

/** Whether guests are kept off `port` now (the element is in the set). */
export async function daemonPortGuarded(port: number): Promise<boolean> {
  const t = tableName(paths().instanceTag);
  const r = await run(['nft', '-j', 'list', 'set', 'bridge', t, 'daemon_ports']);
  if (r.code !== 0) return false;
  const j = JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] };
  const elems = j.nftables.find((x) => x.set)?.set?.elem ?? [];
  return elems.some((e) => e === port);
}
