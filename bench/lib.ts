/** Shared helpers for benchmarks: timing commands, medians, tables, a scratch JAULA_ROOT. */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeCgroupParents } from '../src/cgroups/parents.js';
import { makePaths } from '../src/os/paths.js';

export const projectDir = resolve(fileURLToPath(import.meta.url), '../../..');
export const jaulaBin = join(projectDir, 'bin/jaula.cjs');
export const N = Number(process.env['BENCH_N'] ?? 20);

export function sh(argv: string[], opts: SpawnSyncOptions = {}): { code: number; out: string; err: string } {
  const r = spawnSync(argv[0] as string, argv.slice(1), {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    ...opts,
  });
  return { code: r.status ?? 128, out: String(r.stdout ?? ''), err: String(r.stderr ?? '') };
}

export function must(argv: string[], opts: SpawnSyncOptions = {}): string {
  const r = sh(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.err}${r.out}`);
  return r.out;
}

/** Wall-clock milliseconds of one run of argv (must succeed). */
export function timeMs(argv: string[], opts: SpawnSyncOptions = {}): number {
  const t0 = process.hrtime.bigint();
  // No pipes: a detached container would inherit one and keep it open.
  const r = spawnSync(argv[0] as string, argv.slice(1), { stdio: 'ignore', ...opts });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status} (run it by hand to see why)`);
  return ms;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) =>
    r.map((c) => (typeof c === 'number' ? (Number.isInteger(c) ? String(c) : c.toFixed(1)) : c)),
  );
  const w = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => '| ' + r.map((c, i) => c.padEnd(w[i] ?? 0)).join(' | ') + ' |';
  return [line(headers), '|' + w.map((x) => '-'.repeat(x + 2)).join('|') + '|', ...cells.map(line)].join(
    '\n',
  );
}

export class Scratch {
  readonly root = fs.mkdtempSync(join(tmpdir(), 'jaula-bench-'));
  readonly env = { ...process.env, JAULA_ROOT: this.root };
  jaula(args: string[]): string {
    return must([process.execPath, jaulaBin, ...args], { env: this.env });
  }
  jaulaArgv(args: string[]): string[] {
    return [process.execPath, jaulaBin, ...args];
  }
  cleanup(): void {
    const list = sh([process.execPath, jaulaBin, 'list', '--format', 'json'], { env: this.env });
    if (list.code === 0)
      for (const g of JSON.parse(list.out) as { name: string }[])
        sh([process.execPath, jaulaBin, 'delete', '--force', g.name], { env: this.env });
    // The instance's parent cgroups (empty now) go too.
    removeCgroupParents(makePaths(this.root).instanceTag);
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** The service of the benchmarks' busybox guests: `/bin/sleep 100000` under jaula-init. */
const SLEEPER = ['-q', '--initstyle', 'cmd', '--cmd', '/bin/sleep 100000'];

/** `jaula build` arguments for a busybox skeleton guest running `/bin/sleep 100000` (then `extra`). */
export function sleeperSkeleton(name: string, extra: string[] = []): string[] {
  return ['build', name, '-m', 'skeleton', ...SLEEPER, ...extra];
}

/** `jaula build` arguments for a busybox guest running `/bin/sleep 100000` from a template tarball. */
export function sleeperFromTemplate(name: string, tarball: string): string[] {
  return ['build', name, '-m', 'template', ...SLEEPER, '--', '-t', tarball];
}

export function have(cmd: string): boolean {
  return sh(['sh', '-c', `command -v ${cmd}`]).code === 0;
}

/** An LXC container `name` under `lxcPath` on an existing tree, running `cmd` as its init, no network. */
export function lxcContainer(lxcPath: string, name: string, rootfs: string, cmd: string): void {
  fs.mkdirSync(join(lxcPath, name), { recursive: true });
  fs.writeFileSync(
    join(lxcPath, name, 'config'),
    [
      `lxc.uts.name = ${name}`,
      `lxc.rootfs.path = dir:${rootfs}`,
      'lxc.net.0.type = empty',
      'lxc.apparmor.profile = unconfined',
      'lxc.mount.auto = proc:mixed sys:ro',
      `lxc.init.cmd = ${cmd}`,
      '',
    ].join('\n'),
  );
}
