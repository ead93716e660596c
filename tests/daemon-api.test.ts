/**
 * jaulad's API against a running jaulad on a temporary root: every documented operation is
 * exercised and every answer is checked against the OpenAPI document it serves; the CLI goes
 * through jaulad when it answers and works without it; jobs, the event stream (also for changes
 * other processes make), exec over WebSocket, errors, TCP with TLS and a token, one jaulad per
 * root, and the autostart after a host reboot.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { validate, type Schema } from '../src/api/schema.js';
import { loopbackEtcd } from './fleet-hosts.js';
import { EventStream, Jaulad, selfSignedCert, skeletonTemplate, TestRoot } from './helpers.js';
import { layerTar, ociLayout } from './ocikit.js';

const t = new TestRoot('jaula-api-');
let d: Jaulad;
let doc: {
  paths: Record<
    string,
    Record<
      string,
      { operationId: string; responses: Record<string, { content?: Record<string, { schema: Schema }> }> }
    >
  >;
  components: { schemas: Record<string, Schema> };
};
const exercised = new Set<string>();

after(async () => {
  await d?.stop();
  assert.deepEqual(t.cleanup(), [], 'nothing is left behind');
});

function operationOf(method: string, path: string): { id: string; path: string } | undefined {
  const p = path.split('?')[0] as string;
  for (const [pattern, ops] of Object.entries(doc.paths)) {
    const re = new RegExp(`^${pattern.replace(/\{\w+\}/g, '[^/]+')}$`);
    const op = ops[method.toLowerCase()];
    if (re.test(p) && op) return { id: op.operationId, path: pattern };
  }
  return undefined;
}

/** A request whose answer must match the document (status and body schema). */
async function api<T = unknown>(method: string, path: string, body?: unknown, expect = 200): Promise<T> {
  const r = await d.request(method, path, body);
  const op = operationOf(method, path);
  assert.ok(op, `${method} ${path} is documented`);
  exercised.add(op.id);
  assert.equal(r.status, expect, `${method} ${path}: ${r.text}`);
  const spec = doc.paths[op.path]?.[method.toLowerCase()]?.responses[String(r.status)];
  assert.ok(spec, `${method} ${path}: status ${r.status} is documented`);
  const schema = spec.content?.['application/json']?.schema;
  if (schema) {
    const problems = validate(
      r.json,
      schema,
      (ref) => doc.components.schemas[ref.split('/').pop() as string],
    );
    assert.deepEqual(problems, [], `${method} ${path}: the answer matches the document`);
  }
  return r.json as T;
}

interface Job {
  id: string;
  state: string;
  progress: string[];
  result?: { name: string };
  error?: { message: string };
}

async function waitJob(id: string): Promise<Job> {
  const es = new EventStream(d.socket, `/v1/events?job=${id}`);
  try {
    const ev = await es.waitFor(
      `job ${id} to end`,
      (e) => e['type'] === 'job' && (e['job'] as Job).state !== 'running',
      120_000,
    );
    return ev['job'] as Job;
  } finally {
    es.close();
  }
}

before(async () => {
  d = t.daemon(['--no-autostart']);
  await d.ready({ reconciled: true });
  doc = (await d.request('GET', '/v1/openapi.json')).json as typeof doc;
});

