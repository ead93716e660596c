/**
 * A guest against its host (issue 18): what a guest controls (its output, its files' xattrs, its
 * processes' /proc entries, its console, its sysinfo(2) calls) must not let it hurt the host, nor
 * may anyone but root use its supervisor's sockets. Each test does what such a guest does,
 * through the real path: jaulad's exec and console WebSocket, hashify, jaula ps, the supervisor.
 * The guests run native/out/jaula-hostile-tool (tests/hostile/guest-tool.c). The last parts run
 * the supervisor with a stand-in for the OCI runtime (a script): a real runtime never writes that
 * much on its stderr nor passes a file for a console, and what the supervisor does then is what
 * is tested.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { defaultMemoryLimit } from '../src/cgroups/limits.js';
import { Jaulad, TestRoot, jaulaBin, projectDir, writeScript } from './helpers.js';

const t = new TestRoot('jaula-hostile-');
after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

const TOOL = join(projectDir, 'native/out/jaula-hostile-tool');
const HELPER = join(projectDir, 'native/out/jaula-helper');
const INIT = join(projectDir, 'native/out/jaula-init');
const v2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
const MiB = 2 ** 20;
const GiB = 2 ** 30;
/**
 * jaulad's resident memory stays under this while guests print 1 GiB through exec and through
 * the console, to a client that reads and to one that does not (its idle RSS is 60 to 70 MiB).
 */
const JAULAD_RSS_BOUND = 160 * MiB;

before(() => {
  if (
    !fs.existsSync(TOOL) ||
    fs.statSync(TOOL).mtimeMs < fs.statSync(join(projectDir, 'tests/hostile/guest-tool.c')).mtimeMs
  ) {
    const r = spawnSync('make', ['-s', '-C', join(projectDir, 'native'), 'out/jaula-hostile-tool'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `building the tool failed: ${r.stderr}`);
  }
});

/** A sleeper guest with the tool at /jt (written into its own tree before it starts). */
function toolGuest(name: string, extra: string[] = []): void {
  t.buildSleeper(name, extra);
  fs.copyFileSync(TOOL, join(t.guestRoot(name), 'jt'));
  fs.chmodSync(join(t.guestRoot(name), 'jt'), 0o755);
}

/** A cmd guest running a script written into its tree. */
function scriptGuest(name: string, script: string): void {
  t.ok(['build', name, '-m', 'skeleton', '-q', '--initstyle', 'cmd', '--cmd', '/bin/sh /job']);
  writeScript(join(t.guestRoot(name), 'job'), `#!/bin/sh\n${script}\n`);
  fs.copyFileSync(TOOL, join(t.guestRoot(name), 'jt'));
  fs.chmodSync(join(t.guestRoot(name), 'jt'), 0o755);
}

const procStatus = (pid: number, field: string): number =>
  Number(
    new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1],
  ) * 1024;
const procIo = (pid: number): Record<string, number> =>
  Object.fromEntries(
    fs
      .readFileSync(`/proc/${pid}/io`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => [l.split(':')[0] as string, Number(l.split(':')[1])]),
  );
const shimPid = (name: string): number => Number(t.state(name)['shimPid']);
/** A process of a cgroup whose command line holds `text` (0: none yet); processes end meanwhile. */
function findProcess(procsFile: string, text: string): number {
  for (const p of fs.readFileSync(procsFile, 'utf8').split('\n').filter(Boolean)) {
    try {
      if (fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(text)) return Number(p);
    } catch {
      /* gone */
    }
  }
  return 0;
}
const sysinfoOf = (out: string): Record<string, number> =>
  Object.fromEntries(
    out
      .trim()
      .split(' ')
      .map((kv) => [kv.split('=')[0], Number(kv.split('=')[1])]),
  );

/** A process's cgroup directory for a controller (v1), or its v2 directory. */
function cgroupDir(pid: number, ctrl: string): string {
  const lines = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  if (v2) return `/sys/fs/cgroup${lines.find((l) => l.startsWith('0::'))?.slice(3)}`;
  const line = lines.find((l) => l.split(':')[1]?.split(',').includes(ctrl));
  assert.ok(line, `process ${pid} is in a ${ctrl} cgroup`);
  const mnt =
    ctrl === 'cpu' || ctrl === 'cpuacct'
      ? fs.realpathSync(`/sys/fs/cgroup/${ctrl}`)
      : `/sys/fs/cgroup/${ctrl}`;
  return `${mnt}${line.split(':')[2]}`;
}

