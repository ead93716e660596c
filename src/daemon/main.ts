/**
 * jaulad: `jaula daemon [--listen HOST:PORT --token-file F [--tls-cert C --tls-key K]
 * [--host-files DIR] [--allow-host NAME,...] [--allow-guests] [--allow-moves]] [--socket PATH] [--no-autostart]`. Reconciles what it finds (guests that ended, interrupted
 * starts and stops, leftovers, a host reboot), then serves the API until SIGTERM or SIGINT, and
 * takes and expires guests' automatic snapshots (snapshot-timer.ts).
 * Guests do not depend on it: they keep running when it is stopped, restarted or killed.
 */
import * as fs from 'node:fs';
import { join, resolve } from 'node:path';
import type { ReconcileReport } from '../api/types.js';
import { exitCodes, isJaulaError, JaulaError, messageOf } from '../common/errors.js';
import { removeDaemonRecord, tokenFileProblem, writeDaemonRecord } from '../core/apiaccess.js';
import { fleetTouch, startFleetAgent, stopFleetAgent } from '../core/fleet.js';
import { reconcileFinish, reconcileState } from '../core/reconcile.js';
import { FileLock } from '../os/lock.js';
import { mkdirp, writeFileAtomic } from '../os/fs.js';
import { HostFiles } from '../os/hostfiles.js';
import { paths } from '../os/paths.js';
import { ensurePool } from '../storage/pool.js';
import { repairBarriers } from '../core/barrier.js';
import { parseListen, Server } from './server.js';
import { startSnapshotTimer, type SnapshotTimer } from './snapshot-timer.js';

const VALUE_OPTS = ['socket', 'listen', 'tls-cert', 'tls-key', 'token-file', 'host-files', 'allow-host'];
const FLAG_OPTS = ['no-autostart', 'allow-guests', 'allow-moves'];

/** jaulad's few options: --name VALUE, --name=VALUE, --flag. */
export function parseDaemonArgs(argv: string[]): Map<string, string | true> {
  const m = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const eq = a.indexOf('=');
    const k = a.startsWith('--') ? a.slice(2, eq > 0 ? eq : undefined) : '';
    if (FLAG_OPTS.includes(k) && eq < 0) m.set(k, true);
    else if (VALUE_OPTS.includes(k)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new JaulaError('usage', `The option --${k} needs a value`);
      m.set(k, v);
    } else throw new JaulaError('usage', `Unknown option "${a}" for jaulad (see "jaula daemon --help")`);
  }
  return m;
}

export function defaultSocket(): string {
  return paths().jauladSocket;
}

/**
 * One record of jaulad's log. Control characters are escaped and the lines after the first
 * indented, so nothing a request carries can forge a record of its own.
 */
