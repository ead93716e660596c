/**
 * An etcd v3 client over etcd's JSON gateway (`/v3/kv/*`, `/v3/lease/*`, `/v3/watch`) over
 * node:http: no dependency, kept-alive connections to each endpoint. Keys and values
 * are base64 on the wire; this module speaks strings. docs/adr/0009-fleet-on-etcd.md says why
 * this and not the npm `etcd3` package or gRPC by hand (measured there).
 *
 * Every request goes to the endpoint that answered last; one that fails or times out moves on
 * to the next, so a dead member costs one timeout, not the fleet. An etcd error (no quorum,
 * a lease not found) comes back as a JaulaError that says which endpoint and what to do.
 */
import type * as Http from 'node:http';
import { JaulaError } from '../common/errors.js';

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  lease: string;
}

/** One comparison of a transaction: the key must not exist, or must hold a value. */
export type Compare =
  { key: string; absent: true } | { key: string; present: true } | { key: string; value: string };

/** One operation of a transaction's branch. */
export type Op =
  | { put: string; value: string; lease?: string }
  | { del: string; prefix?: boolean }
  | { get: string; prefix?: boolean };

export interface TxnResult {
  succeeded: boolean;
  /** What each `get` of the branch that ran found, in order (empty lists for put and del). */
  found: KeyValue[][];
}

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  value: string;
}

export interface EtcdOptions {
  endpoints: string[];
  /** Per request (ms); a member that does not answer in time is skipped. */
  timeoutMs?: number;
}

const enc = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const dec = (s: string | undefined): string => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

