/**
 * The runtime driver: every call jaula makes to the OCI runtime (crun or runc; crun on a hybrid
 * host through jaula-helper private-cgroup2) goes through a Runtime from here: create and start
 * under the guest's supervisor (runtime/supervisor.ts), the one-shot run, delete. The spec it
 * runs comes from runtime/spec.ts (pure: core passes everything in). A running guest's commands
 * go through jaula-exec, whichever runtime made it (runtime/exec.ts, on a session of
 * runtime/session.ts); its init gets signals from runtime/signals.ts.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { cgroupMounts } from '../cgroups/cgroup.js';
import { cgroupMode, deepestOwnCgroup, ownCgroups, type CgroupMode } from '../cgroups/detect.js';
import { prepareV2Parent, v2Base } from '../cgroups/v2parent.js';
import type { RuntimeChoice, RuntimeName } from '../guest/config.js';
import { which } from '../os/fs.js';
import { helperBin, paths } from '../os/paths.js';
import { run, type RunOptions, type RunResult } from '../os/spawn.js';
import { sealedRuntime, type Invocation } from './sealed.js';
import { runAttached, type Io } from './session.js';
import { startSupervisor, type Started, type SupervisorStart } from './supervisor.js';

export type { RuntimeName };

/** The OCI runtime that runs guests, and how jaula calls it on this host. */
export interface Runtime {
  readonly name: RuntimeName;
  readonly path: string;
  readonly cgroupMode: CgroupMode;
  /**
   * crun on a hybrid host runs inside a private mount namespace without the v2 mount (the calls
   * that make cgroups: not exec, which needs no cgroup mode of its own and can last for hours:
   * its private copy of the host's mounts would keep every other guest's storage mounted, and
   * their loop devices bound, for as long as it runs; not delete, which removes the cgroups the
   * state names in every hierarchy as it is, and so spares a copy of the host's mount table, as
   * long as the number of guests, at every stop).
   */
  readonly wrapped: boolean;
  /** The cgroupsPath a guest gets: beneath jaula's own cgroup, in one jaula parent. */
  cgroupsPath(guest: string): string;
  /**
   * Before a guest's cgroup is made: on v2, let that parent hand the controllers to guests
   * (cgroups/v2parent.ts); nothing on v1, where each hierarchy has its own.
   */
  prepareCgroups(): void;
  /**
   * Create and start the guest (its bundle written in s.runDir) under its supervisor, detached;
   * resolves once its init runs.
   */
  start(s: SupervisorStart): Promise<Started>;
  /** `runtime run` of the bundle, in the foreground with `io` (one-shot `jaula run`): its status. */
  run(id: string, bundle: string, pidFile: string, io: Io): Promise<number>;
  /**
   * Checkpoint the running guest with CRIU (a live move's source): its processes are dumped to
   * `images` and killed. runc only (crun here has no CRIU support).
   */
  checkpoint(id: string, images: string, work: string): Promise<void>;
  /** `runtime delete --force ID`, quiet (and not run) when the container does not exist. */
  delete(id: string): Promise<void>;
  /** `runtime --version`: its first line, and the whole of it. */
  version(): Promise<{ first: string; full: string }>;
}

/** The runtime's calls that go through the wrapper where it is `wrapped` (Runtime.wrapped). */
const throughWrapper = (wrapped: boolean, args: string[]): boolean =>
  wrapped && args[0] !== 'exec' && args[0] !== 'delete';

/** argv for `runtime --root ROOT ...args`. */
function runtimeArgv(path: string, root: string, wrapped: boolean, args: string[]): string[] {
  return [
    ...(throughWrapper(wrapped, args) ? [helperBin, 'private-cgroup2', '--'] : []),
    path,
    '--root',
    root,
    ...args,
  ];
}

/**
 * The same, run from the runtime's sealed copy (runtime/sealed.ts) given to it as fd `n`: by the
 * wrapper, or executed directly (`exe`); from its path where there is no copy.
 */
function sealedInvocation(
  path: string,
  root: string,
  wrapped: boolean,
  n: number,
  args: string[],
): Invocation {
  const fd = sealedRuntime(path);
  if (fd === undefined) return { argv: runtimeArgv(path, root, wrapped, args) };
  const direct = [path, '--root', root, ...args];
  if (throughWrapper(wrapped, args))
    return { argv: [helperBin, 'private-cgroup2', '--exec-fd', String(n), '--', ...direct], fds: [fd] };
  return { argv: direct, exe: `/proc/self/fd/${n}`, fds: [fd] };
}

