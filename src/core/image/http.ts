import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import { JaulaError, messageOf } from '../../common/errors.js';
import { apiHost, isLoopback } from './ref.js';

/**
 * The registry HTTP API v2's transport, on Node's own http and https: one registry, one
 * repository. Authentication follows the registry's challenge (RFC 6750 and Docker's token
 * protocol): on a 401 with "Bearer realm=...,service=...,scope=..." a token is fetched from the
 * realm (anonymously, or with the credentials as Basic), and with "Basic" the credentials go
 * with every request. https always, except on loopback or with `insecure`, where a registry that
 * does not speak TLS is spoken to in plain http (Docker's rule). TLS trusts the system's CAs and
 * NODE_EXTRA_CA_CERTS.
 */
export interface Credentials {
  user: string;
  pass: string;
}

export interface RegistryOptions {
  insecure?: boolean;
  creds?: Credentials;
  signal?: AbortSignal;
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

const TIMEOUT_MS = 30_000;

/** Parse a WWW-Authenticate challenge: its scheme and its parameters. */
export function parseChallenge(h: string): { scheme: string; params: Record<string, string> } {
  const sp = h.indexOf(' ');
  const scheme = (sp < 0 ? h : h.slice(0, sp)).toLowerCase();
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)="?((?:[^",\\]|\\.)*)"?/g;
  for (const m of (sp < 0 ? '' : h.slice(sp + 1)).matchAll(re))
    params[(m[1] ?? '').toLowerCase()] = m[2] ?? '';
  return { scheme, params };
}

export async function drain(res: http.IncomingMessage, max = 1 << 20): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    n += (c as Buffer).length;
    if (n > max) {
      res.destroy();
      throw new JaulaError('invalid', `The registry's answer is larger than ${max} bytes`);
    }
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts);
}

export class RegistryClient {
  private scheme: 'https:' | 'http:' | undefined;
  private authorization: string | undefined;

  constructor(
    readonly host: string,
    readonly repo: string,
    private readonly o: RegistryOptions = {},
  ) {}

  private once(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body?: Buffer | Readable,
  ): Promise<Answer> {
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, {
        method,
        headers,
        timeout: TIMEOUT_MS,
        ...(this.o.signal ? { signal: this.o.signal } : {}),
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
      req.on('error', reject);
      req.on('response', (res) => {
        res.setTimeout(TIMEOUT_MS, () =>
          res.destroy(new Error(`the transfer stalled for ${TIMEOUT_MS / 1000} s`)),
        );
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      if (body === undefined || Buffer.isBuffer(body)) req.end(body);
      else body.pipe(req);
    });
  }

  /** https, or plain http where allowed and the registry does not speak TLS. */
  private async base(): Promise<string> {
    const host = apiHost(this.host);
    if (!this.scheme) {
      const plainOk = this.o.insecure === true || isLoopback(this.host);
      try {
        (await this.once('GET', new URL(`https://${host}/v2/`), {})).body.resume();
        this.scheme = 'https:';
      } catch (e) {
        const tlsFault = /SSL|TLS|EPROTO|wrong version|ECONNRESET/i.test(
          `${messageOf(e)} ${(e as { code?: string }).code ?? ''}`,
        );
        if (!plainOk || !tlsFault)
          throw new JaulaError(
            'io',
            `The registry "${this.host}" could not be reached over https: ${messageOf(e)}${tlsFault ? ' (a registry without TLS is used only on loopback or with --insecure)' : ''}`,
            { cause: e },
          );
        this.scheme = 'http:';
      }
    }
    return `${this.scheme}//${host}`;
  }

  /** One API request: authenticated on the registry's challenge, redirects followed. */
  async request(
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body?: Buffer | (() => Readable),
  ): Promise<Answer> {
    let url = new URL(path, await this.base());
    let sameHost = true;
    let authTried = false;
    for (let hop = 0; hop < 8; hop++) {
      const h = {
        ...headers,
        ...(this.authorization && sameHost ? { authorization: this.authorization } : {}),
      };
      let a: Answer;
      try {
        a = await this.once(method, url, h, typeof body === 'function' ? body() : body);
      } catch (e) {
        throw new JaulaError(
          'io',
          `The registry "${this.host}" failed to answer ${method} ${url.pathname}: ${messageOf(e)}`,
          { cause: e },
        );
      }
      if (a.status === 401 && !authTried && sameHost) {
        a.body.resume();
        authTried = true;
        await this.authenticate(String(a.headers['www-authenticate'] ?? ''));
        continue;
      }
      if ([301, 302, 303, 307, 308].includes(a.status) && a.headers.location) {
        a.body.resume();
        const next = new URL(a.headers.location, url);
        sameHost = sameHost && next.host === url.host;
        if (next.protocol === 'http:' && url.protocol === 'https:')
          throw new JaulaError(
            'denied',
            `The registry "${this.host}" redirected from https to plain http (${next.host}): refused`,
          );
        url = next;
        if (a.status === 303) method = 'GET';
        continue;
      }
      if (a.status === 401 || a.status === 403) {
        a.body.resume();
        throw new JaulaError(
          'denied',
          `The registry "${this.host}" refused ${method} of "${this.repo}" (HTTP ${a.status})${this.o.creds ? ' with the credentials given: check them' : ': it needs credentials (--creds USER:PASS, or an auth file)'}`,
        );
      }
      return a;
    }
    throw new JaulaError('io', `The registry "${this.host}" redirected too many times for ${path}`);
  }

  private async authenticate(challenge: string): Promise<void> {
    const { scheme, params } = parseChallenge(challenge);
    const { creds } = this.o;
    const basic = creds
      ? `Basic ${Buffer.from(`${creds.user}:${creds.pass}`).toString('base64')}`
      : undefined;
    if (scheme === 'basic') {
      if (!basic)
        throw new JaulaError(
          'denied',
          `The registry "${this.host}" needs credentials: give --creds USER:PASS or an auth file`,
        );
      this.authorization = basic;
      return;
    }
    if (scheme !== 'bearer' || !params.realm)
      throw new JaulaError(
        'denied',
        `The registry "${this.host}" asked for an authentication jaula does not know ("${challenge.slice(0, 80)}")`,
      );
    const realm = new URL(params.realm);
    if (realm.protocol !== 'https:' && !(this.o.insecure === true || isLoopback(realm.host)))
      throw new JaulaError(
        'denied',
        `The registry "${this.host}" sends its token requests to plain http (${realm.host}): refused without --insecure`,
      );
    if (params.service) realm.searchParams.set('service', params.service);
    if (params.scope) realm.searchParams.set('scope', params.scope);
    let a: Answer;
    try {
      a = await this.once('GET', realm, basic ? { authorization: basic } : {});
    } catch (e) {
      throw new JaulaError(
        'io',
        `The token server of "${this.host}" (${realm.host}) failed to answer: ${messageOf(e)}`,
        { cause: e },
      );
    }
    const text = (await drain(a.body)).toString();
    if (a.status !== 200)
      throw new JaulaError(
        'denied',
        `The token server of "${this.host}" refused a token for "${this.repo}" (HTTP ${a.status})${creds ? ': check the credentials' : ': it may need credentials (--creds USER:PASS)'}`,
      );
    let token: unknown;
    try {
      const j = JSON.parse(text) as { token?: unknown; access_token?: unknown };
      token = j.token ?? j.access_token;
    } catch {
      token = undefined;
    }
    if (typeof token !== 'string' || !token)
      throw new JaulaError('invalid', `The token server of "${this.host}" answered without a token`);
    this.authorization = `Bearer ${token}`;
  }
}