describe('a guest against hashify: xattrs padded past what listxattr(2) returns', () => {
  before(() => {
    // The guests' files on tmpfs, which (like XFS and btrfs, unlike ext4) takes more xattr
    // names than listxattr(2) can return.
    const lib = t.path('var/lib/jaula');
    fs.mkdirSync(lib, { recursive: true });
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1g,mode=0755', `jaula-${t.tag}`, lib], {
      encoding: 'utf8',
    });
    assert.equal(m.status, 0, m.stderr);
    t.onCleanup(() => void spawnSync('umount', [lib]));
  });

  it("never shares a padded file: its hidden security.capability cannot reach another guest's twin", () => {
    // /usr/x in both guests, and /usr/y (other content) in both: twins each.
    const same =
      'head -c 8192 /bin/busybox > /usr/x && tail -c 8192 /bin/busybox > /usr/y && chmod 755 /usr/x /usr/y';
    for (const g of ['ha', 'hb']) {
      toolGuest(g);
      t.ok(['start', g]);
      assert.equal(
        t.sh(g, `${same} && touch -d "2020-01-01 00:00:00" /usr/x /usr/y && echo ok`).stdout.trim(),
        'ok',
      );
    }
    // ha pads /usr/x with 401 long user.* names, then adds user.hidden and a file capability.
    const pad = t.sh('ha', '/jt xattr-pad /usr/x 401 && touch -d "2020-01-01 00:00:00" /usr/x');
    assert.match(pad.stdout, /^padded 401, capability set$/m, pad.stdout + pad.stderr);
    assert.equal(t.sh('ha', '/jt xattrs /usr/x').stdout.trim(), 'E2BIG');
    t.ok(['stop', 'ha', 'hb']);
    t.ok(['hashify', 'ha', 'hb']);
    const ino = (g: string, p: string): number => {
      for (const layer of ['unified', 'upper']) {
        const f = t.path('var/lib/jaula/guests', g, layer, p);
        if (fs.existsSync(f)) return fs.statSync(f).ino;
      }
      throw new Error(`${g}: no ${p}`);
    };
    // The control: the twin without xattrs is shared (hashify works on these guests).
    assert.equal(ino('ha', 'usr/y'), ino('hb', 'usr/y'), '/usr/y is one inode');
    assert.notEqual(ino('ha', 'usr/x'), ino('hb', 'usr/x'), "hb's /usr/x is not ha's padded inode");
    t.ok(['start', 'hb']);
    assert.equal(t.sh('hb', '/jt xattrs /usr/x').stdout.trim(), 'count=0', 'hb sees no xattr of ha');
    for (const g of ['ha', 'hb']) t.ok(['delete', '--force', g]);
  });
});