export function logLine(line: string): string {
  const clean = line.replace(
    // eslint-disable-next-line no-control-regex
    /[\x00-\x09\x0b-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
  return `jaulad: ${clean.replace(/\n/g, '\n  ')}\n`;
}

function log(line: string): void {
  process.stderr.write(logLine(line));
}

/** --listen's options checked, and the token read from its file (which must be safe). */
function checkListen(
  listen: string,
  {
    tokenFile,
    cert,
    hostFilesDir,
  }: { tokenFile?: string | undefined; cert?: string | undefined; hostFilesDir?: string | undefined },
): { token: string; hostFiles: string | undefined } {
  const address = parseListen(listen);
  if (!tokenFile)
    throw new JaulaError(
      'usage',
      '--listen needs --token-file FILE (a secret that clients send as "Authorization: Bearer TOKEN")',
    );
  if (!cert && !address.loopback)
    throw new JaulaError(
      'usage',
      `--listen ${listen} is not a loopback address: give --tls-cert and --tls-key (plain HTTP only on 127.0.0.1 or ::1)`,
    );
  const problem = tokenFileProblem(tokenFile);
  if (problem) throw new JaulaError('invalid', `Unsafe token file: ${problem}`);
  const token = fs.readFileSync(tokenFile, 'utf8').trim();
  if (token.length < 16)
    throw new JaulaError('invalid', `The token in ${tokenFile} is too short: use at least 16 characters`);
  return { token, hostFiles: hostFilesDir ? HostFiles.checkDir(hostFilesDir) : undefined };
}

/** What the reconcile at start found and fixed, a line each, in jaulad's log. */
function logReconcile(report: ReconcileReport, ranBefore: string[], ms: number): void {
  const fixed = [
    ...report.settled.map((n) => `settled ${n}`),
    ...report.rolledBack.map((n) => `rolled back the start of ${n}`),
    ...report.staleBuilds.map((n) => `removed the half-built ${n}`),
    ...report.mounts.map((m) => `unmounted ${m}`),
    ...report.runtimeStates.map((r) => `removed runtime state ${r}`),
    ...report.cgroups.map((c) => `removed cgroup ${c}`),
    ...report.network.map((n) => `removed network leftovers of ${n}`),
    ...report.problems.map((x) => `problem: ${x}`),
  ];
  for (const f of fixed) log(f);
  log(
    `reconciled in ${ms} ms${report.hostRebooted ? ` (new boot: ${ranBefore.length ? `${ranBefore.join(', ')} ran when the host went down` : 'no guest ran when the host went down'})` : ''}`,
  );
}

/**
 * Serve until SIGTERM or SIGINT, then cancel the jobs, wait for them (10 s at most) and close. A
 * scheduled snapshot under way is waited for (exiting in it could leave its guest frozen).
 */
async function serveUntilSignal(server: Server, lock: FileLock, snapshots: SnapshotTimer): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      log(`${sig}: stopping (guests keep running)`);
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  const ticking = snapshots.stop();
  for (const j of server.jobs.list()) if (j.state === 'running') server.jobs.cancel(j.id);
  const deadline = Date.now() + 10_000;
  while (server.jobs.running() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await ticking;
  await stopFleetAgent();
  await server.close();
  removeDaemonRecord();
  fs.rmSync(join(paths().run, 'jaulad.pid'), { force: true });
  lock.release();
}

/** The one-jaulad-per-root lock, held for jaulad's life, and its pid file. */
function holdDaemonLock(): FileLock {
  mkdirp(paths().run, 0o755);
  mkdirp(paths().locks, 0o700);
  const lock = new FileLock(join(paths().locks, 'jaulad.lock'));
  if (!lock.tryAcquire()) {
    const pid = fs.existsSync(join(paths().run, 'jaulad.pid'))
      ? fs.readFileSync(join(paths().run, 'jaulad.pid'), 'utf8').trim()
      : '?';
    throw new JaulaError('busy', `jaulad already runs for ${paths().root} (pid ${pid}); stop it first`);
  }
  writeFileAtomic(join(paths().run, 'jaulad.pid'), `${process.pid}\n`, 0o644, { durable: false });
  return lock;
}

/** Without --listen, its options are a mistake. */
function listenOnly(p: Map<string, string | true>): void {
  const given = ['host-files', 'allow-host', 'allow-guests', 'allow-moves'].filter((k) => p.has(k));
  if (given.length)
    throw new JaulaError(
      'usage',
      `${given.map((k) => `--${k}`).join(', ')}: options of --listen (TCP), which was not given`,
    );
}

export async function runDaemon(argv: string[]): Promise<number> {
  const p = parseDaemonArgs(argv);
  const str = (k: string): string | undefined => {
    const v = p.get(k);
    return typeof v === 'string' ? v : undefined;
  };
  const socket = str('socket') ?? defaultSocket();
  const listen = str('listen');
  const cert = str('tls-cert');
  const key = str('tls-key');
  const tokenFile = str('token-file');
  const hostFilesDir = str('host-files');
  const allowHosts = str('allow-host')?.split(',').filter(Boolean);
  const allowGuests = p.has('allow-guests');
  const allowMoves = p.has('allow-moves');
  const autostart = !p.has('no-autostart');
  if (!!cert !== !!key) throw new JaulaError('usage', 'Give both --tls-cert and --tls-key, or neither');
  if (!listen) listenOnly(p);
  const { token, hostFiles } = listen
    ? checkListen(listen, { tokenFile, cert, hostFilesDir })
    : { token: undefined, hostFiles: undefined };
  const lock = holdDaemonLock();

  const t0 = Date.now();
  await ensurePool();
  for (const n of await repairBarriers()) log(n);
  const { report, stopping, ranBefore } = await reconcileState({ autostart });
  logReconcile(report, ranBefore, Date.now() - t0);
  for (const line of await (
    await import('../core/migrate/admin.js')
  )
    .reconcileMoves()
    .catch((e: unknown) => [`moves: ${messageOf(e)}`]))
    log(line);

  const o: ConstructorParameters<typeof Server>[0] = { socket, log };
  if (listen) o.listen = listen;
  if (cert) o.tlsCert = cert;
  if (key) o.tlsKey = key;
  if (token) o.token = token;
  if (hostFiles) o.hostFiles = hostFiles;
  if (allowHosts) o.allowedHosts = allowHosts;
  if (allowGuests) o.allowGuests = true;
  if (allowMoves) o.allowMoves = true;
  const server = new Server(o);
  await server.listen();
  const bound = listen?.replace(/:0$/, `:${server.tcpPort() ?? 0}`);
  writeDaemonRecord({
    socket,
    ...(listen && bound
      ? {
          listen: bound,
          port: server.tcpPort() ?? 0,
          loopback: parseListen(listen).loopback,
          tls: !!cert,
          ...(tokenFile ? { tokenFile: resolve(tokenFile) } : {}),
          ...(hostFiles ? { hostFiles } : {}),
          allowGuests,
        }
      : {}),
  });
  log(`listening on ${socket}${bound ? ` and ${bound}${cert ? ' (TLS)' : ''}` : ''} (pid ${process.pid})`);

  // In a fleet: hold this host's lease, and publish its guests as they change.
  server.hub.subscribe(() => fleetTouch());
  await startFleetAgent(log);

  void reconcileFinish(report, stopping, { autostart, ranBefore }).then((r) => {
    for (const n of r.completedStops) log(`completed the stop of ${n}`);
    for (const n of r.autostarted) log(`started ${n} (host reboot)`);
    server.reconcile = r;
  });

  // Automatic snapshots: expired ones deleted now, then a tick every minute.
  const snapshots = startSnapshotTimer(log);

  await serveUntilSignal(server, lock, snapshots);
  return 0;
}

/** Entry of dist/jaulad.cjs (bin/jaulad.cjs and `jaula daemon`). */
export function daemonMain(argv: string[]): void {
  const run =
    argv[0] === '--fence-watch'
      ? import('../core/ha/watch.js').then((w) => w.fenceWatch(Number(argv[1])))
      : runDaemon(argv);
  run.then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`jaulad: ${messageOf(e)}\n`);
      process.exit(isJaulaError(e) ? exitCodes[e.code] : exitCodes.internal);
    },
  );
}
