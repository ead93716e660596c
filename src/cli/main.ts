import { exitCodes, isJaulaError, JaulaError } from '../common/errors.js';
import { parseArgs } from './args.js';
import { err, out, type Command } from './command.js';
import { trace } from '../os/trace.js';

type Loader = () => Promise<Command>;

/** Commands load their modules only when used: `jaula status` does not load the builder. */
const COMMANDS: Record<string, Loader> = {
  build: async () => (await import('./commands/build.js')).build,
  start: async () => (await import('./commands/lifecycle.js')).start,
  stop: async () => (await import('./commands/lifecycle.js')).stop,
  restart: async () => (await import('./commands/lifecycle.js')).restart,
  status: async () => (await import('./commands/info.js')).status,
  list: async () => (await import('./commands/info.js')).listCmd,
  enter: async () => (await import('./commands/exec.js')).enter,
  exec: async () => (await import('./commands/exec.js')).exec,
  run: async () => (await import('./commands/exec.js')).runCmd,
  delete: async () => (await import('./commands/delete.js')).del,
  autostart: async () => (await import('./commands/lifecycle.js')).autostartCmd,
  doctor: async () => (await import('./commands/doctor.js')).doctor,
  set: async () => (await import('./commands/set.js')).set,
  cp: async () => (await import('./commands/cp.js')).cp,
  network: async () => (await import('./commands/network.js')).network,
  template: async () => (await import('./commands/template.js')).template,
  clone: async () => (await import('./commands/clone.js')).clone,
  layer: async () => (await import('./commands/layer.js')).layer,
  hashify: async () => (await import('./commands/hashify.js')).hashify,
  du: async () => (await import('./commands/du.js')).du,
  __exited: async () => (await import('./commands/lifecycle.js')).exited,
};

const ALIASES: Record<string, string> = { ls: 'list', rm: 'delete', destroy: 'delete' };

async function usage(): Promise<string> {
  const lines = ['Usage: jaula COMMAND [OPTIONS] (jaula COMMAND --help for more)', '', 'Commands:'];
  for (const [name, load] of Object.entries(COMMANDS)) {
    if (name.startsWith('__')) continue;
    lines.push(`  ${name.padEnd(11)}${(await load()).summary}`);
  }
  lines.push(
    '',
    "Environment: JAULA_ROOT moves all of jaula's files under another root (default /);",
    'JAULA_RUNTIME=crun|runc overrides the automatic runtime choice.',
  );
  return lines.join('\n') + '\n';
}

export async function main(argv: string[]): Promise<number> {
  trace('main');
  const [first, ...rest] = argv;
  if (!first || first === '--help' || first === '-h' || first === 'help') {
    out(await usage());
    return first ? 0 : 2;
  }
  if (first === '--version' || first === 'version') {
    out('jaula 0.1.0');
    return 0;
  }
  const name = ALIASES[first] ?? first;
  const load = COMMANDS[name];
  if (!load) {
    err(`jaula: unknown command "${first}" (see "jaula --help")`);
    return exitCodes.usage;
  }
  const cmd = await load();
  trace(`command ${name} loaded`);
  if (rest.includes('--help') || rest.includes('-h')) {
    const dd = rest.indexOf('--');
    const h = rest.indexOf('--help') >= 0 ? rest.indexOf('--help') : rest.indexOf('-h');
    if (dd < 0 || h < dd) {
      out(cmd.help);
      return 0;
    }
  }
  try {
    return await cmd.run(parseArgs(rest, cmd.specs, name));
  } catch (e) {
    if (isJaulaError(e)) {
      err(`jaula: ${e.message}`);
      return exitCodes[e.code];
    }
    if (e instanceof Error && e.message.startsWith('--format')) {
      process.stderr.write(`jaula: ${e.message}\n`);
      return exitCodes.usage;
    }
    process.stderr.write(
      `jaula: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    return exitCodes.internal;
  }
}

// Run when executed (bin/jaula.cjs loads the bundle of this file).
void main(process.argv.slice(2))
  .catch((e: unknown) => {
    process.stderr.write(`jaula: ${e instanceof JaulaError ? e.message : String(e)}\n`);
    return exitCodes.internal;
  })
  .then((code) => {
    process.exitCode = code;
  });