/** The key just after every key that starts with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): string {
  const b = Buffer.from(prefix, 'utf8');
  for (let i = b.length - 1; i >= 0; i--) {
    if ((b[i] as number) < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i] = (out[i] as number) + 1;
      return out.toString('base64');
    }
  }
  return enc('\0');
}

interface RawKv {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  lease?: string;
}

function kvOf(r: RawKv): KeyValue {
  return {
    key: dec(r.key),
    value: dec(r.value),
    createRevision: Number(r.create_revision ?? 0),
    modRevision: Number(r.mod_revision ?? 0),
    lease: r.lease ?? '0',
  };
}

function rangeBody(key: string, prefix: boolean, serializable = false): Record<string, unknown> {
  return {
    key: enc(key),
    ...(prefix ? { range_end: prefixEnd(key) } : {}),
    ...(serializable ? { serializable: true } : {}),
  };
}

function opBody(op: Op): Record<string, unknown> {
  if ('put' in op)
    return {
      request_put: { key: enc(op.put), value: enc(op.value), ...(op.lease ? { lease: op.lease } : {}) },
    };
  if ('del' in op) return { request_delete_range: rangeBody(op.del, op.prefix === true) };
  return { request_range: rangeBody(op.get, op.prefix === true) };
}

function compareBody(c: Compare): Record<string, unknown> {
  if ('absent' in c) return { key: enc(c.key), target: 'CREATE', result: 'EQUAL', create_revision: '0' };
  if ('present' in c) return { key: enc(c.key), target: 'CREATE', result: 'GREATER', create_revision: '0' };
  return { key: enc(c.key), target: 'VALUE', result: 'EQUAL', value: enc(c.value) };
}

export class Etcd {
  readonly endpoints: string[];
  private current = 0;
  private readonly timeoutMs: number;
  /**
   * node:http and node:https with a kept-alive agent each, loaded at the first request: every
   * `jaula start` reaches this module (fleet-guard.ts), and loading https (tls, crypto) before
   * knowing whether the host is in a fleet at all cost each start outside one.
   */
  private readonly clients = new Map<string, Promise<{ request: typeof Http.request; agent: Http.Agent }>>();

  constructor(o: EtcdOptions) {
    if (!o.endpoints.length)
      throw new JaulaError('usage', 'No etcd endpoint given: use --endpoints URL[,URL...]');
    this.endpoints = o.endpoints.map((e) => e.replace(/\/+$/, ''));
    this.timeoutMs = o.timeoutMs ?? 2000;
  }

  /**
   * One POST on a kept-alive connection (node:http, not fetch: fetch loads undici, which a
   * short CLI run pays for; measured in docs/adr/0009).
   */
  private client(tls: boolean): Promise<{ request: typeof Http.request; agent: Http.Agent }> {
    const key = tls ? 'https' : 'http';
    let c = this.clients.get(key);
    if (!c) {
      c = (tls ? import('node:https') : import('node:http')).then((m) => ({
        request: m.request,
        agent: new m.Agent({ keepAlive: true }),
      }));
      this.clients.set(key, c);
    }
    return c;
  }

  private async request(
    url: string,
    body: string,
    timeoutMs: number,
  ): Promise<{ status: number; text: string }> {
    const u = new URL(url);
    const { request, agent } = await this.client(u.protocol === 'https:');
    return new Promise((resolve, reject) => {
      const req = request(
        u,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (b: Buffer) => chunks.push(b));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** POST one gateway request, moving on to the next endpoint when one fails. */
  async post<T>(path: string, body: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    const problems: string[] = [];
    for (let i = 0; i < this.endpoints.length; i++) {
      const at = (this.current + i) % this.endpoints.length;
      const ep = this.endpoints[at] as string;
      let res: { status: number; text: string };
      try {
        res = await this.request(`${ep}${path}`, JSON.stringify(body), timeoutMs);
      } catch (e) {
        problems.push(`${ep}: ${(e as Error).message}`);
        continue;
      }
      const json = (res.text ? JSON.parse(res.text) : {}) as T & {
        error?: string;
        message?: string;
        code?: number;
      };
      if (res.status < 300 && json.error === undefined) {
        this.current = at;
        return json;
      }
      const msg = json.message ?? json.error ?? `HTTP ${res.status}`;
      // An answer that is about the request (a lease not found) is the same on every member.
      if (/lease not found|requested lease/.test(msg))
        throw new JaulaError('not_found', `etcd (${ep}): ${msg}`);
      problems.push(`${ep}: ${msg}`);
    }
    throw new JaulaError(
      'runtime',
      `etcd did not answer (${problems.join('; ')}): check that the cluster has a quorum of members up (etcdctl endpoint health)`,
    );
  }

  async put(key: string, value: string, lease?: string): Promise<number> {
    const r = await this.post<{ header?: { revision?: string } }>('/v3/kv/put', {
      key: enc(key),
      value: enc(value),
      ...(lease ? { lease } : {}),
    });
    return Number(r.header?.revision ?? 0);
  }

  /** One key (a linearizable read unless `serializable`: then any member's own copy). */
  async get(key: string, o: { serializable?: boolean } = {}): Promise<KeyValue | undefined> {
    const r = await this.post<{ kvs?: RawKv[] }>('/v3/kv/range', rangeBody(key, false, o.serializable));
    const kv = r.kvs?.[0];
    return kv ? kvOf(kv) : undefined;
  }

  /** Every key under a prefix, in key order (linearizable unless `serializable`). */
  async list(prefix: string, o: { serializable?: boolean } = {}): Promise<KeyValue[]> {
    const r = await this.post<{ kvs?: RawKv[] }>('/v3/kv/range', rangeBody(prefix, true, o.serializable));
    return (r.kvs ?? []).map(kvOf);
  }

  async del(key: string, o: { prefix?: boolean } = {}): Promise<number> {
    const r = await this.post<{ deleted?: string }>('/v3/kv/deleterange', rangeBody(key, o.prefix === true));
    return Number(r.deleted ?? 0);
  }

  /** If every comparison holds, run `then`, else `otherwise`: atomically. */
  async txn(compare: Compare[], then: Op[], otherwise: Op[] = []): Promise<TxnResult> {
    const r = await this.post<{
      succeeded?: boolean;
      responses?: { response_range?: { kvs?: RawKv[] } }[];
    }>('/v3/kv/txn', {
      compare: compare.map(compareBody),
      success: then.map(opBody),
      failure: otherwise.map(opBody),
    });
    return {
      succeeded: r.succeeded === true,
      found: (r.responses ?? []).map((x) => (x.response_range?.kvs ?? []).map(kvOf)),
    };
  }

  /** Put `key` only if it does not exist; else what holds it. */
  async createIfAbsent(key: string, value: string, lease?: string): Promise<KeyValue | undefined> {
    const r = await this.txn(
      [{ key, absent: true }],
      [{ put: key, value, ...(lease ? { lease } : {}) }],
      [{ get: key }],
    );
    return r.succeeded ? undefined : r.found[0]?.[0];
  }

  /** A lease of `ttl` seconds; returns its ID (a decimal string). */
  async grant(ttl: number): Promise<string> {
    const r = await this.post<{ ID?: string }>('/v3/lease/grant', { TTL: ttl });
    if (!r.ID) throw new JaulaError('runtime', 'etcd granted no lease');
    return r.ID;
  }

  /** Renew a lease; its TTL now (0: it has expired: its keys are gone). */
  async keepAlive(id: string, timeoutMs?: number): Promise<number> {
    const r = await this.post<{ result?: { TTL?: string } }>('/v3/lease/keepalive', { ID: id }, timeoutMs);
    return Number(r.result?.TTL ?? 0);
  }

  async revoke(id: string): Promise<void> {
    await this.post('/v3/lease/revoke', { ID: id }).catch((e: unknown) => {
      if (!(e instanceof JaulaError && e.code === 'not_found')) throw e;
    });
  }

  /**
   * Watch a prefix from now on: `onEvent` for each change, until `signal` aborts. Resolves once
   * etcd has created the watch (events after that are seen); a broken stream ends `done`.
   */
  async watch(
    prefix: string,
    onEvent: (e: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<{ done: Promise<void> }> {
    const ep = this.endpoints[this.current] as string;
    const res = await fetch(`${ep}/v3/watch`, {
      method: 'POST',
      body: JSON.stringify({ create_request: { key: enc(prefix), range_end: prefixEnd(prefix) } }),
      signal,
    });
    if (!res.ok || !res.body)
      throw new JaulaError('runtime', `etcd (${ep}) refused the watch: HTTP ${res.status}`);
    const reader = res.body.getReader();
    let created: () => void = () => {};
    const ready = new Promise<void>((r) => (created = r));
    const done = (async (): Promise<void> => {
      let buf = '';
      const td = new TextDecoder();
      for (;;) {
        const { value, done: end } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (end) return;
        buf += td.decode(value, { stream: true });
        let nl: number;
        // The gateway writes one JSON object per line.
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const m = JSON.parse(line) as {
            result?: { created?: boolean; events?: { type?: string; kv?: RawKv }[] };
          };
          if (m.result?.created) created();
          for (const e of m.result?.events ?? [])
            onEvent({
              type: e.type === 'DELETE' ? 'delete' : 'put',
              key: dec(e.kv?.key),
              value: dec(e.kv?.value),
            });
        }
      }
    })();
    await Promise.race([ready, done]);
    return { done };
  }
}