describe('the unix socket', () => {
  it('is root-only (mode 0600)', () => {
    const st = fs.statSync(d.socket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.uid, 0);
  });

  it('is the only jaulad of its root: a second one refuses to start', () => {
    const r = spawnSync(process.execPath, [d.proc.spawnargs[1] as string], {
      env: t.env,
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 7, r.stderr);
    assert.match(r.stderr, /jaulad already runs/);
  });
});

describe('the OpenAPI document', () => {
  it('is OpenAPI 3 and describes versioned routes', async () => {
    const o = await api<{ openapi: string; paths: Record<string, unknown> }>('GET', '/v1/openapi.json');
    assert.match(o.openapi, /^3\./);
    for (const p of Object.keys(o.paths)) assert.match(p, /^\/v1\//);
  });

  it('has a route behind every documented operation, and no undocumented route answers', async () => {
    for (const [path, ops] of Object.entries(doc.paths))
      for (const method of Object.keys(ops)) {
        if (path === '/v1/events') continue; // a stream: exercised below
        const concrete = path.replace(/\{\w+\}/g, 'nosuchthing');
        const r = await d.request(
          method.toUpperCase(),
          concrete,
          method === 'get' || method === 'delete' ? undefined : {},
        );
        assert.doesNotMatch(r.text, /No API route/, `${method.toUpperCase()} ${path} is served`);
        assert.ok(
          r.status < 500 || r.status === 501,
          `${method.toUpperCase()} ${concrete}: ${r.status} ${r.text}`,
        );
      }
    const r = await d.request('GET', '/v1/nosuch');
    assert.equal(r.status, 404);
    assert.match(r.text, /No API route/);
  });

  it('refuses bodies that do not match it, saying what is wrong', async () => {
    const r = await d.request('POST', '/v1/guests', { name: 'x', method: 'nonsense', extra: 1 });
    assert.equal(r.status, 400);
    assert.match(r.text, /method: must be one of/);
    assert.match(r.text, /extra: is not a known field/);
  });
});

describe('guests through the API', () => {
  it('builds a guest as a job with progress, then lists, configures, starts, execs, stops it', async () => {
    const tpl = skeletonTemplate(t);
    const job = await api<Job>(
      'POST',
      '/v1/guests',
      {
        name: 'a1',
        method: 'template',
        methodArgs: ['-t', tpl],
        initstyle: 'cmd',
        cmd: ['/bin/sleep', '100000'],
        marks: ['web'],
      },
      202,
    );
    assert.equal(job.state, 'running');
    const done = await waitJob(job.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    assert.ok(
      done.progress.some((l) => /Unpacked \d+ files/.test(l)),
      'progress lines of the build',
    );
    assert.equal((await api<Job>('GET', `/v1/jobs/${job.id}`)).state, 'succeeded');
    assert.ok((await api<Job[]>('GET', '/v1/jobs')).some((j) => j.id === job.id));

    const list = await api<{ name: string; status: string }[]>('GET', '/v1/guests');
    assert.deepEqual(
      list.map((g) => [g.name, g.status]),
      [['a1', 'stopped']],
    );
    assert.deepEqual(await api('GET', '/v1/guests?mark=nomark'), []);
    const s = await api<{ marks: string[]; stopTimeout: number }>('PATCH', '/v1/guests/a1/settings', {
      marks: ['web', 'db'],
      stopTimeout: 5,
    });
    assert.deepEqual(s.marks, ['web', 'db']);
    assert.equal((await api<{ stopTimeout: number }>('GET', '/v1/guests/a1/settings')).stopTimeout, 5);

    const g = await api<{ status: string; pid: number }>('POST', '/v1/guests/a1/start');
    assert.equal(g.status, 'running');
    assert.equal((await api<{ status: string }>('GET', '/v1/guests/a1')).status, 'running');
    const x = await api<{ code: number; stdout: string; stderr: string }>('POST', '/v1/guests/a1/exec', {
      cmd: ['/bin/sh', '-c', 'cat; echo err >&2; exit 3'],
      input: 'in\n',
    });
    assert.deepEqual([x.code, x.stdout, x.stderr], [3, 'in\n', 'err\n']);
    const u = await api<{ name: string; cpuNs: number; memoryBytes: number }[]>('GET', '/v1/usage?names=a1');
    assert.equal(u.length, 1);
    assert.ok(u[0]!.memoryBytes > 0, 'memory read from the cgroup');
    const ps = await api<{ guest: string; vpid: number; user: string; args?: string }[]>(
      'GET',
      '/v1/processes?names=a1&args=true',
    );
    assert.ok(ps.length > 0 && ps.every((r) => r.guest === 'a1'), JSON.stringify(ps));
    assert.ok(
      ps.some((r) => r.vpid === 1 && r.user === 'root' && r.args),
      'its init, as root inside',
    );
    assert.equal((await d.request('GET', '/v1/processes?names=nosuch')).status, 404);
    fs.writeFileSync(t.path('hello.txt'), 'hello\n');
    assert.deepEqual(await api('POST', '/v1/copy', { src: t.path('hello.txt'), dst: 'a1:/root/hello.txt' }), {
      files: 1,
      direction: 'in',
    });
    assert.equal(
      (await api<{ stdout: string }>('POST', '/v1/guests/a1/exec', { cmd: ['cat', '/root/hello.txt'] }))
        .stdout,
      'hello\n',
    );
    const r2 = await api<{ pid: number }>('POST', '/v1/guests/a1/restart', { timeout: 5 });
    assert.notEqual(r2.pid, g.pid);
    const e = await api<{ reason: string }>('POST', '/v1/guests/a1/stop', { timeout: 5 });
    assert.equal(e.reason, 'stopped');
    // The supervisor's report of an exit: a run that is not the current one changes nothing.
    assert.deepEqual(await api('POST', '/v1/guests/a1/exited', { instance: 'not-this-run' }), { name: 'a1' });
    assert.equal((await api<{ status: string }>('GET', '/v1/guests/a1')).status, 'stopped');
    const logs = await api<{ events: string; eventsOffset: number }>('GET', '/v1/guests/a1/logs?lines=1');
    assert.match(logs.events, /^\S+Z stopped: stopped\b[^\n]*\n$/);
    const since = await api<{ events: string }>(
      'GET',
      `/v1/guests/a1/logs?eventsOffset=${logs.eventsOffset}`,
    );
    assert.equal(since.events, '', 'nothing new since');
    assert.equal(
      (await api<{ name: string }>('POST', '/v1/guests/a1/rename', { newName: 'a1r' })).name,
      'a1r',
    );
    assert.equal(
      (await api<{ name: string }>('POST', '/v1/guests/a1r/rename', { newName: 'a1' })).name,
      'a1',
    );
  });

  it('answers errors with the codes the CLI exits with', async () => {
    const r = await d.request('GET', '/v1/guests/nosuch');
    assert.equal(r.status, 404);
    assert.deepEqual(Object.keys((r.json as { error: object }).error).sort(), ['code', 'message']);
    assert.equal((r.json as { error: { code: string } }).error.code, 'not_found');
    const busy = await d.request('POST', '/v1/guests/a1/stop', {});
    assert.equal(busy.status, 409, 'stopping a stopped guest is a state conflict');
    // the same exit status through jaulad and without it
    assert.equal(t.jaula(['status', 'nosuch']).code, 4);
    assert.equal(t.jaula(['status', 'nosuch'], { env: { JAULA_NO_DAEMON: '1' } }).code, 4);
    assert.equal(t.jaula(['stop', 'a1']).code, 6);
  });

  it('cancels a job: what it made is removed', async () => {
    // A big template takes long enough to unpack that the cancel lands during the build.
    const big = t.path('big.tar');
    fs.mkdirSync(t.path('big'), { recursive: true });
    for (let i = 0; i < 20; i++) fs.writeFileSync(t.path('big', `f${i}`), Buffer.alloc(4 << 20, i));
    spawnSync('tar', ['-C', t.path('big'), '-cf', big, '.']);
    const job = await api<Job>(
      'POST',
      '/v1/guests',
      { name: 'c1', method: 'template', methodArgs: ['-t', big] },
      202,
    );
    await api<Job>('DELETE', `/v1/jobs/${job.id}`);
    const end = await waitJob(job.id);
    assert.equal(end.state, 'cancelled', JSON.stringify(end));
    assert.equal(fs.existsSync(t.path('etc/jaula/guests/c1')), false);
    assert.equal(fs.existsSync(t.path('var/lib/jaula/guests/c1')), false);
  });

  it('networks, doctor and the binding-trap check', async () => {
    const n = await api<{ name: string; up: boolean }>('POST', '/v1/networks', {
      name: 'apinet',
      subnet: '10.251.7.1/24',
    });
    assert.deepEqual([n.name, n.up], ['apinet', false]);
    assert.ok((await api<{ name: string }[]>('GET', '/v1/networks')).some((x) => x.name === 'apinet'));
    assert.deepEqual(await api('DELETE', '/v1/networks/apinet'), { deleted: 'apinet' });
    await api('POST', '/v1/networks/gc');
    await api('GET', '/v1/networks/check');
    const checks = await api<{ area: string }[]>('GET', '/v1/doctor');
    assert.ok(checks.some((c) => c.area === 'cgroups'));
    await api('GET', '/v1/doctor?security=true');
    const info = await api<{ engine: string; features: { jobs: boolean; hashify: boolean } }>(
      'GET',
      '/v1/info',
    );
    assert.equal(info.engine, 'remote');
    assert.deepEqual([info.features.jobs, info.features.hashify], [true, true]);
  });
});

describe('the event stream', () => {
  it('says hello with all guests, then reports changes made by jaulad, by other processes and by guests themselves', async () => {
    const es = new EventStream(d.socket);
    exercised.add('events');
    try {
      const hello = await es.waitFor('hello', (e) => e['type'] === 'hello');
      assert.deepEqual(
        (hello['guests'] as { name: string }[]).map((g) => g.name),
        ['a1'],
      );
      await api('POST', '/v1/guests/a1/start');
      await es.waitFor(
        'a1 running',
        (e) => e['type'] === 'guest' && (e['guest'] as { status: string }).status === 'running',
      );
      // A guest halting itself: its supervisor records it; jaulad notices the state file.
      const n = es.events.length;
      const reported = (): number => d.log.match(/POST \/v1\/guests\/a1\/exited -> 200/g)?.length ?? 0;
      const reportedBefore = reported();
      t.jaula(['exec', 'a1', '--', 'poweroff', '-f'], { env: { JAULA_NO_DAEMON: '1' } });
      const ev = await es.waitFor(
        'a1 stopped by itself',
        (e) =>
          es.events.indexOf(e) >= n &&
          e['type'] === 'guest' &&
          (e['guest'] as { status: string }).status === 'stopped',
      );
      assert.equal((ev['guest'] as { lastExit: { reason: string } }).lastExit.reason, 'halt');
      // Its supervisor handed the exit to jaulad (no `jaula __exited` process).
      await t.until('the exit reported to jaulad', () => reported() > reportedBefore);
      // A change made without jaulad (a CLI run with JAULA_NO_DAEMON=1).
      t.ok(['set', 'a1', '--hostname', 'changed'], { env: { JAULA_NO_DAEMON: '1' } });
      await es.waitFor(
        'a1 hostname',
        (e) => e['type'] === 'guest' && (e['guest'] as { hostname: string }).hostname === 'changed',
      );
      t.ok(['build', 'ev2', '-m', 'skeleton', '-q'], { env: { JAULA_NO_DAEMON: '1' } });
      await es.waitFor(
        'ev2 appears',
        (e) => e['type'] === 'guest' && (e['guest'] as { name: string }).name === 'ev2',
      );
      await api('DELETE', '/v1/guests/ev2');
      await es.waitFor('ev2 removed', (e) => e['type'] === 'guest-removed' && e['name'] === 'ev2');
    } finally {
      es.close();
    }
  });
});

describe('exec over the WebSocket', () => {
  /** One attach session; `input` is called at the start and again after every output chunk. */
  const attach = (name: string, mode: string, hello: object, input: (ws: WebSocket, out: string) => void) =>
    new Promise<{ out: string; code: number }>((resolve, reject) => {
      const ws = new WebSocket(`ws+unix:${d.socket}:/v1/guests/${name}/attach?mode=${mode}`);
      let out = '';
      ws.on('open', () => {
        ws.send(JSON.stringify(hello));
        input(ws, out);
      });
      ws.on('message', (m: Buffer, bin: boolean) => {
        if (bin) {
          out += m.subarray(1).toString();
          input(ws, out);
        } else {
          const x = JSON.parse(m.toString()) as { type: string; code: number; message?: string };
          if (x.type === 'exit') resolve({ out, code: x.code });
          else reject(new Error(x.message));
        }
      });
      ws.on('error', reject);
    });

  it('streams stdin and stdout and returns the exit status', async () => {
    exercised.add('attach');
    await api('POST', '/v1/guests/a1/start');
    const r = await attach(
      'a1',
      'exec',
      { cmd: ['/bin/sh', '-c', 'read x; echo "got $x"; exit 5'] },
      (ws, out) => {
        if (out) return;
        ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('ping\n')]));
        ws.send(JSON.stringify({ type: 'eof' }));
      },
    );
    assert.deepEqual(r, { out: 'got ping\n', code: 5 });
  });

  it('gives a pty inside the guest, sized and resized by the client', async () => {
    // Each step waits for the output of the one before: no timing.
    let step = 0;
    const r = await attach('a1', 'exec', { cmd: ['/bin/sh'], tty: true, rows: 30, cols: 100 }, (ws, out) => {
      const send = (s: string): void => void ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(s)]));
      if (step === 0) {
        step = 1;
        send('stty size; tty\n');
      } else if (step === 1 && /\/dev\/pts\/\d+/.test(out)) {
        step = 2;
        ws.send(JSON.stringify({ type: 'resize', rows: 40, cols: 120 }));
        send('stty size; exit 7\n');
      }
    });
    assert.equal(r.code, 7);
    assert.match(r.out, /30 100/);
    assert.match(r.out, /40 120/);
    assert.match(r.out, /\/dev\/pts\/\d+/, "the guest's own pty");
  });

  it('reports a guest that does not run', async () => {
    await assert.rejects(
      attach('nosuch', 'exec', { cmd: ['true'] }, () => {}),
      /There is no guest/,
    );
  });
});