describe('a guest printing without end, against jaulad', () => {
  let d: Jaulad;
  before(async () => {
    toolGuest('out1');
    t.ok(['start', 'out1']);
    d = t.daemon(['--no-autostart']);
    await d.ready({ reconciled: true });
    idle = procStatus(d.pid, 'VmRSS');
  });
  let idle = 0;
  after(async () => {
    await d.stop();
    t.jaula(['delete', '--force', 'out1']);
  });

  /** Fails as soon as jaulad's resident memory passes the bound (or jaulad is gone). */
  const checkRss = (what: string): number => {
    assert.ok(d.alive, `${what}: jaulad lives (${d.log.slice(-500)})`);
    const hwm = procStatus(d.pid, 'VmHWM');
    assert.ok(hwm < JAULAD_RSS_BOUND, `${what}: jaulad's peak RSS ${(hwm / MiB).toFixed(0)} MiB`);
    return hwm;
  };
  /** (the numbers, shown by the spec reporter) */
  const report = (ctx: { diagnostic: (s: string) => void }, what: string): void =>
    ctx.diagnostic(
      `${what}: jaulad RSS ${(procStatus(d.pid, 'VmRSS') / MiB).toFixed(1)} MiB, peak ${(checkRss(what) / MiB).toFixed(1)} MiB (bound ${JAULAD_RSS_BOUND / MiB} MiB)`,
    );

  it('exec: 1 GiB of output comes back cut to 1 MiB, saying how much was dropped; jaulad stays under its bound', async (ctx) => {
    ctx.diagnostic(`idle: jaulad RSS ${(idle / MiB).toFixed(1)} MiB`);
    const r = await d.request('POST', '/v1/guests/out1/exec', {
      cmd: ['dd', 'if=/dev/zero', 'bs=1M', 'count=1024'],
    });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    const j = r.json as { code: number; stdout: string; dropped?: { stdout: number; stderr: number } };
    assert.equal(j.code, 0, 'the command ran to its end');
    assert.equal(j.stdout.length, MiB);
    assert.deepEqual(j.dropped, { stdout: GiB - MiB, stderr: 0 });
    report(ctx, '1 GiB through exec');
  });

  /** A console session (tty) through jaulad's attach WebSocket. */
  function consoleSession(
    cmd: string[],
    onOutput?: (n: number) => void,
  ): { ws: WebSocket; exit: Promise<number> } {
    const ws = new WebSocket(`ws+unix:${d.socket}:/v1/guests/out1/attach?mode=exec`);
    const exit = new Promise<number>((resolve, reject) => {
      ws.on('open', () => ws.send(JSON.stringify({ cmd, tty: true, rows: 24, cols: 80 })));
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) onOutput?.(data[0] === 1 ? data.length - 1 : 0);
        else {
          const m = JSON.parse(data.toString()) as { type: string; code?: number; message?: string };
          if (m.type === 'exit') resolve(Number(m.code));
          else reject(new Error(m.message));
        }
      });
      ws.on('error', reject);
    });
    return { ws, exit };
  }

  it('console: 1 GiB through a console WebSocket reaches a client that reads it; jaulad stays under its bound', async (ctx) => {
    let got = 0;
    const s = consoleSession(['sh', '-c', 'dd if=/dev/zero bs=1M count=1024 2>/dev/null'], (n) => (got += n));
    assert.equal(await s.exit, 0, 'the command ended well');
    assert.equal(got, GiB, 'every byte arrived');
    s.ws.close();
    report(ctx, '1 GiB through the console');
  });

  it('console: a client that takes nothing holds the guest back, not more of jaulad', async (ctx) => {
    const s = consoleSession(['sh', '-c', 'dd if=/dev/zero bs=64k count=16384 2>/dev/null']);
    s.exit.catch(() => {});
    await new Promise<void>((r) => s.ws.once('open', () => r()));
    s.ws.pause(); // takes nothing more
    // The guest's writer, seen from the host: its writes must come to wait (the old jaulad took
    // them all, and grew by as much), with jaulad under its bound all along.
    const procs = join(cgroupDir(Number(t.state('out1')['pid']), 'memory'), 'cgroup.procs');
    let dd = 0;
    // (busybox sh may run dd itself, without a process of its own)
    await t.until('the guest to print', () => (dd = findProcess(procs, 'count=16384')) > 0);
    let written = -1;
    let since = Date.now();
    await t.until(
      "the guest's writes to wait",
      () => {
        checkRss('a console client that does not read');
        const w = procIo(dd)['wchar'] as number;
        if (w !== written) [written, since] = [w, Date.now()];
        return Date.now() - since > 1000;
      },
      60_000,
    );
    assert.ok(written < 32 * MiB, `the guest printed ${(written / MiB).toFixed(1)} MiB, then had to wait`);
    ctx.diagnostic(
      `a console client taking nothing: the guest printed ${(written / MiB).toFixed(1)} MiB, then waited`,
    );
    report(ctx, 'a console client taking nothing');
    s.ws.terminate();
  });
});

describe('a guest against jaula ps: a command line of 5 MiB', () => {
  it('ps --args reads only its first 64 KiB and says it is cut', async () => {
    toolGuest('ps1');
    t.ok(['start', 'ps1']);
    // 40 arguments of 128 kB (the most one may have; 6 MiB in all at most), the stack limit lifted.
    t.ok([
      'exec',
      'ps1',
      '--',
      'sh',
      '-c',
      'ulimit -s unlimited; a=$(head -c 131000 /dev/zero | tr "\\0" a); set --; i=0; ' +
        'while [ $i -lt 40 ]; do set -- "$@" "$a"; i=$((i+1)); done; ' +
        'exec /bin/sh -c "sleep 100000; :" "$@" </dev/null >/dev/null 2>&1 &',
    ]);
    let row: { command: string; args?: string } | undefined;
    await t.until('the long command line to show', () => {
      const rows = JSON.parse(t.ok(['ps', 'ps1', '--args', '--format', 'json']).stdout) as {
        command: string;
        args?: string;
      }[];
      row = rows.find((r) => r.args?.startsWith('/bin/sh -c sleep 100000; : aaa'));
      return row !== undefined;
    });
    const args = row?.args ?? '';
    assert.ok(args.length <= 64 * 1024 + 10, `${args.length} characters of arguments`);
    assert.ok(args.endsWith(' [...]'), 'it says the command line is cut');
    t.ok(['delete', '--force', 'ps1']);
  });
});

