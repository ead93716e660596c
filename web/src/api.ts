/**
 * The dashboard's client of jaulad's API: the same origin that served the page, with the token
 * (from the address's #token=..., kept in sessionStorage) as a bearer header, or as
 * ?access_token= where browsers cannot set headers (EventSource, WebSocket).
 */
import type { ApiError } from '../../src/api/types.js';

const KEY = 'jaula-token';

export function token(): string {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m?.[1]) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY) ?? '';
}

export function setToken(t: string): void {
  sessionStorage.setItem(KEY, t.trim());
}

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  const t = token();
  if (t) headers['authorization'] = `Bearer ${t}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  const text = await r.text();
  const value = text ? (JSON.parse(text) as unknown) : undefined;
  if (!r.ok) {
    const e = (value as ApiError | undefined)?.error;
    throw new ApiFailure(r.status, e?.code ?? 'http', e?.message ?? `${method} ${path}: HTTP ${r.status}`);
  }
  return value as T;
}

/** A URL of this origin with the token as a query parameter. */
export function withToken(path: string, ws = false): string {
  const u = new URL(path, location.href);
  if (ws) u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const t = token();
  if (t) u.searchParams.set('access_token', t);
  return u.toString();
}
