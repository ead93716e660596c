import { codeMeanings, exitCodes, isJaulaError, JaulaError, type ErrorCode } from '../common/errors.js';
import { parseArgs } from './args.js';
import { err, out } from './command.js';
import { ALIASES, COMMANDS } from './registry.js';
import { trace } from '../os/trace.js';
import { VERSION } from '../common/version.js';

async function usage(): Promise<string> {
  const lines = ['Usage: jaula COMMAND [OPTIONS] (jaula COMMAND --help for more)', '', 'Commands:'];
  for (const [name, load] of Object.entries(COMMANDS)) {
    if (name.startsWith('__')) continue;
    lines.push(`  ${name.padEnd(11)}${(await load()).summary}`);
  }
  // One line per exit status, from the error table (codes that share a status share its line).
  const byStatus = new Map<number, string[]>();
  for (const [code, status] of Object.entries(exitCodes) as [ErrorCode, number][])
    byStatus.set(status, [...(byStatus.get(status) ?? []), codeMeanings[code]]);
  lines.push(
    '',
    "Exit status: 0 success (exec and run: their command's own; status: 3 when the guest does not run;",
    "doctor: 1 when something is missing); jaula's errors:",
  );
  for (const [status, what] of [...byStatus].sort((a, b) => a[0] - b[0]))
    lines.push(`  ${String(status).padStart(3)}  ${what.join('; ')}`);
  lines.push(
    '',
    "Environment: JAULA_ROOT moves all of jaula's files under another root (default /);",
    'JAULA_RUNTIME=crun|runc overrides the automatic runtime choice. While jaulad runs, commands go',
    'through it; JAULA_NO_DAEMON=1 makes them work in this process instead.',
  );
  return lines.join('\n') + '\n';
}

/** After a command that may run where a move ended: say so (cli/engine.ts tellMoves). */
async function tellAfter(name: string): Promise<void> {
  if (name.startsWith('__') || name === 'completion' || name === 'daemon') return;
  await (await import('./engine.js')).tellMoves();
}

export async function main(argv: string[]): Promise<number> {
  trace('main');
  const [first, ...rest] = argv;
  if (!first || first === '--help' || first === '-h' || first === 'help') {
    out(await usage());
    return first ? 0 : 2;
  }
  if (first === '--version' || first === 'version') {
    out(`jaula ${VERSION}`);
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
    const code = await cmd.run(parseArgs(rest, cmd.specs, name));
    await tellAfter(name);
    return code;
  } catch (e) {
    await tellAfter(name);
    if (isJaulaError(e)) {
      err(`jaula: ${e.message}`);
      return exitCodes[e.code];
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
    // Exit at once: every command has awaited its work, and waiting for the event loop to drain
    // would also wait for V8's background compiles of hot functions, useless now (tens of ms
    // after listing hundreds of guests).
    process.exit(code);
  });
