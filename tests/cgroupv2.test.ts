/**
 * Guests on a pure cgroup v2 host, where jaula's own cgroup holds processes (a systemd service,
 * a session): jaula moves them into a leaf beside its guests so that the guests get the memory
 * and io controllers (src/cgroups/v2parent.ts). Runs on a v2 host only: scripts/test-v2.sh
 * (./setup test v2) runs it in a VM booting Debian 12's kernel.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { defaultMemoryLimit } from '../src/cgroups/limits.js';
import { GUEST_CONTROLLERS, V2_LEAF } from '../src/cgroups/v2parent.js';
import { TestRoot, jaulaBin } from './helpers.js';

const CG = '/sys/fs/cgroup';
const v2 = fs.existsSync(`${CG}/cgroup.controllers`);
const t = new TestRoot();
after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

const words = (f: string): string[] => fs.readFileSync(f, 'utf8').trim().split(/\s+/).filter(Boolean);
const procsOf = (dir: string): number[] => words(join(dir, 'cgroup.procs')).map(Number);
const ownCgroup = (pid: number | 'self' = 'self'): string =>
  fs
    .readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .trim()
    .split('\n')
    .find((l) => l.startsWith('0::'))
    ?.slice(3) ?? '/';
const guestCgroup = (name: string): string => join(CG, String(t.state(name)['cgroupsPath']));

describe(
  'guests on a cgroup v2 host',
  { skip: !v2 && 'needs a pure cgroup v2 host (scripts/test-v2.sh)' },
  () => {
    // The test runner's cgroup, or the one jaula moved it out of (an earlier file's guests).
    const own = ownCgroup();
    const base = join(CG, own.endsWith(`/${V2_LEAF}`) ? own.slice(0, -V2_LEAF.length - 1) : own);
    const parent = join(base, `jaula-${t.tag}`);
    const wanted = GUEST_CONTROLLERS.filter((c) => words(join(base, 'cgroup.controllers')).includes(c));

    it("get every controller though jaula's cgroup held processes: those move into its leaf", () => {
      const shell = spawn('sleep', ['1000'], { stdio: 'ignore' }); // a process beside jaula's, like a shell's
      try {
        t.buildSleeper('g1');
        t.ok(['start', 'g1']);
        assert.equal(guestCgroup('g1'), join(parent, 'g1'));
        assert.deepEqual(words(join(parent, 'g1/cgroup.controllers')).sort(), [...wanted].sort());
        assert.deepEqual(procsOf(base), [], "jaula's cgroup holds no process now");
        const leaf = procsOf(join(base, V2_LEAF));
        assert.ok(leaf.includes(process.pid) && leaf.includes(shell.pid as number), 'they are in the leaf');
        // The runtime applied the default memory limit, and a live change reaches the cgroup.
        assert.equal(
          Number(fs.readFileSync(join(parent, 'g1/memory.max'), 'utf8')),
          defaultMemoryLimit(totalmem()),
        );
        t.ok(['set', 'g1', 'memory.max=100M', 'io.weight=300']);
        assert.equal(fs.readFileSync(join(parent, 'g1/memory.max'), 'utf8').trim(), String(100 * 2 ** 20));
        assert.match(fs.readFileSync(join(parent, 'g1/io.weight'), 'utf8'), /^default 300$/m);
        // A jaula started from the leaf keeps the same place for guests.
        t.buildSleeper('g2');
        t.ok(['start', 'g2']);
        assert.equal(guestCgroup('g2'), join(parent, 'g2'));
        // Their processes (jaula-init and sleep) are counted from their cgroups.
        const stat = JSON.parse(t.ok(['stat', '--format', 'json']).stdout) as {
          name: string;
          processes: number;
        }[];
        assert.deepEqual(stat.map((s) => [s.name, s.processes]).sort(), [
          ['g1', 2],
          ['g2', 2],
        ]);
        t.ok(['stop', 'g1', '--kill']);
        t.ok(['stop', 'g2', '--kill']);
        assert.equal(fs.existsSync(join(parent, 'g1')), false);
      } finally {
        shell.kill('SIGKILL');
      }
    });

    it("a jaula run in a busy cgroup of its own (a session's scope) puts its guests there", async () => {
      // A cgroup of this test beneath the runner's, holding a process that is not jaula's.
      const scope = join(base, `v2test-${t.tag}.scope`);
      fs.mkdirSync(scope);
      let session: ChildProcess | undefined;
      try {
        session = spawn('sh', ['-c', `echo $$ > ${scope}/cgroup.procs && exec sleep 1000`], {
          stdio: 'ignore',
        });
        const pid = session.pid as number;
        await t.until(
          'the session process to be in its scope',
          () => ownCgroup(pid) === scope.slice(CG.length),
        );
        t.buildSleeper('g3');
        const jaulaIn = (args: string[]): ReturnType<typeof spawnSync> =>
          spawnSync(
            'sh',
            ['-c', `echo $$ > ${scope}/cgroup.procs && exec "$@"`, 'sh', process.execPath, jaulaBin, ...args],
            {
              env: t.env,
              encoding: 'utf8',
            },
          );
        const r = jaulaIn(['start', 'g3']);
        assert.equal(r.status, 0, String(r.stderr));
        assert.equal(guestCgroup('g3'), join(scope, `jaula-${t.tag}`, 'g3'));
        assert.deepEqual(
          words(join(scope, `jaula-${t.tag}/g3/cgroup.controllers`)).sort(),
          [...wanted].sort(),
        );
        // The session's process moved into the leaf; the guest's supervisor works from its own
        // cgroup beside the guest's (.supervisor-NAME, ADR 0001).
        const leaf = procsOf(join(scope, V2_LEAF));
        assert.ok(leaf.includes(pid), String(leaf));
        const shim = Number(t.state('g3')['shimPid']);
        assert.ok(
          procsOf(join(scope, `jaula-${t.tag}`, '.supervisor-g3')).includes(shim),
          `supervisor ${shim}`,
        );
        assert.deepEqual(procsOf(scope), []);
        // Seen and stopped from anywhere (its state records where its cgroup is).
        assert.equal(t.ok(['status', 'g3']).code, 0);
        t.ok(['stop', 'g3', '--kill']);
        assert.equal(fs.existsSync(join(scope, `jaula-${t.tag}/g3`)), false);
      } finally {
        if (t.jaula(['status', 'g3']).code === 0) t.jaula(['stop', 'g3', '--kill']);
        session?.kill('SIGKILL');
        const leaf = join(scope, V2_LEAF);
        await t.until('the session process to end', () =>
          [scope, leaf].every((d) => !fs.existsSync(d) || procsOf(d).length === 0),
        );
        for (const d of [join(scope, `jaula-${t.tag}`), leaf, scope]) if (fs.existsSync(d)) fs.rmdirSync(d);
      }
    });
  },
);