describe('the CLI', () => {
  it('goes through jaulad when it answers, and works without it', () => {
    const via = t.jaula(['list'], { env: { JAULA_TRACE: '1' } });
    assert.match(via.stderr, /engine: jaulad at/);
    const local = t.jaula(['list'], { env: { JAULA_TRACE: '1', JAULA_NO_DAEMON: '1' } });
    assert.match(local.stderr, /engine: local/);
    assert.equal(via.stdout.split('\n')[1]?.split(/\s+/)[0], 'a1');
    assert.equal(JSON.parse(t.ok(['info', '--format', 'json']).stdout).engine, 'remote');
    assert.equal(t.sh('a1', 'echo $((6*7)); exit 4').code, 4);
    assert.equal(t.sh('a1', 'echo $((6*7))').stdout, '42\n');
    assert.equal(t.jaula(['exec', 'a1', '--', 'cat'], { input: 'through\n' }).stdout, 'through\n');
    assert.equal(t.jaula(['run', 'a1', '--', '/bin/true']).code, 6, 'one-shot needs a stopped guest');
  });

  it('uses the local engine when the socket is stale', async () => {
    // A socket path nobody listens on.
    const env = { JAULA_SOCKET: t.path('stale.sock'), JAULA_TRACE: '1' };
    fs.writeFileSync(t.path('stale.sock'), '');
    const r = t.jaula(['list'], { env });
    assert.equal(r.code, 0);
    assert.match(r.stderr, /engine: local/);
  });
});

