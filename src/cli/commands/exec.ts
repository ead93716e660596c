import { JaulaError } from '../../common/errors.js';
import { bool, list, onePositional, str } from '../args.js';
import { eachGuest, isBulk, parallelOf, printBulk, selectGuests, SELECTOR_SPECS } from '../bulk.js';
import { type Command } from '../command.js';
import { engine } from '../engine.js';

export const enter: Command = {
  summary: 'open an interactive shell inside a running guest',
  help: `Usage: jaula enter NAME

A login shell (bash if the guest has it, else sh) on a fresh pty inside the guest, with no
password: the host may always enter its guests, never the reverse.

Example:
  jaula enter vs01`,
  specs: {},
  async run(p) {
    return (await engine()).enterGuest({ name: onePositional(p, 'enter') });
  },
};

export const exec: Command = {
  summary: 'run a command inside running guests',
  help: `Usage: jaula exec NAME [-t] [-e VAR=VALUE]... [--cwd DIR] [--user UID[:GID]] -- CMD [ARGS...]
       jaula exec NAME... | --mark M | --all  [--parallel N] [--format table|json] -- CMD [ARGS...]

With one guest, standard input, output and error are passed through and the exit status is
the command's. With several (selectors), the command runs in each selected guest, at most
--parallel N (default 8) at a time, without input; a table shows each guest's exit status and
last line of output (--format json: all of it); the exit status is 0 when all succeeded.
--all and --mark pass over guests that do not run; a guest named on the command line must run.

Only the command enters the guest, already set up: the guest's ps never shows a process of jaula
or of the runtime (docs/adr/0004-inside-the-guest.md).

Exit status: the command's own. When the command could not be started, jaula says why on
standard error ("jaula: ...") and exits with one of its own: 127 no such command in the guest,
126 the command cannot be executed, 12 the guest is at a limit (its pids.max), 6 the guest does
not run, 4 no such guest or --cwd, 2 wrong usage (see "jaula --help" for all).

Examples:
  jaula exec vs01 -- ps aux
  echo hello | jaula exec vs01 -- cat
  jaula exec --mark web -- /etc/init.d/nginx reload
  jaula exec --all --format json -- uptime`,
  specs: {
    ...SELECTOR_SPECS,
    tty: { type: 'bool', short: 't' },
    env: { type: 'list', short: 'e' },
    cwd: { type: 'string' },
    user: { type: 'string', short: 'u' },
  },
  async run(p) {
    const e = await engine();
    const cwd = str(p, 'cwd');
    const user = str(p, 'user');
    if (isBulk(p)) {
      if (!p.rest.length)
        throw new JaulaError('usage', 'Give the command after "--": jaula exec --all -- CMD');
      // A guest named on the command line must run; --all and --mark pass over stopped ones.
      const named = new Set(p.positionals);
      const rows = await eachGuest(await selectGuests(e, p, 'exec'), parallelOf(p), async (g) => {
        if (g.status === 'broken') return { name: g.name, ok: false, message: g.error ?? 'broken' };
        if (g.status !== 'running')
          return { name: g.name, ok: !named.has(g.name), message: `skipped: the guest is ${g.status}` };
        const r = await e.execCapture({
          name: g.name,
          cmd: p.rest,
          env: list(p, 'env'),
          ...(cwd ? { cwd } : {}),
          ...(user ? { user } : {}),
        });
        return {
          name: g.name,
          ok: r.code === 0,
          message: `exit ${r.code}${r.dropped ? '; output past 1 MiB dropped' : ''}`,
          code: r.code,
          stdout: r.stdout,
          stderr: r.stderr,
          ...(r.dropped ? { dropped: r.dropped } : {}),
        };
      });
      return printBulk(p, rows, 'No guest selected.');
    }
    const name = onePositional(p, 'exec');
    if (!p.rest.length)
      throw new JaulaError('usage', `Give the command to run: jaula exec ${name} -- CMD [ARGS...]`);
    return e.execInteractive({
      name,
      cmd: p.rest,
      tty: bool(p, 'tty'),
      env: list(p, 'env'),
      ...(cwd ? { cwd } : {}),
      ...(user ? { user } : {}),
    });
  },
};

export const runCmd: Command = {
  summary: 'one-shot: start a stopped guest with a command, stop it when the command ends',
  help: `Usage: jaula run NAME -- CMD [ARGS...]

Like lxc-execute: the command runs under jaula-init as the guest's only program, with stdio
attached; the exit status is the command's.

Example:
  jaula run vs01 -- /bin/true`,
  specs: {},
  async run(p) {
    const name = onePositional(p, 'run');
    if (!p.rest.length)
      throw new JaulaError('usage', `Give the command to run: jaula run ${name} -- CMD [ARGS...]`);
    return (await engine()).runOnce({ name, cmd: p.rest });
  },
};
