/**
 * An API client against the host (issue 18): every request goes through the real path, a
 * jaulad on its unix socket and on TCP on loopback (and, for the guests' side, on a test
 * bridge's gateway with TLS), started here. What a token holder may touch of the host's files,
 * names checked before any lock or file, "__proto__" in a body, connection bounds, the browser
 * defences (Origin, Host, content type, CSP), the token's file and the TLS ciphers, the guests
 * kept off jaulad's port, and what `jaula doctor --security` says about it.
 * docs/security/threat-model.md describes the boundaries these tests hold.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { WebSocket } from 'ws';
import { LIMITS } from '../src/daemon/server.js';
import {
  apiRequest,
  buildSkeleton,
  selfSignedCert,
  skeletonTemplate,
  TestRoot,
  type Jaulad,
} from './helpers.js';

const t = new TestRoot('jaula-apisec-');
const TOKEN = 'api-security-token-0123456789';
const FILES = t.path('files');
let d: Jaulad;
let port = 0;

/** Wait until jaulad's log has a line matching `re` (it says where it listens once it does). */
async function logged(re: RegExp): Promise<RegExpExecArray> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = re.exec(d.log);
    if (m) return m;
    assert.ok(d.alive && Date.now() < deadline, `jaulad's log never matched ${re}: ${d.log}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** jaulad on the unix socket and on TCP loopback, with --host-files and one extra Host name. */
async function startLoopback(extra: string[] = []): Promise<void> {
  d = t.daemon([
    '--no-autostart',
    '--listen',
    '127.0.0.1:0',
    '--token-file',
    t.path('token'),
    '--host-files',
    FILES,
    '--allow-host',
    'api.example.test',
    ...extra,
  ]);
  await d.ready({ reconciled: true });
  port = Number((await logged(/and 127\.0\.0\.1:(\d+)/))[1]);
}

before(async () => {
  fs.writeFileSync(t.path('token'), `${TOKEN}\n`, { mode: 0o600 });
  fs.mkdirSync(FILES, { mode: 0o700 });
  buildSkeleton(t, 'h1');
  await startLoopback();
});

after(async () => {
  await d?.stop();
  assert.deepEqual(t.cleanup(), [], 'nothing is left behind');
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: { error?: { code: string; message: string } } & Record<string, unknown>;
}

/** One request to jaulad's TCP port, headers as given (the token unless `token: null`). */
function tcp(
  method: string,
  path: string,
  o: { body?: string | Buffer; headers?: Record<string, string>; token?: string | null } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...o.headers };
    if (o.token !== null) headers['authorization'] = `Bearer ${o.token ?? TOKEN}`;
    if (o.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      headers['content-length'] = Buffer.byteLength(o.body);
    }
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let json = {} as Answer['json'];
        try {
          json = JSON.parse(text) as Answer['json'];
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

const json = (v: unknown): string => JSON.stringify(v);

interface Job {
  id: string;
  state: string;
  error?: { code: string; message: string };
}

/** Wait for a job to end (polled over the unix socket). */
async function jobEnd(id: string): Promise<Job> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const j = (await d.request('GET', `/v1/jobs/${id}`)).json as Job;
    if (j.state !== 'running') return j;
    if (Date.now() > deadline) throw new Error(`job ${id} did not end`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A TCP job request: its job's end. */
async function tcpJob(path: string, body: unknown): Promise<Job> {
  const r = await tcp('POST', path, { body: json(body) });
  assert.equal(r.status, 202, r.text);
  return jobEnd((r.json as unknown as Job).id);
}

describe('host files over TCP: only beneath --host-files', () => {
  it('copy refuses the token file and every path outside, alike whether it exists or not', async () => {
    const token = await tcp('POST', '/v1/copy', { body: json({ src: t.path('token'), dst: 'h1:/stolen' }) });
    assert.equal(token.status, 403, token.text);
    assert.equal(token.json.error?.code, 'denied');
    assert.equal(fs.existsSync(join(t.guestRoot('h1'), 'stolen')), false, 'nothing reached the guest');
    // No oracle: a file that exists and one that does not get the same answer.
    const msg = async (src: string): Promise<string> => {
      const r = await tcp('POST', '/v1/copy', { body: json({ src, dst: 'h1:/x' }) });
      assert.equal(r.status, 403, `${src}: ${r.text}`);
      return (r.json.error?.message ?? '').replace(JSON.stringify(src), 'PATH');
    };
    fs.symlinkSync('/etc/passwd', join(FILES, 'abs'));
    fs.symlinkSync('../token', join(FILES, 'rel'));
    const answers = await Promise.all(
      [
        '/etc/passwd',
        '/nonexistent/file',
        `${FILES}/../token`,
        `${FILES}/abs/x`,
        `${FILES}/rel/x`,
        `${FILES}2/x`,
      ].map(msg),
    );
    for (const a of answers) assert.equal(a, answers[0]);
    assert.match(answers[0] as string, /not beneath/);
    // Out of the guest into the host: the same.
    const out = await tcp('POST', '/v1/copy', { body: json({ src: 'h1:/etc/passwd', dst: '/tmp/x' }) });
    assert.equal(out.status, 403, out.text);
  });

  it('relative host paths are refused on both sockets; root on the unix socket keeps full paths', async () => {
    for (const r of [
      await tcp('POST', '/v1/copy', { body: json({ src: 'token', dst: 'h1:/x' }) }),
      await d.request('POST', '/v1/copy', { src: 'token', dst: 'h1:/x' }),
    ]) {
      assert.equal(r.status, 400, r.text);
      assert.match(r.text, /not an absolute path/);
    }
    const root = await d.request('POST', '/v1/copy', { src: t.path('token'), dst: 'h1:/rootcopy' });
    assert.equal(root.status, 200, root.text);
  });

  it('copies in and out beneath it; a guest symlink copied out does not lead a later copy out', async () => {
    fs.writeFileSync(join(FILES, 'in.txt'), 'hello from the host\n');
    const i = await tcp('POST', '/v1/copy', { body: json({ src: `${FILES}/in.txt`, dst: 'h1:/in.txt' }) });
    assert.equal(i.status, 200, i.text);
    const o = await tcp('POST', '/v1/copy', { body: json({ src: 'h1:/in.txt', dst: `${FILES}/out.txt` }) });
    assert.equal(o.status, 200, o.text);
    assert.equal(fs.readFileSync(join(FILES, 'out.txt'), 'utf8'), 'hello from the host\n');
    // A guest's directory holding a link to /etc, copied out (links as links), lands in it...
    fs.mkdirSync(t.path('d'));
    fs.symlinkSync('/etc', t.path('d/evil'));
    assert.equal((await d.request('POST', '/v1/copy', { src: t.path('d'), dst: 'h1:/d' })).status, 200);
    const l = await tcp('POST', '/v1/copy', { body: json({ src: 'h1:/d', dst: `${FILES}/d` }) });
    assert.equal(l.status, 200, l.text);
    assert.equal(fs.readlinkSync(join(FILES, 'd/evil')), '/etc');
    // ...and cannot be followed: neither to read the host's files nor to write to them.
    const read = await tcp('POST', '/v1/copy', {
      body: json({ src: `${FILES}/d/evil/passwd`, dst: 'h1:/p' }),
    });
    assert.equal(read.status, 403, read.text);
    const write = await tcp('POST', '/v1/copy', {
      body: json({ src: 'h1:/in.txt', dst: `${FILES}/d/evil/jaula-x` }),
    });
    assert.equal(write.status, 403, write.text);
    assert.equal(fs.existsSync('/etc/jaula-x'), false);
  });

  it('template import and export only beneath it; export never replaces a symlink', async () => {
    const tar = skeletonTemplate(t);
    const imp = (await d.request('POST', '/v1/templates/import', { file: tar, name: 'tp' })).json as Job;
    assert.equal((await jobEnd(imp.id)).state, 'succeeded');
    const outside = t.path('outside.tar');
    const e1 = await tcpJob('/v1/templates/tp/export', { file: outside });
    assert.equal(e1.state, 'failed');
    assert.equal(e1.error?.code, 'denied', e1.error?.message);
    assert.equal(fs.existsSync(outside), false);
    // A symlink beneath the directory to a file outside: not replaced, not written through.
    fs.writeFileSync(t.path('victim'), 'precious\n');
    fs.symlinkSync(t.path('victim'), join(FILES, 'link.tar'));
    const e2 = await tcpJob('/v1/templates/tp/export', { file: `${FILES}/link.tar` });
    assert.equal(e2.state, 'failed');
    assert.match(e2.error?.message ?? '', /not a regular file \(a symlink\)/);
    assert.equal(fs.readFileSync(t.path('victim'), 'utf8'), 'precious\n');
    assert.ok(fs.lstatSync(join(FILES, 'link.tar')).isSymbolicLink());
    const e3 = await tcpJob('/v1/templates/tp/export', { file: `${FILES}/tp.tar` });
    assert.equal(e3.state, 'succeeded', e3.error?.message);
    assert.ok(fs.statSync(join(FILES, 'tp.tar')).size > 0);
    assert.deepEqual(
      fs.readdirSync(FILES).filter((f) => f.includes('.tmp-')),
      [],
      'no temporary archive is left',
    );
    // Import: the same.
    const i1 = await tcpJob('/v1/templates/import', { file: tar, name: 'tp2' });
    assert.equal(i1.error?.code, 'denied', i1.error?.message);
    const i2 = await tcpJob('/v1/templates/import', { file: `${FILES}/tp.tar`, name: 'tp2' });
    assert.equal(i2.state, 'succeeded', i2.error?.message);
    // A build from an archive: the same.
    const b = await tcpJob('/v1/guests', { name: 'b1', method: 'template', methodArgs: ['-t', tar] });
    assert.equal(b.error?.code, 'denied', b.error?.message);
    for (const n of ['tp', 'tp2'])
      assert.equal((await d.request('DELETE', `/v1/templates/${n}`)).status, 200);
  });
});

describe("what stays root's: privileged guests, the host's processes", () => {
  it("a token holder cannot build or clone a privileged guest, nor list the host's processes", async () => {
    const b = await tcpJob('/v1/guests', { name: 'p0', method: 'skeleton', privileged: true });
    assert.equal(b.error?.code, 'denied', b.error?.message);
    buildSkeleton(t, 'p1', ['--privileged']);
    const c = await tcpJob('/v1/guests/p1/clone', { dst: 'p2' });
    assert.equal(c.error?.code, 'denied', c.error?.message);
    assert.deepEqual(
      ((await d.request('GET', '/v1/guests')).json as { name: string }[]).map((g) => g.name).sort(),
      ['h1', 'p1'],
    );
    const ps = await tcp('GET', '/v1/processes?all=true');
    assert.equal(ps.status, 403, ps.text);
    assert.equal((await tcp('GET', '/v1/processes')).status, 200);
    assert.equal((await d.request('GET', '/v1/processes?all=true')).status, 200, 'root may');
    assert.equal((await d.request('DELETE', '/v1/guests/p1')).status, 200);
  });
});

/** Every file named `name` below `dir`. */
function findNamed(dir: string, name: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.name === name) out.push(p);
    if (e.isDirectory() && !e.isSymbolicLink()) out.push(...findNamed(p, name));
  }
  return out;
}

describe('names are checked where the request is parsed, before any lock or file', () => {
  it('a name with "../" in the path is a 400 and makes no lock file', async () => {
    const answers = [];
    for (const op of ['stop', 'start', 'restart'])
      answers.push(await d.request('POST', `/v1/guests/..%2F..%2F..%2Fproof/${op}`, {}));
    answers.push(await d.request('DELETE', '/v1/templates/..%2F..%2Fproof'));
    assert.deepEqual(findNamed(t.root, 'proof.lock'), [], 'no lock file was made');
    for (const r of answers) {
      assert.equal(r.status, 400, r.text);
      assert.match(
        (r.json as Answer['json']).error?.message ?? '',
        /name: "..\/..\/(..\/)?proof" is not valid/,
      );
    }
  });

  it('names= in a query is checked: no path is read', async () => {
    for (const path of ['/v1/usage', '/v1/processes', '/v1/du']) {
      const r = await d.request('GET', `${path}?names=../../../etc`);
      assert.equal(r.status, 400, `${path}: ${r.text}`);
      assert.match(
        (r.json as Answer['json']).error?.message ?? '',
        /names\[0\]: "..\/..\/..\/etc" is not valid/,
      );
    }
  });

  it("a console name cannot forge a line of jaulad's log", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws+unix:${d.socket}:/v1/guests/x%0Ajaulad%3A%20forged/attach?mode=exec`);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => {
        ws.close();
        resolve(101);
      });
      ws.on('error', reject);
    });
    assert.equal(status, 400);
    // What a bad request does reach the log is escaped and indented.
    await d.request('POST', '/v1/guests/x%0Ajaulad%3A%20forged2/start', {});
    await logged(/forged2\/start -> 400/); // the log is read up to here
    assert.doesNotMatch(d.log, /^jaulad: forged/m);
  });

  it('a 500 over TCP names no path (the root socket and the log keep the detail)', async () => {
    const locks = t.path('run/jaula/locks');
    fs.renameSync(locks, `${locks}.aside`);
    fs.writeFileSync(locks, 'not a directory');
    try {
      const r = await tcp('POST', '/v1/guests/h1/start');
      assert.equal(r.status, 500, r.text);
      assert.ok(!r.text.includes(t.root), r.text);
      const ref = /reference ([0-9a-f]+)/.exec(r.text)?.[1];
      assert.ok(ref, r.text);
      // The log has the detail (it reaches this process a moment after the answer).
      await logged(new RegExp(`internal error ${ref}: .*${t.root.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
      const root = await d.request('POST', '/v1/guests/h1/start');
      assert.equal(root.status, 500);
      assert.ok(root.text.includes(t.root), root.text);
    } finally {
      fs.rmSync(locks);
      fs.renameSync(`${locks}.aside`, locks);
    }
  });
});

describe('bodies: own fields only, JSON only, bounded', () => {
  const jobs = async (): Promise<number> => ((await d.request('GET', '/v1/jobs')).json as unknown[]).length;

  it('"__proto__" is an unknown field, in a body and in a query', async () => {
    const before = await jobs();
    const r = await tcp('POST', '/v1/hashify', { body: '{"__proto__":{"guests":"abc"}}' });
    assert.equal(r.status, 400, r.text);
    assert.match(r.text, /__proto__: is not a known field/);
    const c = await tcp('POST', '/v1/hashify', { body: '{"constructor":{"prototype":{"all":true}}}' });
    assert.equal(c.status, 400, c.text);
    const q = await tcp('GET', '/v1/guests?__proto__=x');
    assert.equal(q.status, 400, q.text);
    assert.equal(await jobs(), before, 'no job was started');
  });

  it('a body that is not application/json is a 415', async () => {
    const before = await jobs();
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
    ]) {
      const r = await tcp('POST', '/v1/hashify', {
        body: '{"dryRun":true}',
        headers: { 'content-type': type },
      });
      assert.equal(r.status, 415, `${type}: ${r.text}`);
    }
    const start = await tcp('POST', '/v1/guests/nosuch/start', { headers: { 'content-type': 'text/plain' } });
    assert.equal(start.status, 415, start.text);
    assert.equal(await jobs(), before, 'no job was started');
  });

  it('a body over 1 MiB is a 413; 300,000 wrong values get a short list', async () => {
    const big = await tcp('POST', '/v1/hashify', { body: json({ excludes: ['x'.repeat(2 << 20)] }) });
    assert.equal(big.status, 413, big.text.slice(0, 200));
    assert.equal(big.headers.connection, 'close');
    const many = await tcp('POST', '/v1/hashify', { body: json({ guests: new Array(300_000).fill(1) }) });
    assert.equal(many.status, 400, many.text.slice(0, 200));
    assert.ok(many.text.length < 4096, `${many.text.length} bytes`);
    assert.match(many.text, /and more problems/);
  });
});

/** A raw TCP connection to jaulad's port; `closed` resolves when jaulad closes it. */
function rawConnection(): { sock: Socket; closed: Promise<void>; data: () => string } {
  const sock = netConnect(port, '127.0.0.1');
  let data = '';
  sock.on('data', (b: Buffer) => (data += b.toString()));
  sock.on('error', () => {});
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  return { sock, closed, data: () => data };
}

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)),
  ]);

describe('connections', () => {
  it('a client that sends nothing is disconnected after the headers timeout', async () => {
    const c = rawConnection();
    await within(c.closed, LIMITS.headersTimeoutMs + 10_000, 'jaulad closes a silent connection');
  });

  it('a 401 closes the connection: no second guess on it', async () => {
    const c = rawConnection();
    const req = `GET /v1/guests HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer wrong-token-000000000\r\n\r\n`;
    c.sock.write(req + req);
    await within(c.closed, 5000, 'jaulad closes after a 401');
    assert.match(c.data(), /^HTTP\/1\.1 401/);
    assert.match(c.data(), /connection: close/i);
    assert.equal(c.data().match(/HTTP\/1\.1 401/g)?.length, 1, 'one answer only');
  });

  it(`one peer gets at most ${LIMITS.perPeer} connections at once`, async () => {
    const conns = Array.from({ length: LIMITS.perPeer + 8 }, () => rawConnection());
    let closed = 0;
    for (const c of conns) void c.closed.then(() => closed++);
    const deadline = Date.now() + 5000;
    while (closed < 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(closed, 8, 'the connections over the limit are closed at once');
    for (const c of conns) c.sock.destroy();
    await Promise.all(conns.map((c) => c.closed));
    // Served again once jaulad has seen them go (their close reaches it a moment later).
    const until = Date.now() + 5000;
    for (;;) {
      const r = await tcp('GET', '/v1/info').catch(() => undefined);
      if (r?.status === 200) break;
      assert.ok(Date.now() < until, 'served again once they are gone');
      await new Promise((res) => setTimeout(res, 20));
    }
  });
});

describe('defence in depth for browsers', () => {
  it('a foreign Origin is refused on every method but GET and on WebSocket', async () => {
    const evil = { origin: 'http://evil.example' };
    const post = await tcp('POST', '/v1/guests/h1/stop', { body: '{}', headers: evil });
    assert.equal(post.status, 403, post.text);
    assert.match(post.text, /Origin/);
    assert.equal((await tcp('GET', '/v1/guests', { headers: evil })).status, 200);
    const own = await tcp('POST', '/v1/guests/h1/stop', {
      body: '{}',
      headers: { origin: `http://127.0.0.1:${port}` },
    });
    assert.equal(own.status, 409, own.text); // h1 does not run: served, not refused
    const ws = await new Promise<number>((resolve, reject) => {
      const w = new WebSocket(`ws://127.0.0.1:${port}/v1/guests/h1/attach?mode=exec`, {
        origin: 'http://evil.example',
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      w.on('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
      w.on('open', () => {
        w.close();
        resolve(101);
      });
      w.on('error', reject);
    });
    assert.equal(ws, 403);
  });

  it('Host must be an IP address, localhost or an --allow-host name (DNS rebinding)', async () => {
    assert.equal((await tcp('GET', '/v1/info', { headers: { host: 'evil.example' } })).status, 403);
    assert.equal((await tcp('GET', '/', { headers: { host: 'evil.example:80' } })).status, 403);
    for (const host of [`localhost:${port}`, 'api.example.test', `127.0.0.1:${port}`])
      assert.equal((await tcp('GET', '/v1/info', { headers: { host } })).status, 200, host);
  });

  it('the page forbids frames and foreign connections; no answer sends a referrer', async () => {
    const page = await tcp('GET', '/', { token: null });
    assert.equal(page.status, 200);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /connect-src 'self'(;|$)/);
    assert.equal(page.headers['referrer-policy'], 'no-referrer');
    const api = await tcp('GET', '/v1/info');
    assert.equal(api.headers['referrer-policy'], 'no-referrer');
    assert.match(String(api.headers['content-security-policy']), /frame-ancestors 'none'/);
  });

  it('?access_token= works only for the event stream and the console', async () => {
    assert.equal((await tcp('GET', `/v1/guests?access_token=${TOKEN}`, { token: null })).status, 401);
    const ev = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path: `/v1/events?access_token=${TOKEN}`, agent: false },
        (res) => {
          resolve(res.statusCode ?? 0);
          req.destroy();
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(ev, 200);
  });
});

describe('starting jaulad', () => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, [d.proc.spawnargs[1] as string, '--no-autostart', ...args], {
      env: { ...t.env, JAULA_ROOT: t.path('other') },
      encoding: 'utf8',
      timeout: 20_000,
    });

  it('--listen takes an IP address, never a name that looks like loopback', () => {
    for (const listen of ['127.0.0.1.invalid:7440', 'example.com:7440', '127.0.0.1:99999', '[127.0.0.1]:1']) {
      const r = run(['--listen', listen, '--token-file', t.path('token')]);
      assert.equal(r.status, 2, `${listen}: ${r.stderr}`);
      assert.match(r.stderr, /--listen takes ADDRESS:PORT with an IP address/);
    }
  });

  it('refuses a token file that others can read', () => {
    const loose = t.path('loose-token');
    fs.writeFileSync(loose, `${TOKEN}\n`, { mode: 0o644 });
    fs.chmodSync(loose, 0o644);
    const r = run(['--listen', '127.0.0.1:0', '--token-file', loose]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /chmod 600/);
  });
});

