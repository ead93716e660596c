/**
 * Fleet-wide uniqueness: a guest's name, context, MACs and addresses in fleet networks are
 * reserved in etcd by one transaction that creates every key only if none exists, so two hosts
 * that race for the same one can never both get it: etcd orders the two transactions and the
 * second finds the keys made. The name's key is the guest's owner record (keys.ts).
 */
import { JaulaError } from '../common/errors.js';
import type { Compare, Etcd, Op } from './etcd.js';
import { addrKey, ADDRS, CONTEXTS, contextKey, macKey, nameKey, type OwnerRecord } from './keys.js';

export interface Identity {
  name: string;
  context: number;
  macs: string[];
  /** [network, address] pairs, in fleet networks only. */
  addresses: [string, string][];
}

/** Which of an identity's parts another guest holds, and who. */
export interface Conflict {
  what: 'name' | 'context' | 'mac' | 'address';
  value: string;
  holder: string;
}

function keysOf(id: Identity): { key: string; what: Conflict['what']; value: string }[] {
  return [
    { key: nameKey(id.name), what: 'name', value: id.name },
    { key: contextKey(id.context), what: 'context', value: String(id.context) },
    ...id.macs.map((m) => ({ key: macKey(m), what: 'mac' as const, value: m })),
    ...id.addresses.map(([n, a]) => ({
      key: addrKey(n, a),
      what: 'address' as const,
      value: `${a.replace(/\/\d+$/, '')} in ${n}`,
    })),
  ];
}

/**
 * Reserve every part of the identity for `host` at once, or nothing: the parts other guests
 * hold when it fails (an empty list means it succeeded).
 */
export async function tryReserve(etcd: Etcd, host: string, id: Identity): Promise<Conflict[]> {
  const keys = keysOf(id);
  const owner: OwnerRecord = { host, context: id.context };
  const compare: Compare[] = keys.map((k) => ({ key: k.key, absent: true }));
  const then: Op[] = keys.map((k) => ({
    put: k.key,
    value: k.what === 'name' ? JSON.stringify(owner) : id.name,
  }));
  const r = await etcd.txn(
    compare,
    then,
    keys.map((k) => ({ get: k.key })),
  );
  if (r.succeeded) return [];
  const out: Conflict[] = [];
  keys.forEach((k, i) => {
    const kv = r.found[i]?.[0];
    if (!kv) return;
    const holder =
      k.what === 'name' ? `host ${(JSON.parse(kv.value) as OwnerRecord).host}` : `guest ${kv.value}`;
    out.push({ what: k.what, value: k.value, holder });
  });
  return out;
}

/** What the fleet holds already: contexts (to pick a free one) and addresses of fleet networks. */
export async function fleetTaken(
  etcd: Etcd,
): Promise<{ contexts: Map<number, string>; addresses: Map<string, string> }> {
  const [ctx, addrs] = await Promise.all([etcd.list(CONTEXTS), etcd.list(ADDRS)]);
  return {
    contexts: new Map(ctx.map((kv) => [Number(kv.key.slice(CONTEXTS.length)), kv.value])),
    addresses: new Map(addrs.map((kv) => [kv.key.slice(ADDRS.length), kv.value])),
  };
}

/** A guest's owner in the fleet (its name's record), or undefined when the fleet has no such guest. */
export async function ownerOf(etcd: Etcd, name: string): Promise<OwnerRecord | undefined> {
  const kv = await etcd.get(nameKey(name));
  return kv ? (JSON.parse(kv.value) as OwnerRecord) : undefined;
}

/**
 * Give a guest to another host (a move's handover): its owner record changes from `from` to
 * `to` in one transaction that compares the old one, so that a guest has one owner at every
 * moment and two hosts can never both take it. Its other reservations name the guest, not the
 * host: they stay. False when `from` no longer owns it.
 */
export async function transferOwner(etcd: Etcd, name: string, from: string, to: string): Promise<boolean> {
  const old = await etcd.get(nameKey(name));
  if (!old || (JSON.parse(old.value) as OwnerRecord).host !== from) return false;
  const next: OwnerRecord = { ...(JSON.parse(old.value) as OwnerRecord), host: to };
  const r = await etcd.txn(
    [{ key: nameKey(name), value: old.value }],
    [{ put: nameKey(name), value: JSON.stringify(next) }],
  );
  return r.succeeded;
}

/** The error for a lost reservation: what is taken, by whom, and what to do. */
export function conflictError(name: string, conflicts: Conflict[]): JaulaError {
  const parts = conflicts.map((c) => `${c.what} ${c.value} (held by ${c.holder})`).join(', ');
  const named = conflicts.find((c) => c.what === 'name');
  return new JaulaError(
    'exists',
    named
      ? `A guest named "${name}" already exists in the fleet, on ${named.holder} ("jaula list --fleet"; choose another name)`
      : `Guest "${name}" cannot have ${parts}: the fleet gave it to another guest (choose another, or omit it to get a free one)`,
    { details: { conflicts } },
  );
}

/**
 * Reserve `id` for `host`, or throw. With `fixedContext` false, a context another host took
 * since it was picked is replaced by the next one free in the fleet (up to a few times).
 */
export async function reserveIdentity(
  etcd: Etcd,
  host: string,
  id: Identity,
  o: { fixedContext: boolean; nextContext?: (taken: Map<number, string>) => number },
): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const conflicts = await tryReserve(etcd, host, id);
    if (!conflicts.length) return id.context;
    const onlyContext = conflicts.every((c) => c.what === 'context');
    if (!onlyContext || o.fixedContext || !o.nextContext || attempt >= 8)
      throw conflictError(id.name, conflicts);
    id.context = o.nextContext((await fleetTaken(etcd)).contexts);
  }
}

/** Give back a guest's reservations (after its delete, or a failed build): only what it holds. */
export async function releaseIdentity(etcd: Etcd, host: string, id: Identity): Promise<void> {
  const keys = keysOf(id);
  const owner = await etcd.get(nameKey(id.name));
  if (owner && (JSON.parse(owner.value) as OwnerRecord).host !== host) return; // not ours to give back
  const ops: Op[] = keys.map((k) => ({ del: k.key }));
  // Each key other than the name is deleted only if it still names this guest.
  for (const k of keys.slice(1)) await etcd.txn([{ key: k.key, value: id.name }], [{ del: k.key }]);
  if (owner) await etcd.txn([{ key: nameKey(id.name), value: owner.value }], [ops[0] as Op]);
}
