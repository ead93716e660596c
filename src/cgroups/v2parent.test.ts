/**
 * prepareV2Parent against a model of cgroup v2's rules (the kernel's own behaviour is checked by
 * tests/cgroupv2.test.ts on a real v2 host, scripts/test-v2.sh): a cgroup holding processes
 * cannot enable domain controllers for its children (EBUSY), a process cannot join a cgroup that
 * gives domain controllers to its children (EBUSY), only controllers a cgroup has can be
 * enabled below it (ENOENT), and a process that ended cannot be moved (ESRCH).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GUEST_CONTROLLERS, V2_LEAF, prepareV2Parent, v2Base, type CgroupFs } from './v2parent.js';

const THREADED = new Set(['cpu', 'cpuset', 'pids', 'perf_event']);
const errno = (code: string): Error => Object.assign(new Error(`${code}: refused`), { code });

interface Node {
  procs: number[];
  controllers: Set<string>;
  subtree: Set<string>;
}

class ModelCgroupFs implements CgroupFs {
  readonly nodes = new Map<string, Node>();
  readonly writes: string[] = [];
  alive = new Set<number>();
  /** Called after each successful move (a process forking into the base meanwhile, say). */
  onMove?: () => void;

  constructor(rootControllers: string[], cgroups: Record<string, number[]>) {
    this.nodes.set('/cg', {
      procs: [],
      controllers: new Set(rootControllers),
      subtree: new Set(rootControllers),
    });
    // Each listed cgroup's parent gives it the parent's controllers (as systemd's slices do).
    for (const [dir, procs] of Object.entries(cgroups)) {
      const [parent] = this.split(dir);
      parent.subtree = new Set(parent.controllers);
      this.mkdir(dir);
      this.node(dir).procs.push(...procs);
      for (const p of procs) this.alive.add(p);
    }
  }

  node(dir: string): Node {
    const n = this.nodes.get(dir);
    if (!n) throw errno('ENOENT');
    return n;
  }

  private split(path: string): [Node, string] {
    const i = path.lastIndexOf('/');
    return [this.node(path.slice(0, i)), path.slice(i + 1)];
  }

  read(path: string): string | undefined {
    const [n, f] = this.split(path);
    if (f === 'cgroup.controllers') return [...n.controllers].join(' ') + '\n';
    if (f === 'cgroup.subtree_control') return [...n.subtree].join(' ') + '\n';
    if (f === 'cgroup.procs') return n.procs.map((p) => `${p}\n`).join('');
    return undefined;
  }

  write(path: string, text: string): void {
    const [n, f] = this.split(path);
    if (f === 'cgroup.subtree_control') {
      const add = text.split(' ').map((w) => w.replace(/^\+/, ''));
      if (add.some((c) => !n.controllers.has(c))) throw errno('ENOENT');
      if (n.procs.length > 0 && add.some((c) => !THREADED.has(c))) throw errno('EBUSY');
      for (const c of add) n.subtree.add(c);
    } else if (f === 'cgroup.procs') {
      const pid = Number(text);
      if (!this.alive.has(pid)) {
        // (listed a moment ago, ended since: gone from every list now)
        for (const m of this.nodes.values()) m.procs = m.procs.filter((p) => p !== pid);
        throw errno('ESRCH');
      }
      if ([...n.subtree].some((c) => !THREADED.has(c))) throw errno('EBUSY');
      for (const m of this.nodes.values()) m.procs = m.procs.filter((p) => p !== pid);
      n.procs.push(pid);
      this.onMove?.();
    } else throw errno('EACCES');
    this.writes.push(`${path} ${text}`);
  }

  mkdir(path: string): void {
    if (this.nodes.has(path)) return;
    const [parent] = this.split(path);
    this.nodes.set(path, { procs: [], controllers: new Set(parent.subtree), subtree: new Set() });
  }
}

const ALL = [...GUEST_CONTROLLERS, 'rdma', 'misc'];

describe('v2Base', () => {
  it("is jaula's own cgroup, or the one it moved out of when it runs in the leaf", () => {
    assert.equal(v2Base('/system.slice/jaulad.service'), '/system.slice/jaulad.service');
    assert.equal(v2Base(`/system.slice/jaulad.service/${V2_LEAF}`), '/system.slice/jaulad.service');
    assert.equal(v2Base('/'), '/');
    assert.equal(v2Base(`/${V2_LEAF}`), '/');
    assert.equal(v2Base('/user.slice/x-jaula-leaf'), '/user.slice/x-jaula-leaf');
  });
});

