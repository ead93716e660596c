/**
 * A guest's host-side network devices at its stop: which go by themselves with its network
 * namespace, waiting until the kernel has removed them, and what a crash left.
 */
import * as fs from 'node:fs';
import { run } from '../os/spawn.js';
import type { NetPlan } from './plan.js';

/** What a crash left of the guest's network: its namespace or host-side devices. */
export function leftovers(ns: string, p: NetPlan): boolean {
  return (
    fs.existsSync(ns) ||
    p.interfaces.some((i) =>
      [i.hostIf, i.ifb, i.tmpIf].some((d) => d && fs.existsSync(`/sys/class/net/${d}`)),
    )
  );
}

/** The host ends that go with the guest's namespace: bridged veths without shaping. */
export function lazyHostEnds(p: NetPlan): string[] {
  return p.interfaces
    .filter((i) => i.mode === 'bridge' && i.hostIf && !i.ifb && !i.tmpIf)
    .map((i) => i.hostIf as string);
}

/**
 * Wait until the kernel has deleted these host ends with their namespace (its cleanup runs in
 * the background, for many namespaces at once), so that the stop leaves nothing; any still
 * there after a second (a process outside jaula holding the namespace) is deleted here.
 */
export async function hostEndsGone(devs: string[]): Promise<void> {
  const left = (): string[] => devs.filter((d) => fs.existsSync(`/sys/class/net/${d}`));
  for (let i = 0; i < 200 && left().length; i++) await new Promise((r) => setTimeout(r, 5));
  const still = left();
  if (still.length)
    await run(['ip', '-force', '-batch', '-'], { input: still.map((d) => `link del ${d}\n`).join('') });
}
