/**
 * The command table: every command's name and the module that has it (loaded only when used:
 * `jaula status` does not load the builder). main.ts dispatches from it, and the bash
 * completion and the help test are made from it.
 */
import type { Command } from './command.js';

type Loader = () => Promise<Command>;

export const COMMANDS: Record<string, Loader> = {
  build: async () => (await import('./commands/build.js')).build,
  start: async () => (await import('./commands/lifecycle.js')).start,
  stop: async () => (await import('./commands/lifecycle.js')).stop,
  restart: async () => (await import('./commands/lifecycle.js')).restart,
  status: async () => (await import('./commands/info.js')).status,
  list: async () => (await import('./commands/info.js')).listCmd,
  enter: async () => (await import('./commands/exec.js')).enter,
  exec: async () => (await import('./commands/exec.js')).exec,
  run: async () => (await import('./commands/exec.js')).runCmd,
  console: async () => (await import('./commands/console.js')).consoleCmd,
  logs: async () => (await import('./commands/console.js')).logs,
  rename: async () => (await import('./commands/rename.js')).rename,
  delete: async () => (await import('./commands/delete.js')).del,
  autostart: async () => (await import('./commands/lifecycle.js')).autostartCmd,
  doctor: async () => (await import('./commands/doctor.js')).doctor,
  set: async () => (await import('./commands/set.js')).set,
  cp: async () => (await import('./commands/cp.js')).cp,
  network: async () => (await import('./commands/network.js')).network,
  ps: async () => (await import('./commands/monitor.js')).ps,
  top: async () => (await import('./commands/monitor.js')).top,
  stat: async () => (await import('./commands/stat.js')).stat,
  metrics: async () => (await import('./commands/metrics.js')).metrics,
  template: async () => (await import('./commands/template.js')).template,
  clone: async () => (await import('./commands/clone.js')).clone,
  layer: async () => (await import('./commands/layer.js')).layer,
  hashify: async () => (await import('./commands/hashify.js')).hashify,
  du: async () => (await import('./commands/du.js')).du,
  pool: async () => (await import('./commands/pool.js')).pool,
  daemon: async () => (await import('./commands/daemon.js')).daemon,
  info: async () => (await import('./commands/daemon.js')).info,
  fleet: async () => (await import('./commands/fleet.js')).fleet,
  completion: async () => (await import('./commands/completion.js')).completion,
  remote: async () => (await import('./commands/remote.js')).remote,
  migrate: async () => (await import('./commands/migrate.js')).migrate,
  backup: async () => (await import('./commands/backup.js')).backup,
  restore: async () => (await import('./commands/backup.js')).restore,
  snapshot: async () => (await import('./commands/snapshot.js')).snapshot,
  image: async () => (await import('./commands/image.js')).image,
  __exited: async () => (await import('./commands/lifecycle.js')).exited,
  __names: async () => (await import('./commands/completion.js')).names,
};

export const ALIASES: Record<string, string> = { ls: 'list', rm: 'delete', destroy: 'delete' };