describe('storage and limits through the API', () => {
  interface Done<T> extends Job {
    result?: T & { name: string };
  }
  /** Start a job, wait for its end, and return it (it must succeed). */
  async function job<T>(method: string, path: string, body: unknown): Promise<Done<T>> {
    const j = await api<Job>(method, path, body, 202);
    const done = (await waitJob(j.id)) as Done<T>;
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    return done;
  }
  /** Run the CLI and check that it went through jaulad (its trace says which engine it took). */
  const viaJaulad = (args: string[], opts: { cwd?: string } = {}): string => {
    const r = t.ok(args, { ...opts, env: { JAULA_TRACE: '1' } });
    assert.match(r.stderr, /engine: jaulad at/, `jaula ${args.join(' ')} went through jaulad`);
    return r.stdout;
  };

  it('gets and sets limits, live and saved; the CLI sets them through jaulad', async () => {
    t.buildSleeper('s1');
    await api('POST', '/v1/guests/s1/start');
    type Limits = {
      running: boolean;
      limits: { key: string; saved: string; live?: string; default: string }[];
    };
    const pids = (l: Limits) => l.limits.find((x) => x.key === 'pids.max');
    const l0 = await api<Limits>('GET', '/v1/guests/s1/limits');
    assert.equal(l0.running, true);
    assert.equal(pids(l0)?.saved, '');
    assert.equal(pids(l0)?.live, pids(l0)?.default);
    const r = await api<{ live: string[]; saved: boolean; changes: Record<string, string> }>(
      'PUT',
      '/v1/guests/s1/limits',
      { assignments: ['pids.max=123'] },
    );
    assert.deepEqual([r.live, r.saved, r.changes], [['pids.max'], false, { 'pids.max': '123' }]);
    const l1 = await api<Limits>('GET', '/v1/guests/s1/limits');
    assert.deepEqual([pids(l1)?.live, pids(l1)?.saved], ['123', '']);
    await api('PUT', '/v1/guests/s1/limits', { assignments: ['pids.max=200'], save: true });
    const l2 = await api<Limits>('GET', '/v1/guests/s1/limits');
    assert.deepEqual([pids(l2)?.live, pids(l2)?.saved], ['200', '200']);
    const bad = await d.request('PUT', '/v1/guests/s1/limits', { assignments: ['pids.max=lots'] });
    assert.equal(bad.status, 400, bad.text);
    viaJaulad(['set', 's1', 'pids.max=150']);
    const shown = JSON.parse(viaJaulad(['set', 's1', '--format', 'json'])) as Limits;
    assert.deepEqual([pids(shown)?.live, pids(shown)?.saved], ['150', '200']);
    await api('POST', '/v1/guests/s1/stop', { kill: true });
    const stopped = await d.request('PUT', '/v1/guests/s1/limits', { assignments: ['pids.max=99'] });
    assert.equal(stopped.status, 409, 'a stopped guest needs save');
  });

  it('clones a stopped guest as a job; refuses a running one', async () => {
    fs.writeFileSync(t.path('var/lib/jaula/guests/s1/upper/root/marker'), 'cloned\n');
    const c = await job<{ context: number; hostname: string }>('POST', '/v1/guests/s1/clone', { dst: 's2' });
    assert.equal(c.result?.name, 's2');
    assert.equal(c.result?.hostname, 's2');
    assert.ok(
      c.progress.some((l) => /Cloning guest "s1" to "s2"/.test(l)),
      c.progress.join('|'),
    );
    assert.equal(fs.readFileSync(t.path('var/lib/jaula/guests/s2/upper/root/marker'), 'utf8'), 'cloned\n');
    const s1 = await api<{ context: number }>('GET', '/v1/guests/s1');
    assert.notEqual(c.result?.context, s1.context);
    await api('POST', '/v1/guests/s1/start');
    const j = await api<Job>('POST', '/v1/guests/s1/clone', { dst: 's9' }, 202);
    const failed = await waitJob(j.id);
    assert.equal(failed.state, 'failed');
    assert.match(failed.error?.message ?? '', /is running: stop it first/);
    assert.equal(fs.existsSync(t.path('etc/jaula/guests/s9')), false);
    await api('POST', '/v1/guests/s1/stop', { kill: true });
    // The CLI clones through jaulad.
    viaJaulad(['clone', 's1', 's3', '-q']);
    const s3 = JSON.parse(t.jaula(['status', 's3', '--format', 'json']).stdout) as { status: string };
    assert.equal(s3.status, 'stopped');
  });

  it('takes, lists, restores (as a job) and deletes snapshots', async () => {
    const marker = t.path('var/lib/jaula/guests/s3/upper/root/marker');
    const s = await api<{ name: string; kind: string }>('POST', '/v1/guests/s3/snapshots', {});
    assert.equal(s.name, 'snap0');
    fs.writeFileSync(marker, 'changed\n');
    const list = await api<{ name: string }[]>('GET', '/v1/guests/s3/snapshots');
    assert.deepEqual(
      list.map((x) => x.name),
      ['snap0'],
    );
    const r = await job<{ restarted: boolean }>('POST', '/v1/guests/s3/snapshots/snap0/restore', {});
    assert.equal(r.result?.restarted, false);
    assert.equal(fs.readFileSync(marker, 'utf8'), 'cloned\n');
    const bad = await d.request('POST', '/v1/guests/s3/snapshots', { snapshot: 'snap0' });
    assert.equal(bad.status, 409, bad.text);
    assert.match(viaJaulad(['snapshot', 'list', 's3']), /snap0/);
    assert.deepEqual(await api('DELETE', '/v1/guests/s3/snapshots/snap0'), { deleted: 'snap0' });
  });

  it('saves, lists, exports, imports and deletes templates; export writes the archive whole', async () => {
    const saved = await job<{ files: number }>('POST', '/v1/templates', { name: 'tp1', guest: 's1' });
    assert.equal(saved.result?.name, 'tp1');
    assert.ok((saved.result?.files ?? 0) > 10);
    const list = await api<{ name: string; source: string }[]>('GET', '/v1/templates');
    assert.deepEqual(
      list.map((x) => [x.name, x.source]),
      [['tp1', 'guest s1']],
    );
    const file = t.path('tp1.tar.gz');
    const ex = await job('POST', '/v1/templates/tp1/export', { file });
    assert.deepEqual(ex.result, { name: 'tp1', file });
    const members = spawnSync('tar', ['-tzf', file], { encoding: 'utf8' }).stdout.split('\n');
    assert.ok(members.includes('./root/marker'), "the archive holds the guest's files");
    assert.deepEqual(
      fs.readdirSync(t.root).filter((n) => n.includes('.tmp-')),
      [],
      'no temporary archive is left',
    );
    const im = await job<{ source: string }>('POST', '/v1/templates/import', { file, name: 'tp2' });
    assert.equal(im.result?.source, `file ${file}`);
    const cli = JSON.parse(viaJaulad(['template', 'list', '--format', 'json'])) as { name: string }[];
    assert.deepEqual(
      cli.map((x) => x.name),
      ['tp1', 'tp2'],
    );
    assert.deepEqual(await api('DELETE', '/v1/templates/tp2'), { deleted: 'tp2' });
    const gone = await d.request('DELETE', '/v1/templates/tp2');
    assert.equal(gone.status, 404, gone.text);
    viaJaulad(['template', 'export', 'tp1', 'again.tar', '-q'], { cwd: t.root });
    assert.ok(fs.statSync(t.path('again.tar')).size > 0, "a relative path is the caller's");
    viaJaulad(['template', 'delete', 'tp1']);
    assert.deepEqual(await api('GET', '/v1/templates'), []);
  });

  it('backs a guest up to a file and restores it under another name (jobs); the CLI goes through jaulad', async () => {
    const file = t.path('s1.jaula');
    const b = await job<{ bytes: number; live: boolean }>('POST', '/v1/guests/s1/backup', { file });
    assert.equal(b.result?.live, false);
    assert.equal(fs.statSync(file).size, b.result?.bytes);
    const r = await job<{ name: string; context: number }>('POST', '/v1/restore', { file, name: 's7' });
    assert.equal(r.result?.name, 's7');
    assert.ok(fs.existsSync(t.path('etc/jaula/guests/s7/config.toml')));
    const bad = await api<Job>('POST', '/v1/restore', { file }, 202);
    assert.match((await waitJob(bad.id)).error?.message ?? '', /A guest named "s1" already exists here/);
    viaJaulad(['backup', 's7', '--to', 'again.jaula', '-q'], { cwd: t.root });
    assert.ok(fs.statSync(t.path('again.jaula')).size > 0, "a relative path is the caller's");
    viaJaulad(['delete', 's7']);
  });

  it('layers, a quota, a template by name, the pool and samples: what the CLI asks for them', async () => {
    await job('POST', '/v1/templates', { name: 'tpl', guest: 's1' });
    assert.equal((await api<{ name: string }>('GET', '/v1/templates/tpl')).name, 'tpl');
    await api('GET', '/v1/templates/nosuch', undefined, 404);
    const added = await api<{ layers: string[] }>('PATCH', '/v1/guests/s1/layers', { add: 'tpl' });
    assert.deepEqual(added.layers, ['tpl']);
    const rows = await api<{ what: string; name: string }[]>('GET', '/v1/guests/s1/layers');
    assert.deepEqual([rows[0]?.what, rows.at(-1)?.name], ['own', 'tpl']);
    viaJaulad(['layer', 'remove', 's1', 'tpl']);
    assert.deepEqual((await api<unknown[]>('GET', '/v1/guests/s1/layers')).length, rows.length - 1);
    await api('DELETE', '/v1/templates/tpl');
    await api('PUT', '/v1/guests/nosuchthing/quota', { bytes: null }, 404);
    // No pool here: guests exist, so ifAbsent makes none.
    assert.equal(await api('GET', '/v1/pool'), null);
    assert.equal((await job('POST', '/v1/pool', { ifAbsent: true })).result, null);
    await api('PATCH', '/v1/pool', { guestQuota: 1 << 30 }, 404);
    await api('DELETE', '/v1/pool', undefined, 404);
    await api('POST', '/v1/guests/s1/start');
    const samples = await api<{ name: string; cgroup: { pids: { current: number } } }[]>(
      'GET',
      '/v1/samples?names=s1&detail=true',
    );
    assert.equal(samples[0]?.name, 's1');
    assert.ok((samples[0]?.cgroup.pids.current ?? 0) >= 1);
    await api('POST', '/v1/guests/s1/stop', { kill: true });
  });

  it('hashify as a job (dry run first), then du shows what the guests share', async () => {
    type Report = { dryRun: boolean; guests: { name: string; result: string }[]; unified: { files: number } };
    const dry = await job<Report>('POST', '/v1/hashify', { guests: ['s1', 's2'], dryRun: true });
    assert.equal(dry.result?.dryRun, true);
    assert.deepEqual(
      dry.result?.guests.map((g) => g.result),
      ['would unify', 'would unify'],
    );
    const du0 = await api<{ guests: { name: string; sharedBytes: number }[] }>('GET', '/v1/du?names=s1,s2');
    assert.deepEqual(
      du0.guests.map((g) => [g.name, g.sharedBytes]),
      [
        ['s1', 0],
        ['s2', 0],
      ],
      'a dry run changes nothing',
    );
    const done = await job<Report>('POST', '/v1/hashify', { guests: ['s1', 's2'] });
    assert.ok(
      done.progress.some((l) => /^Scanned "s1"/.test(l)),
      done.progress.join('|'),
    );
    assert.ok((done.result?.unified.files ?? 0) > 0);
    const du = await api<{ guests: { name: string; sharedBytes: number }[]; totalBytes: number }>(
      'GET',
      '/v1/du',
    );
    for (const n of ['s1', 's2'])
      assert.ok((du.guests.find((g) => g.name === n)?.sharedBytes ?? 0) > 0, `${n} shares files`);
    const cli = JSON.parse(viaJaulad(['hashify', 's1', 's3', '--format', 'json'])) as Report;
    assert.equal(cli.dryRun, false);
    const viaCli = JSON.parse(viaJaulad(['du', 's1', '--format', 'json'])) as { guests: unknown[] };
    assert.equal(viaCli.guests.length, 1);
    for (const n of ['s1', 's2', 's3']) t.ok(['delete', n]);
  });
});

