/**
 * Fleet-wide views that the published records do not hold (jaula ps --fleet, stat --fleet):
 * every host is asked at once, this one in-process, the others through their jaulads, as the
 * remotes of their fleet names (jaula remote add). A host that is not up, not known as a remote
 * or not answering is left out and named with why, never waited for beyond the remote's timeout.
 */
import { JaulaError, messageOf } from '../common/errors.js';
import { readFleetConfig } from '../fleet/config.js';
import { listFleetHosts } from './fleet.js';
import { peerOf, peerRequest } from './migrate/peer.js';
import { listRemotes } from './migrate/remotes.js';

export interface FleetAnswers<T> {
  answers: { host: string; value: T }[];
  missing: { host: string; error: string }[];
}

/** GET `path` of every host of the fleet (`local` for this one), by host name. */
export async function askFleet<T>(path: string, local: () => Promise<T>): Promise<FleetAnswers<T>> {
  const fc = readFleetConfig();
  if (!fc)
    throw new JaulaError('state', 'This host is in no fleet: leave out --fleet, or "jaula fleet join" first');
  const remotes = new Map(listRemotes().map((r) => [r.name, r]));
  const out: FleetAnswers<T> = { answers: [], missing: [] };
  await Promise.all(
    (await listFleetHosts()).map(async (h) => {
      const r = remotes.get(h.host);
      try {
        if (h.host === fc.host) out.answers.push({ host: h.host, value: await local() });
        else if (h.state !== 'up') out.missing.push({ host: h.host, error: `it is ${h.state} in the fleet` });
        else if (!r)
          out.missing.push({
            host: h.host,
            error: `it is not known here as a remote ("jaula remote add ${h.host} https://ADDRESS:7443 --token FILE")`,
          });
        else out.answers.push({ host: h.host, value: await peerRequest<T>(peerOf(r), 'GET', path) });
      } catch (e) {
        out.missing.push({ host: h.host, error: messageOf(e) });
      }
    }),
  );
  out.answers.sort((a, b) => a.host.localeCompare(b.host));
  out.missing.sort((a, b) => a.host.localeCompare(b.host));
  return out;
}
