/**
 * Commands on another host's guest, from any host of the fleet: a request on this jaulad's unix
 * socket (root's) that names a guest this host does not have, which the fleet says another
 * host owns, goes to that host's jaulad (the remote of its fleet name: jaula remote add) with
 * that remote's token, and its answer comes back as it is: `jaula start web1`, `stop`, `status`,
 * `set`, `snapshot`... work from any host. An attach (exec, enter, console: a WebSocket) is
 * relayed byte for byte. Jobs (a move, a backup) are not forwarded: their events are the other
 * host's; the error says where to run them. Requests that came over TCP are never forwarded
 * (no host relays for another), and nothing is forwarded outside a fleet.
 */
import type * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { JaulaError, messageOf } from '../common/errors.js';
import { fleetEtcd, readFleetConfig } from '../fleet/config.js';
import { ownerOf } from '../fleet/reserve.js';
import { guestExists } from '../guest/store.js';
import { connectPeer, peerOf, peerRequest, type PeerTarget } from '../core/migrate/peer.js';
import { listRemotes } from '../core/migrate/remotes.js';

/** The host that owns guest `name` when it is not here, and its remote (if known): else undefined. */
export async function ownerElsewhere(
  name: string,
): Promise<{ host: string; peer: PeerTarget | undefined } | undefined> {
  if (guestExists(name)) return undefined;
  const fc = readFleetConfig();
  const etcd = fleetEtcd(fc);
  if (!fc || !etcd) return undefined;
  const owner = await ownerOf(etcd, name).catch((e: unknown) => {
    throw new JaulaError(
      'state',
      `Guest "${name}" is not on this host, and the fleet's etcd does not answer to say where it is: ${messageOf(e)}`,
    );
  });
  if (!owner || owner.host === fc.host) return undefined;
  const r = listRemotes().find((x) => x.name === owner.host);
  return { host: owner.host, peer: r ? peerOf(r) : undefined };
}

/** Why a request about another host's guest cannot be forwarded (undefined: it can). */
export function unforwardable(
  name: string,
  o: { host: string; peer: PeerTarget | undefined },
  job: boolean,
): JaulaError | undefined {
  if (!o.peer)
    return new JaulaError(
      'not_found',
      `Guest "${name}" is on host "${o.host}" of the fleet, which this host does not know as a remote: "jaula remote add ${o.host} https://ADDRESS:7443 --token FILE", or run the command there`,
    );
  if (job)
    return new JaulaError(
      'state',
      `Guest "${name}" is on host "${o.host}" of the fleet: run this command there`,
    );
  return undefined;
}

/** The request, as the owner host's jaulad answers it (its errors as they are there). */
export function forwardRequest(
  peer: PeerTarget,
  method: string,
  url: URL,
  body: Record<string, unknown> | undefined,
): Promise<unknown> {
  return peerRequest(peer, method, url.pathname + url.search, body ? { json: body } : undefined);
}

/** Relay an attach (a WebSocket upgrade) to the owner host's jaulad, byte for byte both ways. */
export async function relayUpgrade(
  peer: PeerTarget,
  req: http.IncomingMessage,
  sock: Duplex,
  head: Buffer,
): Promise<void> {
  const { sock: up } = await connectPeer(peer);
  up.setTimeout(0);
  if (sock.destroyed) return void up.destroy(); // (the client left meanwhile)
  const skip = new Set(['host', 'authorization', 'origin', 'cookie']);
  const lines = [
    `GET ${req.url ?? '/'} HTTP/1.1`,
    `Host: ${new URL(peer.url).host}`,
    `Authorization: Bearer ${peer.token}`,
  ];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
    if (!skip.has((req.rawHeaders[i] as string).toLowerCase()))
      lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
  up.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (head.length) up.write(head);
  const end = (): void => {
    up.destroy();
    sock.destroy();
  };
  up.on('error', end).on('close', end);
  sock.on('error', end).on('close', end);
  up.pipe(sock);
  sock.pipe(up);
}