describe('a guest against its supervisor', () => {
  before(() => {
    toolGuest('sv1');
    t.ok(['set', 'sv1', 'memory.max=256M', '--save']);
    t.ok(['start', 'sv1']);
  });
  after(() => void t.jaula(['delete', '--force', 'sv1']));

  it("sysinfo(2) gives a 32-bit caller the guest's memory, not the host's", () => {
    assert.equal(sysinfoOf(t.sh('sv1', '/jt sysinfo').stdout).ram, 256 * MiB);
    const r = t.sh('sv1', '/jt sysinfo32');
    assert.equal(sysinfoOf(r.stdout).ram, 256 * MiB, r.stdout + r.stderr);
  });

  it("sysinfo(2) gives a process in a sub-cgroup without a limit of its own the guest's limit", async () => {
    const guestMem = cgroupDir(Number(t.state('sv1')['pid']), 'memory');
    const sub = join(guestMem, 'sub');
    fs.mkdirSync(sub);
    try {
      const waiting = t.jaulaAsync(['exec', 'sv1', '--', '/jt', 'wait-sysinfo', '/tmp/go']);
      let pid = 0;
      await t.until(
        'the waiting process',
        () => (pid = findProcess(join(guestMem, 'cgroup.procs'), 'wait-sysinfo')) > 0,
      );
      fs.writeFileSync(join(sub, 'cgroup.procs'), String(pid)); // (as a guest's own systemd would)
      t.sh('sv1', 'touch /tmp/go');
      const r = await waiting;
      assert.equal(sysinfoOf(r.stdout).ram, 256 * MiB, `from a sub-cgroup: ${r.stdout}${r.stderr}`);
    } finally {
      await t.until(
        'the sub-cgroup to empty',
        () => fs.readFileSync(join(sub, 'cgroup.procs'), 'utf8') === '',
      );
      fs.rmdirSync(sub);
    }
  });

  it('answers at most 500 sysinfo(2) calls a second, reading little for each', () => {
    const shim = shimPid('sv1');
    const io0 = procIo(shim);
    const r = t.sh('sv1', '/jt sysinfo-loop 2');
    const io1 = procIo(shim);
    const m = /calls=(\d+) ms=(\d+)/.exec(r.stdout);
    assert.ok(m, r.stdout + r.stderr);
    const calls = Number(m[1]);
    const ms = Number(m[2]);
    assert.ok(calls >= 100, `${calls} calls answered`);
    assert.ok(
      calls <= 500 + (500 * ms * 1.1) / 1000,
      `${calls} calls in ${ms} ms: at most 500 and 500 a second`,
    );
    const perCall = ((io1['rchar'] as number) - (io0['rchar'] as number)) / calls;
    assert.ok(perCall < 4096, `the supervisor read ${perCall.toFixed(0)} bytes per answer`);
  });
});