describe('prepareV2Parent', () => {
  const svc = '/cg/system.slice/jaulad.service';

  it("moves the processes of jaula's cgroup into its leaf, then gives guests every controller", () => {
    const cg = new ModelCgroupFs(ALL, { '/cg/system.slice': [], [svc]: [100, 101, 102] });
    prepareV2Parent('/cg', '/system.slice/jaulad.service', 'jaula-t1', cg);
    assert.deepEqual(cg.node(svc).procs, []);
    assert.deepEqual(cg.node(`${svc}/${V2_LEAF}`).procs.sort(), [100, 101, 102]);
    assert.deepEqual([...cg.node(svc).subtree].sort(), [...GUEST_CONTROLLERS].sort());
    assert.deepEqual([...cg.node(`${svc}/jaula-t1`).subtree].sort(), [...GUEST_CONTROLLERS].sort());
    // A guest's cgroup made there (by the runtime) has them all, and can take the guest.
    cg.mkdir(`${svc}/jaula-t1/g1`);
    assert.deepEqual([...cg.node(`${svc}/jaula-t1/g1`).controllers].sort(), [...GUEST_CONTROLLERS].sort());
    cg.alive.add(200);
    cg.write(`${svc}/jaula-t1/g1/cgroup.procs`, '200');
  });

  it('the next time (from the leaf, or another jaula) it only reads', () => {
    const cg = new ModelCgroupFs(ALL, { '/cg/system.slice': [], [svc]: [100] });
    prepareV2Parent('/cg', v2Base('/system.slice/jaulad.service'), 'jaula-t1', cg);
    const n = cg.writes.length;
    prepareV2Parent('/cg', v2Base(`/system.slice/jaulad.service/${V2_LEAF}`), 'jaula-t1', cg);
    assert.equal(cg.writes.length, n);
    // Another instance's parent beside it: made and enabled, nothing moved.
    prepareV2Parent('/cg', v2Base(`/system.slice/jaulad.service/${V2_LEAF}`), 'jaula-t2', cg);
    assert.deepEqual(
      cg.writes.slice(n).map((w) => w.replace(svc, '')),
      ['/jaula-t2/cgroup.subtree_control +cpuset +cpu +io +memory +hugetlb +pids'],
    );
  });

  it('moves nothing when the cgroup holds no processes', () => {
    const cg = new ModelCgroupFs(ALL, { '/cg/a': [] });
    prepareV2Parent('/cg', '/a', 'jaula-t1', cg);
    assert.equal(cg.nodes.has(`/cg/a/${V2_LEAF}`), false);
    assert.deepEqual([...cg.node('/cg/a/jaula-t1').subtree].sort(), [...GUEST_CONTROLLERS].sort());
  });

  it('enables only the controllers the cgroup has (a session with memory and pids)', () => {
    const cg = new ModelCgroupFs(['memory', 'pids'], {
      '/cg/user.slice': [],
      '/cg/user.slice/s1.scope': [7],
    });
    prepareV2Parent('/cg', '/user.slice/s1.scope', 'jaula', cg);
    assert.deepEqual([...cg.node('/cg/user.slice/s1.scope/jaula').subtree].sort(), ['memory', 'pids']);
    assert.deepEqual(cg.node(`/cg/user.slice/s1.scope/${V2_LEAF}`).procs, [7]);
  });

  it('skips processes that ended meanwhile', () => {
    const cg = new ModelCgroupFs(ALL, { '/cg/a': [5, 6] });
    cg.alive.delete(5);
    prepareV2Parent('/cg', '/a', 'jaula', cg);
    assert.deepEqual(cg.node(`/cg/a/${V2_LEAF}`).procs, [6]);
    assert.ok(cg.node('/cg/a').subtree.has('memory'));
  });

  it('moves processes that appeared meanwhile too (a fork during the move)', () => {
    const cg = new ModelCgroupFs(ALL, { '/cg/a': [5] });
    let forks = 2;
    cg.onMove = () => {
      if (forks-- > 0) {
        const pid = 50 + forks;
        cg.alive.add(pid);
        cg.node('/cg/a').procs.push(pid);
      }
    };
    prepareV2Parent('/cg', '/a', 'jaula', cg);
    assert.deepEqual(cg.node('/cg/a').procs, []);
    assert.deepEqual(cg.node(`/cg/a/${V2_LEAF}`).procs.sort(), [5, 50, 51]);
  });

  it('says what to do when the processes keep coming', () => {
    const cg = new ModelCgroupFs(ALL, { '/cg/a': [5] });
    let next = 1000;
    cg.onMove = () => {
      cg.alive.add(next);
      cg.node('/cg/a').procs.push(next++);
    };
    assert.throws(
      () => prepareV2Parent('/cg', '/a', 'jaula', cg),
      /The cgroup \/cg\/a cannot give the cpuset, cpu, io, memory, hugetlb, pids controllers to guests .*EBUSY.*still holds processes after moving them into \/cg\/a\/jaula-leaf; run jaula from a cgroup it may manage/,
    );
  });

  it('says which process could not be moved, and why', () => {
    const cg = new ModelCgroupFs(ALL, { '/cg/a': [5] });
    const write = cg.write.bind(cg);
    cg.write = (p, t) => {
      if (p.endsWith(`${V2_LEAF}/cgroup.procs`)) throw errno('EINVAL');
      write(p, t);
    };
    assert.throws(
      () => prepareV2Parent('/cg', '/a', 'jaula', cg),
      /Could not move process 5 out of jaula's cgroup \/cg\/a into \/cg\/a\/jaula-leaf, to let guests have the cgroup controllers: EINVAL/,
    );
  });
});
