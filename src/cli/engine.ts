/**
 * Which Engine the CLI uses: jaulad's (RemoteEngine) when it answers on its socket, else this
 * process's (LocalEngine); JAULA_NO_DAEMON=1 forces the local one. Without a socket file no
 * HTTP code is loaded: `jaula status` stays as cheap as before jaulad existed.
 */
import { existsSync } from 'node:fs';
import type { Engine } from '../api/engine.js';
import type { EngineOp } from '../api/routes.js';
import { paths } from '../os/paths.js';
import { trace } from '../os/trace.js';

let chosen: Promise<Engine> | undefined;

export function daemonSocket(): string {
  return process.env['JAULA_SOCKET'] ?? paths().jauladSocket;
}

async function pick(): Promise<Engine> {
  const sock = daemonSocket();
  if (process.env['JAULA_NO_DAEMON'] !== '1' && existsSync(sock)) {
    const { RemoteEngine, daemonAnswers } = await import('../client/remote-engine.js');
    if (await daemonAnswers(sock)) {
      trace(`engine: jaulad at ${sock}`);
      return new RemoteEngine(sock);
    }
  }
  trace('engine: local');
  return localEngine();
}

async function localEngine(): Promise<Engine> {
  const { LocalEngine } = await import('../core/local-engine.js');
  return LocalEngine.open();
}

export function engine(): Promise<Engine> {
  chosen ??= pick();
  return chosen;
}

/**
 * The engine for one operation: this process's for a route marked `local` (api/routes.ts says
 * why: a read faster here than through jaulad), else engine().
 */
export async function engineFor(op: EngineOp): Promise<Engine> {
  const { routeOf } = await import('../api/routes.js');
  return routeOf(op).local !== undefined ? localEngine() : engine();
}

/**
 * The outcomes of moves of guests (jaula migrate) that no command has shown yet, on stderr: the
 * next jaula command on either host says how a move ended. One stat when there are none.
 */
export async function tellMoves(): Promise<void> {
  const { join } = await import('node:path');
  if (!existsSync(join(paths().etc, 'moves', 'unseen'))) return;
  try {
    const e = await engine();
    for (const m of await e.listMoves({ unseen: true }))
      process.stderr.write(`jaula: note: ${m.description}\n`);
  } catch {
    /* (told next time) */
  }
}

/**
 * This process's engine for what streams through it (a backup to stdout, a restore from
 * stdin): streams cannot cross jaulad's JSON API. Root's, as any in-process operation.
 */
export async function streamEngine(): Promise<import('../core/local-engine.js').LocalEngine> {
  const { LocalEngine } = await import('../core/local-engine.js');
  return LocalEngine.open();
}