describe('a guest flooding its console', () => {
  it('costs its supervisor, which works from a cgroup of its own with small limits, still answers, and records the exit', async () => {
    scriptGuest('fl', 'exec cat /dev/zero');
    t.ok(['start', 'fl']);
    const shim = shimPid('fl');
    const mem = cgroupDir(shim, 'memory');
    assert.match(mem, /\/\.supervisor-fl$/, 'the supervisor is in its own memory cgroup');
    const cpu = cgroupDir(shim, v2 ? '' : 'cpuacct');
    assert.match(cpu, /\/\.supervisor-fl$/, 'and cpu accounting');
    const read = (d: string, f: string): string => fs.readFileSync(join(d, f), 'utf8').trim();
    assert.equal(read(mem, v2 ? 'memory.max' : 'memory.limit_in_bytes'), String(32 * MiB));
    assert.equal(read(cgroupDir(shim, 'pids'), 'pids.max'), '16');
    assert.equal(
      read(cgroupDir(shim, 'cpu'), v2 ? 'cpu.max' : 'cpu.cfs_quota_us'),
      v2 ? '20000 100000' : '20000',
    );
    const used = (): number =>
      v2
        ? Number(/usage_usec (\d+)/.exec(read(cpu, 'cpu.stat'))?.[1]) * 1000
        : Number(read(cpu, 'cpuacct.usage'));
    await t.until("the console's copy charged to the supervisor's cgroup", () => used() > 20e6);
    const si = sysinfoOf(t.sh('fl', '/jt sysinfo').stdout);
    assert.equal(si.ram, defaultMemoryLimit(totalmem()), 'sysinfo(2) is answered during the flood');
    // (console.log is missing for a moment while the supervisor rotates it)
    for (const f of ['console.log', 'console.log.1']) {
      const size = fs.statSync(t.path('run/jaula/guests/fl', f), { throwIfNoEntry: false })?.size ?? 0;
      assert.ok(size <= MiB, `${f} stays within 1 MiB`);
    }
    t.ok(['stop', 'fl']);
    const st = JSON.parse(t.jaula(['status', 'fl', '--format', 'json']).stdout) as {
      lastExit?: { reason: string };
    };
    assert.equal(st.lastExit?.reason, 'stopped');
    assert.ok(!fs.existsSync(mem), "the supervisor's cgroup is gone with it");
    t.ok(['delete', 'fl']);
  });
});