describe('on a bridge: guests kept off the port, TLS ciphers, doctor --security', () => {
  let gw = '';
  let tlsPort = 0;
  let cert = '';
  let key = '';

  before(async () => {
    for (let i = 0; i < 20 && !gw; i++) {
      const base = `10.${200 + Math.floor(Math.random() * 40)}.${Math.floor(Math.random() * 250)}`;
      const r = t.jaula([
        'network',
        'create',
        'an',
        '--subnet',
        `${base}.1/24`,
        '--bridge',
        `ja${t.tag.slice(0, 6)}`,
      ]);
      if (r.code === 0) gw = `${base}.1`;
    }
    assert.ok(gw, 'made a network');
    t.buildSleeper('n1', ['--interface', 'eth0=an:auto']);
    t.ok(['start', 'n1']);
    ({ cert, key } = selfSignedCert(t));
  });

  async function startOnBridge(extra: string[] = []): Promise<void> {
    await d.stop();
    d = t.daemon([
      '--no-autostart',
      '--listen',
      `${gw}:0`,
      '--token-file',
      t.path('token'),
      '--tls-cert',
      cert,
      '--tls-key',
      key,
      ...extra,
    ]);
    await d.ready();
    tlsPort = Number((await logged(new RegExp(`and ${gw.replace(/\./g, '\\.')}:(\\d+) \\(TLS\\)`)))[1]);
  }

  /** Whether a TCP connection from the guest's network namespace to jaulad's port is made (3 s at most). */
  const guestConnects = (): boolean =>
    spawnSync(
      'nsenter',
      [
        `--net=${t.path('run/jaula/netns', 'n1')}`,
        'timeout',
        '3',
        'bash',
        '-c',
        `exec 3<>/dev/tcp/${gw}/${tlsPort}`,
      ],
      { stdio: 'ignore' },
    ).status === 0;

  const security = (): Map<string, { status: string; detail: string }> => {
    const r = t.jaula(['doctor', '--security', '--format', 'json']);
    const checks = JSON.parse(r.stdout) as { name: string; status: string; detail: string }[];
    return new Map(checks.map((c) => [c.name, c]));
  };

  it('a guest cannot reach jaulad listening on an address it routes to; the host can', async () => {
    await startOnBridge();
    assert.equal(guestConnects(), false, 'the guest reached jaulad');
    const ok = await new Promise<boolean>((resolve) => {
      const s = tlsConnect({ host: gw, port: tlsPort, rejectUnauthorized: false }, () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    assert.ok(ok, 'the host reaches it');
    // jaula's firewall made again (as the first network after the last one was deleted makes
    // it) still keeps the guests off: the port is kept beside it.
    spawnSync('nft', ['delete', 'table', 'bridge', `jaula_${t.tag}`]);
    fs.rmSync(t.path('run/jaula/net', `firewall.${t.tag}`));
    t.ok(['restart', 'n1']);
    assert.equal(guestConnects(), false, 'the guest reached jaulad after the firewall was made again');
  });

  it('TLS: ECDHE with AEAD ciphers only', async () => {
    const hs = (ciphers: string): Promise<string> =>
      new Promise((resolve) => {
        const s = tlsConnect(
          { host: gw, port: tlsPort, rejectUnauthorized: false, ciphers, maxVersion: 'TLSv1.2' },
          () => {
            const c = s.getCipher().name;
            s.end();
            resolve(c);
          },
        );
        s.on('error', () => resolve('refused'));
      });
    assert.equal(await hs('ECDHE-ECDSA-AES128-GCM-SHA256'), 'ECDHE-ECDSA-AES128-GCM-SHA256');
    for (const weak of ['ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES256-SHA', 'AES128-SHA'])
      assert.equal(await hs(weak), 'refused', weak);
  });

  it('doctor --security: guests kept off, then an unsafe token file, then --allow-guests', async () => {
    let c = security();
    assert.equal(c.get('API reachable by guests')?.status, 'ok', c.get('API reachable by guests')?.detail);
    assert.equal(c.get('API token file')?.status, 'ok');
    assert.equal(c.get('API address')?.status, 'ok');
    fs.chmodSync(t.path('token'), 0o644);
    try {
      c = security();
      assert.equal(c.get('API token file')?.status, 'warn');
      assert.match(c.get('API token file')?.detail ?? '', /chmod 600/);
    } finally {
      fs.chmodSync(t.path('token'), 0o600);
    }
    await startOnBridge(['--allow-guests']);
    assert.equal(guestConnects(), true, 'with --allow-guests the guest reaches jaulad');
    c = security();
    assert.equal(c.get('API reachable by guests')?.status, 'warn');
    await d.stop();
    assert.equal(security().get('API')?.status, 'ok', 'no jaulad: nothing beyond root');
  });
});

describe('the unix socket keeps working as before', () => {
  it('answers the CLI and the helpers', async () => {
    d = t.daemon(['--no-autostart']);
    await d.ready();
    const r = await apiRequest(d.socket, 'GET', '/v1/guests');
    assert.equal(r.status, 200);
  });
});