function makeRuntime(name: RuntimeName, path: string, mode: CgroupMode): Runtime {
  const wrapped = name === 'crun' && mode === 'hybrid';
  const root = paths().runtimeRoot;
  const parent = `jaula${paths().instanceTag ? `-${paths().instanceTag}` : ''}`;
  const argv = (...args: string[]): string[] => runtimeArgv(path, root, wrapped, args);
  const sealed = (n: number, ...args: string[]): Invocation => sealedInvocation(path, root, wrapped, n, args);
  /** run() of `runtime --root ROOT ...args` from its sealed copy. */
  const runSealed = (args: string[], opts: RunOptions): Promise<RunResult> => {
    const { argv: av, ...via } = sealed(3, ...args);
    return run(av, { ...opts, ...via });
  };
  const rt: Runtime = {
    name,
    path,
    cgroupMode: mode,
    wrapped,
    cgroupsPath: (guest) => {
      if (mode === 'v2') return join(v2Base(ownCgroups().get('') ?? '/'), parent, guest);
      // runc resolves a relative path against its own cgroup in each v1 hierarchy; crun takes
      // paths from the hierarchy root, so it gets the deepest of jaula's own cgroups.
      if (name === 'runc') return `${parent}/${guest}`;
      return join(deepestOwnCgroup(), parent, guest);
    },
    prepareCgroups: () => {
      if (mode === 'v2')
        prepareV2Parent(
          cgroupMounts().get('') ?? '/sys/fs/cgroup',
          v2Base(ownCgroups().get('') ?? '/'),
          parent,
        );
    },
    // (the supervisor gets the sealed copy as its fd 4)
    start: (s) => startSupervisor(s, sealed(4, ...(s.restore ? ['--criu', criuFor(name)] : []))),
    checkpoint: async (id, images, work) => {
      const r = await runSealed(
        [
          '--criu',
          criuFor(name),
          'checkpoint',
          '--tcp-established',
          '--empty-ns',
          'network',
          '--image-path',
          images,
          '--work-path',
          work,
          id,
        ],
        { timeoutMs: 120_000 },
      );
      if (r.code !== 0)
        throw new JaulaError(
          'runtime',
          `Checkpointing guest "${id}" failed: ${r.stderr.trim().split('\n').slice(-2).join(' ') || `status ${r.code}`} (CRIU's log: ${join(work, 'dump.log')})`,
        );
    },
    run: (id, bundle, pidFile, io) => {
      const args = ['run', '--bundle', bundle, '--pid-file', pidFile, id];
      if (io !== 'inherit') return runAttached(argv(...args), io);
      const inv = sealed(3, ...args);
      return runAttached(inv.argv, io, inv);
    },
    delete: async (id) => {
      if (!runtimeHasContainer(id)) return;
      const r = await runSealed(['delete', '--force', id], { timeoutMs: 60_000 });
      if (r.code !== 0 && !/does not exist|not exist|No such file/i.test(r.stderr))
        throw new JaulaError('runtime', `${name} could not delete the container "${id}": ${r.stderr.trim()}`);
    },
    version: async () => {
      const full = (await run([path, '--version'])).stdout;
      return { first: full.split('\n')[0]?.trim() ?? 'unknown', full };
    },
  };
  return rt;
}

/** Where jaula's CRIU is (`./setup criu` builds it there; JAULA_CRIU names another). */
export function criuPath(): string {
  return process.env['JAULA_CRIU'] || '/usr/local/lib/jaula/criu/sbin/criu';
}

/** The CRIU a runtime checkpoints and restores with: runc only, and only where CRIU is installed. */
function criuFor(name: RuntimeName): string {
  if (name !== 'runc')
    throw new JaulaError(
      'unsupported',
      `Live moves need the runc runtime (this ${name} cannot checkpoint with CRIU): set the guest's runtime to runc ("jaula set GUEST --runtime runc") and restart it`,
    );
  const why = criuMissing();
  if (why) throw new JaulaError('unsupported', `Live moves are not possible: ${why}`);
  return criuPath();
}

/** Why this host cannot checkpoint or restore guests (live moves: runc and jaula's CRIU), or undefined. */
export function criuMissing(): string | undefined {
  if (!which('runc')) return 'runc is not installed here (apt-get install runc)';
  if (!existsSync(criuPath()))
    return `CRIU 4.1 is not installed here at ${criuPath()}: run "./setup criu" in jaula's source directory (or set JAULA_CRIU)`;
  return undefined;
}

const cache = new Map<string, Runtime>();

/**
 * Pick the runtime: the guest's choice, else JAULA_RUNTIME, else automatic: crun where it is
 * installed (it starts guests two to three times faster than runc; on a hybrid cgroup host it
 * runs in a private mount namespace without the cgroup2 mount), runc otherwise.
 */
export function selectRuntime(choice: RuntimeChoice = 'auto'): Runtime {
  const env = process.env['JAULA_RUNTIME'];
  let want = choice !== 'auto' ? choice : env && env !== 'auto' ? env : 'auto';
  if (want !== 'auto' && want !== 'crun' && want !== 'runc')
    throw new JaulaError(
      'invalid',
      `JAULA_RUNTIME="${want}" is not a runtime jaula knows: use crun, runc or auto`,
    );
  const mode = cgroupMode();
  const crun = which('crun');
  const runc = which('runc');
  if (want === 'auto') want = crun ? 'crun' : 'runc';
  const hit = cache.get(want);
  if (hit) return hit;
  const path = want === 'crun' ? crun : runc;
  if (!path)
    throw new JaulaError(
      'unsupported',
      `The OCI runtime "${want}" is not installed (apt-get install ${want}, or run the README's setup command)`,
    );
  const rt = makeRuntime(want as RuntimeName, path, mode);
  cache.set(want, rt);
  return rt;
}

/** Whether the runtime still keeps state for the container (both keep a directory per ID). */
export function runtimeHasContainer(id: string): boolean {
  return existsSync(join(paths().runtimeRoot, id));
}