describe('images through the API', () => {
  it('imports, lists, inspects and deletes an image; a pull that cannot reach its registry fails as a job', async () => {
    const dir = ociLayout(t.path('api-image'), 'v1', [
      { layers: [layerTar([{ path: 'hello', data: 'hi\n' }])], config: { Cmd: ['/bin/sh'] } },
    ]);
    const j = await api<Job>('POST', '/v1/images/import', { file: dir, name: 'localhost/api:v1' }, 202);
    const done = await waitJob(j.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    const list = await api<{ ref: string; layers: unknown[] }[]>('GET', '/v1/images');
    assert.deepEqual(
      list.map((i) => [i.ref, i.layers.length]),
      [['localhost/api:v1', 1]],
    );
    const one = await api<{ cmd: string[] }>(
      'GET',
      `/v1/image?ref=${encodeURIComponent('localhost/api:v1')}`,
    );
    assert.deepEqual(one.cmd, ['/bin/sh']);
    await api('GET', '/v1/image?ref=localhost/nosuch:v1', undefined, 404);
    const p = await api<Job>('POST', '/v1/images/pull', { ref: '127.0.0.1:1/nothing:v1' }, 202);
    const failed = await waitJob(p.id);
    assert.equal(failed.state, 'failed');
    assert.match(failed.error?.message ?? '', /The registry "127\.0\.0\.1:1" could not be reached/);
    assert.deepEqual(await api('DELETE', '/v1/image?ref=localhost/api:v1'), {
      deleted: 'localhost/api:v1',
    });
    assert.deepEqual(await api('GET', '/v1/images'), []);
    const push = await api<Job>(
      'POST',
      '/v1/images/push',
      { source: 'nosuch', ref: '127.0.0.1:1/x:v1' },
      202,
    );
    const nosrc = await waitJob(push.id);
    assert.equal(nosrc.state, 'failed');
    assert.match(nosrc.error?.message ?? '', /There is no guest or stored template "nosuch" to push/);
  });
});

describe('TCP with TLS and a token', () => {
  it('serves the API and the dashboard on TLS, only with the token', async () => {
    const { cert, key } = selfSignedCert(t);
    fs.writeFileSync(t.path('token'), 'secret-token-0123456789\n', { mode: 0o600 });
    await d.stop();
    d = t.daemon([
      '--no-autostart',
      '--listen',
      '127.0.0.1:0',
      '--token-file',
      t.path('token'),
      '--tls-cert',
      cert,
      '--tls-key',
      key,
    ]);
    await d.ready();
    const info = (await d.request('GET', '/v1/info')).json as { daemon: { listen: string } };
    const p = Number(/and 127\.0\.0\.1:(\d+) \(TLS\)/.exec(d.log)?.[1]);
    assert.ok(p > 0, d.log);
    const get = (path: string, token?: string): Promise<{ status: number; text: string }> =>
      new Promise((resolve, reject) => {
        const req = httpsRequest(
          {
            host: '127.0.0.1',
            port: p,
            path,
            ca: fs.readFileSync(cert),
            servername: 'localhost',
            headers: token ? { authorization: `Bearer ${token}` } : {},
          },
          (res) => {
            let text = '';
            res.on('data', (c: Buffer) => (text += c.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          },
        );
        req.on('error', (e) => reject(new Error(`${path}: ${e.message}`)));
        req.end();
      });
    assert.equal(info.daemon.listen, '127.0.0.1:0');
    assert.equal((await get('/v1/guests')).status, 401);
    assert.equal((await get('/v1/guests', 'wrong-token-0123456789')).status, 401);
    const ok = await get('/v1/guests', 'secret-token-0123456789');
    assert.equal(ok.status, 200);
    assert.equal((JSON.parse(ok.text) as unknown[]).length, 1);
    // ?access_token= only where browsers cannot send a header (the event stream, the console).
    assert.equal((await get('/v1/guests?access_token=secret-token-0123456789')).status, 401);
    assert.equal((await get('/v1/events?job=x&access_token=secret-token-0123456789')).status, 404);
    const page = await get('/');
    assert.equal(page.status, 200, 'the dashboard page itself needs no token');
    assert.match(page.text, /<script/);
  });

  it('refuses plain HTTP on an address other than loopback, and TCP without a token', () => {
    const run = (args: string[]) =>
      spawnSync(process.execPath, [d.proc.spawnargs[1] as string, ...args], {
        env: { ...t.env, JAULA_ROOT: t.path('other') },
        encoding: 'utf8',
        timeout: 20_000,
      });
    const a = run(['--listen', '0.0.0.0:7999', '--token-file', t.path('token')]);
    assert.equal(a.status, 2);
    assert.match(a.stderr, /--tls-cert/);
    const b = run(['--listen', '127.0.0.1:7999']);
    assert.equal(b.status, 2);
    assert.match(b.stderr, /--token-file/);
  });
});

describe('reconcile', () => {
  it('after a host reboot (a new boot_id) starts the guests marked "default" that ran, dependencies first', async () => {
    await d.stop();
    t.buildSleeper('rb1', ['--mark', 'default']);
    t.buildSleeper('rb0');
    t.ok(['set', 'rb1', '--depends', 'rb0']);
    // What the previous boot left: the boot jaula saw, rb1 marked as running in it, and its
    // state (which /run would not keep).
    fs.mkdirSync(t.path('var/lib/jaula/running'), { recursive: true });
    fs.writeFileSync(t.path('var/lib/jaula/boot_id'), 'a-boot-before\n');
    fs.writeFileSync(t.path('var/lib/jaula/running/rb1'), 'a-boot-before\n');
    fs.mkdirSync(t.path('run/jaula/guests/rb1'), { recursive: true });
    fs.writeFileSync(
      t.path('run/jaula/guests/rb1/state.json'),
      JSON.stringify({
        status: 'running',
        pid: 999999,
        pidStart: 1,
        bootId: 'a-boot-before',
        startedAt: new Date().toISOString(),
      }),
    );
    d = t.daemon([]);
    await d.ready({ reconciled: true });
    const info = (await d.request('GET', '/v1/info')).json as {
      daemon: { reconcile: { hostRebooted: boolean; autostarted: string[] } };
    };
    assert.equal(info.daemon.reconcile.hostRebooted, true);
    assert.deepEqual(info.daemon.reconcile.autostarted.sort(), ['rb0', 'rb1']);
    const st = (n: string) =>
      JSON.parse(t.ok(['status', n, '--format', 'json']).stdout) as { status: string; startedAt: string };
    assert.equal(st('rb1').status, 'running');
    assert.ok(Date.parse(st('rb0').startedAt) <= Date.parse(st('rb1').startedAt), 'the dependency first');
    assert.equal(
      fs.readFileSync(t.path('var/lib/jaula/boot_id'), 'utf8').trim(),
      fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
    );
    t.ok(['stop', '--all']);
  });

  it('joins a fleet on etcd, lists its hosts and guests, and leaves it', async () => {
    const etcd = await loopbackEtcd(t);
    try {
      assert.equal((await api<{ state: string }>('GET', '/v1/fleet')).state, 'none');
      await api('GET', '/v1/fleet/hosts', undefined, 409);
      const s = await api<{ state: string; host: string }>('POST', '/v1/fleet', {
        endpoints: [etcd.url],
        create: true,
        host: 'api1',
        ttl: 3,
      });
      assert.equal(s.host, 'api1');
      const hosts = await api<{ host: string }[]>('GET', '/v1/fleet/hosts');
      assert.deepEqual(
        hosts.map((h) => h.host),
        ['api1'],
      );
      // One host, no HA guest: this host leads, no replica, no failover.
      const ha = await api<{ leader?: string; replicas: unknown[]; failovers: unknown[] }>(
        'GET',
        '/v1/fleet/ha',
      );
      assert.deepEqual([ha.replicas, ha.failovers], [[], []]);
      assert.ok(ha.leader === undefined || ha.leader === 'api1', JSON.stringify(ha));
      const guests = await api<{ host: string; name: string }[]>('GET', '/v1/fleet/guests');
      assert.ok(guests.length > 0 && guests.every((g) => g.host === 'api1'), JSON.stringify(guests));
      // Fleet-wide processes and counters: this host alone answers (its running guests'), none missing.
      const ps = await api<{ hosts: { host: string; rows: unknown[] }[]; missing: unknown[] }>(
        'GET',
        '/v1/fleet/processes',
      );
      assert.deepEqual(
        ps.hosts.map((h) => h.host),
        ['api1'],
      );
      assert.deepEqual(ps.missing, []);
      const sm = await api<{ hosts: { host: string; samples: { name: string }[] }[] }>(
        'GET',
        '/v1/fleet/samples',
      );
      assert.deepEqual(
        sm.hosts.map((h) => h.host),
        ['api1'],
      );
      // A drain with no other host: the job fails, saying so, and nothing moves.
      const d = await api<{ id: string }>('POST', '/v1/fleet/drain', { mode: 'sync' }, 202);
      const drained = await waitJob(d.id);
      assert.equal(drained.state, 'failed');
      assert.match(drained.error?.message ?? '', /No host to drain "api1" to: no other host is up/);
      // Balance, alone in the fleet: nothing to plan.
      const b = await api<{ id: string }>('POST', '/v1/fleet/balance', { dryRun: true }, 202);
      const balanced = await waitJob(b.id);
      assert.equal(balanced.state, 'succeeded');
      assert.deepEqual((balanced.result as unknown as { planned: unknown[] }).planned, []);
      await api('DELETE', '/v1/fleet', undefined, 409); // it owns guests
      await api('DELETE', '/v1/fleet?force=true');
      assert.equal((await api<{ state: string }>('GET', '/v1/fleet')).state, 'none');
    } finally {
      await etcd.stop();
    }
  });

  it('remotes, moves and the peer routes: checked before anything is made (moves themselves: tests/migrate*.test.ts)', async () => {
    assert.deepEqual(await api('GET', '/v1/remotes'), []);
    await api(
      'POST',
      '/v1/remotes',
      { name: 'r1', url: 'https://127.0.0.1:1', tokenFile: t.path('nosuch') },
      404,
    );
    await api('POST', '/v1/remotes', { name: 'r1', url: 'ftp://x', tokenFile: t.path('nosuch') }, 400);
    await api('DELETE', '/v1/remotes/r1', undefined, 404);
    const j = await api<{ id: string }>('POST', '/v1/guests/s1/migrate', { remote: 'r1', mode: 'cold' }, 202);
    const done = await waitJob(j.id);
    assert.equal(done.state, 'failed');
    assert.match(done.error?.message ?? '', /no remote "r1"/);
    assert.deepEqual(await api('GET', '/v1/moves'), []);
    const begin = { id: 'abcdefgh12', source: 'x', running: false, mode: 'cold', bytes: 1, layers: [] };
    await api('POST', '/v1/peer/moves', { ...begin, config: 'not toml [' }, 400);
    // An HA replica round is taken only inside a fleet, from the guest's owner.
    const any = fs
      .readdirSync(t.path('etc/jaula/guests'))
      .find((n) => fs.existsSync(t.path('etc/jaula/guests', n, 'config.toml')));
    assert.ok(any, 'some guest exists');
    const cfg = fs
      .readFileSync(t.path('etc/jaula/guests', any, 'config.toml'), 'utf8')
      .replace(/^name = .*$/m, 'name = "rep1"');
    const rep = await api<{ error: { message: string } }>(
      'POST',
      '/v1/peer/moves',
      { ...begin, mode: 'replica', config: cfg },
      409,
    );
    assert.match(JSON.stringify(rep), /in no fleet/);
    await api('PUT', '/v1/peer/moves/abcdefgh12/parts/own?offset=0', undefined, 404);
    await api('POST', '/v1/peer/moves/abcdefgh12/apply', { part: 'own' }, 404);
    await api('POST', '/v1/peer/moves/abcdefgh12/commit', { start: true }, 404);
    await api('POST', '/v1/peer/moves/abcdefgh12/replica', { asOf: new Date().toISOString() }, 404);
    assert.deepEqual(await api('GET', '/v1/peer/moves/abcdefgh12'), { phase: 'none' });
    assert.deepEqual(await api('DELETE', '/v1/peer/moves/abcdefgh12', {}), { phase: 'none' });
    assert.equal(
      fs.existsSync(t.path('var/lib/jaula/moves/abcdefgh12')),
      false,
      'nothing staged for an unknown move',
    );
  });

  it('exercised every documented operation', () => {
    const all = Object.values(doc.paths).flatMap((ops) => Object.values(ops).map((o) => o.operationId));
    assert.deepEqual(
      all.filter((o) => !exercised.has(o)),
      [],
    );
  });
});