describe("the supervisor's sockets", () => {
  before(() => {
    toolGuest('sk');
    // Started with umask 0: what the supervisor makes must not depend on its caller's umask.
    const r = spawnSync('sh', ['-c', `umask 0; exec "${process.execPath}" "${jaulaBin}" start sk`], {
      env: t.env,
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
  });
  after(() => void t.jaula(['delete', '--force', 'sk']));
  const sock = (): string => t.path('run/jaula/guests/sk/seccomp.sock');

  it("are root's only, whatever umask the guest was started with", () => {
    assert.equal(fs.statSync(sock()).mode & 0o077, 0, (fs.statSync(sock()).mode & 0o777).toString(8));
  });

  it('a connection that sends nothing does not stop the supervisor', async () => {
    const silent = net.createConnection(sock());
    try {
      await new Promise<void>((r) => silent.once('connect', () => r()));
      // The exec's process gets its seccomp listener to the supervisor behind the silent one.
      const r = await Promise.race([
        t.jaulaAsync(['exec', 'sk', '--', '/jt', 'sysinfo']),
        new Promise<{ code: number; stdout: string; stderr: string }>((res) =>
          setTimeout(() => res({ code: -1, stdout: '', stderr: 'no answer within 30 s' }), 30_000).unref(),
        ),
      ]);
      assert.equal(r.code, 0, `sysinfo(2) is answered: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /^ram=\d+/);
    } finally {
      silent.destroy();
    }
  });

  it('takes nothing from a process that is not root', () => {
    const dir = t.path('run/jaula/guests/sk');
    const connect = (): ReturnType<typeof spawnSync> =>
      spawnSync(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', '--', TOOL, 'connect', 'seccomp.sock'],
        {
          cwd: dir,
          encoding: 'utf8',
        },
      );
    // The barrier (the guest's run directory, 0700 or 0710) keeps it from the socket at all.
    const barred = connect();
    assert.match(
      String(barred.stdout) + String(barred.stderr),
      /Permission denied/,
      'the barrier stops it first',
    );
    // Behind a weakened barrier and a socket left open (as a caller's umask 0 once left it), the
    // supervisor itself refuses the peer.
    const mode = fs.statSync(dir).mode & 0o7777;
    fs.chmodSync(dir, mode | 0o001);
    fs.chmodSync(sock(), 0o777);
    try {
      const r = connect();
      assert.match(String(r.stdout), /^closed after \d+ ms$/m, String(r.stdout) + String(r.stderr));
    } finally {
      fs.chmodSync(dir, mode);
    }
    const log = fs.readFileSync(t.path('var/log/jaula/sk.log'), 'utf8');
    assert.match(log, /refused a connection to the seccomp socket from uid 65534/);
  });
});

describe('the supervisor, with a runtime that misbehaves (a stand-in script)', () => {
  /**
   * Run the supervisor with a stand-in runtime (`body`, a shell script run as `runtime run
   * --detach --bundle . --pid-file ../init.pid --console-socket ../console.sock ID`), in a
   * directory on a small tmpfs (so that a test can fill it). Its exit command records its
   * signals. OUT in the script is a directory beside it.
   */
  function fakeShim(name: string, body: string) {
    const dir = t.path(`fake-${name}`);
    const out = t.path(`fake-${name}-out`);
    fs.mkdirSync(dir, { recursive: true });
    fs.mkdirSync(out, { recursive: true });
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', `jaula-${t.tag}`, dir], {
      encoding: 'utf8',
    });
    assert.equal(m.status, 0, m.stderr);
    t.onCleanup(() => void spawnSync('umount', ['-l', dir]));
    fs.mkdirSync(join(dir, 'bundle'));
    const runtime = join(out, 'runtime');
    writeScript(
      runtime,
      `#!/bin/sh\nOUT=${out}\ngrep -E '^Sig(Ign|Blk)' /proc/self/status > $OUT/runtime-signals\numask > $OUT/runtime-umask\n${body}\n`,
    );
    const exitCmd = `grep -E '^Sig(Ign|Blk)' /proc/self/status > ${out}/exit-signals`;
    const shim = spawn(
      HELPER,
      [
        'shim',
        '--dir',
        dir,
        '--id',
        name,
        '--runtime',
        '/bin/sh',
        runtime,
        '--exit',
        '/bin/sh',
        '-c',
        exitCmd,
      ],
      { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] },
    );
    const s = {
      dir,
      out,
      shim,
      said: '',
      errors: '',
      ended: new Promise<void>((r) => shim.on('exit', () => r())),
    };
    (shim.stdio[3] as NodeJS.ReadableStream).on('data', (b: Buffer) => (s.said += b.toString()));
    shim.stderr?.on('data', (b: Buffer) => (s.errors += b.toString()));
    return s;
  }
  /** The stand-in's guest init: a sleep it leaves behind (the supervisor, a subreaper, takes it). */
  const INIT = '/bin/sleep 100000 </dev/null >/dev/null 2>&1 &\necho $! > ../init.pid';
  const end = async (s: ReturnType<typeof fakeShim>): Promise<void> => {
    fs.writeFileSync(join(s.out, 'go'), ''); // (a stand-in waiting for it ends by itself)
    const init = Number(/^ok (\d+)/.exec(s.said)?.[1]);
    if (init > 0) spawnSync('kill', ['-KILL', String(init)]);
    await Promise.race([s.ended, new Promise((r) => setTimeout(r, 5000))]);
    s.shim.kill('SIGKILL');
  };

  it("does not spin once the runtime's stderr passes its buffer, and keeps its end", async () => {
    const s = fakeShim(
      'spin',
      `head -c 20000 /dev/zero | tr '\\0' e >&2\necho " the end" >&2\ntouch $OUT/written\n` +
        `while [ ! -e $OUT/go ]; do sleep 0.02; done\nexit 1`,
    );
    try {
      await t.until('the runtime to write its stderr', () => fs.existsSync(join(s.out, 'written')));
      const io0 = procIo(s.shim.pid as number);
      await new Promise((r) => setTimeout(r, 300)); // (a window to count the supervisor's reads in)
      const reads = (procIo(s.shim.pid as number)['syscr'] as number) - (io0['syscr'] as number);
      assert.ok(reads < 100, `the supervisor made ${reads} reads in 300 ms while the runtime waited`);
      fs.writeFileSync(join(s.out, 'go'), '');
      await s.ended;
      assert.match(s.said, /^err .*run failed.*eee the end/, s.said.slice(0, 200));
    } finally {
      await end(s);
    }
  });

  it('takes nothing but a pty for the console (a file passed instead is not copied)', async () => {
    const secret = t.path('fake-secret');
    fs.writeFileSync(secret, 'a host file the console must not copy\n');
    const s = fakeShim('pty', `${TOOL} send-fd ../console.sock ${secret} > $OUT/send-fd\n${INIT}\nexit 0`);
    try {
      await t.until('the supervisor to report', () => s.said.includes('\n'));
      assert.match(s.said, /^ok \d+/, s.said);
      assert.equal(fs.readFileSync(join(s.out, 'send-fd'), 'utf8'), 'sent\n');
      assert.match(s.errors, /passed something else than a pty/);
      assert.ok(
        !fs.readFileSync(join(s.dir, 'console.log'), 'utf8').includes('host file'),
        'the file is not copied',
      );
    } finally {
      await end(s);
    }
  });

  it("starts its children with default signals and its caller's umask, and writes no partial exit record on a full disk", async () => {
    const s = fakeShim('exit', `${INIT}\nexit 0`);
    try {
      await t.until('the supervisor to report', () => s.said.includes('\n'));
      assert.match(s.said, /^ok \d+/, s.said);
      // The runtime started with default dispositions (SIGPIPE not ignored) and nothing blocked.
      const sigs = fs.readFileSync(join(s.out, 'runtime-signals'), 'utf8');
      assert.match(sigs, /SigIgn:\s+0000000000000000/, sigs);
      assert.match(sigs, /SigBlk:\s+0000000000000000/, sigs);
      // ... and the umask it was started with, not the supervisor's own 077 (the runtime makes
      // the guest's cgroups, which the guest must be able to read).
      const umask = spawnSync('sh', ['-c', 'umask'], { encoding: 'utf8' }).stdout.trim();
      assert.equal(
        fs.readFileSync(join(s.out, 'runtime-umask'), 'utf8').trim(),
        umask,
        'the runtime got the umask',
      );
      // A full filesystem: the exit record cannot be written whole, so none may appear.
      spawnSync('sh', ['-c', `cat /dev/zero > ${s.dir}/fill`]);
      process.kill(Number(/^ok (\d+)/.exec(s.said)?.[1]), 'SIGKILL');
      await s.ended;
      assert.ok(!fs.existsSync(join(s.dir, 'exit')), 'no exit record');
      assert.match(s.errors, /cannot write the exit record/);
      const exitSigs = fs.readFileSync(join(s.out, 'exit-signals'), 'utf8');
      assert.match(exitSigs, /SigIgn:\s+0000000000000000/, `the exit command: ${exitSigs}`);
    } finally {
      await end(s);
    }
  });
});

describe('jaula-init', () => {
  it('starts the command with default signal dispositions, whatever it inherited', () => {
    const r = spawnSync('sh', ['-c', `trap "" PIPE; exec ${INIT} -- /bin/grep SigIgn /proc/self/status`], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /SigIgn:\s+0000000000000000/, r.stdout);
  });
});

describe('hardened builds', () => {
  const readelf = (args: string[], file: string): string => {
    const r = spawnSync('readelf', [...args, file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };

  it('the static helpers are PIE with full RELRO', () => {
    for (const f of [HELPER, INIT]) {
      assert.match(readelf(['-h'], f), /Type:\s+DYN/, `${f} is position independent (ASLR)`);
      assert.match(readelf(['-d'], f), /FLAGS_1\)\s+Flags: NOW PIE/, `${f}: bound now`);
      assert.match(readelf(['-l'], f), /GNU_RELRO/, `${f}: RELRO`);
    }
  });

  it('the addon is fortified, stack-protected, with full RELRO', () => {
    const addon = join(projectDir, 'build/Release/jaula_native.node');
    assert.match(readelf(['-d'], addon), /BIND_NOW/);
    assert.match(readelf(['-l'], addon), /GNU_RELRO/);
    const syms = readelf(['--dyn-syms', '-W'], addon);
    assert.match(syms, /__stack_chk_fail/);
    assert.match(syms, /__\w+_chk@/, 'fortified calls');
  });

  it('flags from the environment or the command line cannot take the hardening away', () => {
    const weak = '-O0 -U_FORTIFY_SOURCE -fno-stack-protector -Wno-error';
    const r = spawnSync(
      'make',
      ['-n', '-B', '-C', join(projectDir, 'native'), `CFLAGS=${weak}`, 'out/jaula-helper'],
      {
        encoding: 'utf8',
        env: { ...process.env, CFLAGS: weak },
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const cc = r.stdout.split('\n').find((l) => l.includes('jaula-helper.c')) ?? '';
    const after = cc.slice(cc.indexOf(weak) + weak.length);
    for (const f of [
      '-Werror',
      '-D_FORTIFY_SOURCE=3',
      '-fstack-protector-strong',
      '-fstack-clash-protection',
      '-fcf-protection',
      '-static-pie',
      '-Wl,-z,relro,-z,now',
    ])
      assert.ok(after.includes(f), `${f} comes after the caller's flags: ${cc}`);
  });
});
