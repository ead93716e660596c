import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyProcInfo, parseStat, parseStatus, readProcInfo } from './procinfo.js';

describe('/proc/PID/stat and status', () => {
  it('reads the fields ps needs, with spaces and parentheses in the command name', () => {
    const p = emptyProcInfo();
    const stat =
      '32427 (my (odd) cmd) S 32423 32427 32423 0 -1 4194560 105 0 0 0 7 3 0 0 20 0 1 0 497201 2396160 352 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n';
    assert.equal(parseStat(stat, p), true);
    assert.equal(p.comm, 'my (odd) cmd');
    assert.equal(p.state, 'S');
    assert.equal(p.ppid, 32423);
    assert.equal(p.utime, 7);
    assert.equal(p.stime, 3);
    assert.equal(p.starttime, 497201);
    assert.equal(parseStat('garbage', emptyProcInfo()), false);
    const status =
      'Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t32427\nPPid:\t32423\nUid:\t1000\t1000\t1000\t1000\nGid:\t0\t0\t0\t0\nNStgid:\t32427\t3\nNSpid:\t32427\t3\nVmRSS:\t    1404 kB\n';
    parseStatus(status, p);
    assert.equal(p.uid, 1000);
    assert.equal(p.nspid, 3, 'the innermost PID namespace');
    assert.equal(p.rssKb, 1404);
    const kthread = emptyProcInfo();
    parseStatus('Name:\tkthreadd\nUid:\t0\t0\t0\t0\nNSpid:\t2\n', kthread);
    assert.deepEqual([kthread.uid, kthread.nspid, kthread.rssKb], [0, 2, 0]);
  });
  it('reads this very process', () => {
    const p = readProcInfo(process.pid);
    assert.ok(p);
    assert.equal(p.uid, process.getuid?.());
    assert.equal(p.ppid, process.ppid);
    assert.ok(p.rssKb > 1000);
    assert.equal(readProcInfo(2 ** 30), undefined);
  });
});
