/** A throwaway etcd cluster on loopback for benchmarks (three members, ports from `base`). */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class LoopbackEtcd {
  readonly dir = fs.mkdtempSync(join(tmpdir(), 'jaula-bench-etcd-'));
  readonly procs: ChildProcess[] = [];
  readonly clientUrls: string[];

  constructor(
    readonly base: number,
    readonly members = 3,
  ) {
    this.clientUrls = Array.from({ length: members }, (_, i) => `http://127.0.0.1:${base + 2 * i}`);
  }

  async start(): Promise<void> {
    const peer = (i: number): string => `http://127.0.0.1:${this.base + 2 * i + 1}`;
    const cluster = Array.from({ length: this.members }, (_, i) => `b${i}=${peer(i)}`).join(',');
    for (let i = 0; i < this.members; i++) {
      const p = spawn(
        'etcd',
        [
          `--name=b${i}`,
          `--data-dir=${join(this.dir, `m${i}`)}`,
          `--listen-client-urls=${this.clientUrls[i]}`,
          `--advertise-client-urls=${this.clientUrls[i]}`,
          `--listen-peer-urls=${peer(i)}`,
          `--initial-advertise-peer-urls=${peer(i)}`,
          `--initial-cluster=${cluster}`,
          '--initial-cluster-state=new',
          '--log-level=error',
        ],
        { stdio: 'ignore' },
      );
      this.procs.push(p);
    }
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const r = await fetch(`${this.clientUrls[0]}/v3/kv/put`, {
          method: 'POST',
          body: JSON.stringify({ key: 'cmVhZHk=', value: 'MQ==' }),
        });
        if (r.ok && !('error' in ((await r.json()) as object))) return;
      } catch {
        /* not yet */
      }
      if (Date.now() > deadline) throw new Error('the benchmark etcd cluster did not get ready');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  stop(): void {
    for (const p of this.procs) p.kill('SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
