import { enterGuest, execInGuest, runOnce } from '../../core/exec.js';
import { bool, list, onePositional, str } from '../args.js';
import { type Command } from '../command.js';

export const enter: Command = {
  summary: 'open an interactive shell inside a running guest',
  help: `Usage: jaula enter NAME

A login shell (bash if the guest has it, else sh) on a fresh pty inside the guest, with no
password: the host may always enter its guests, never the reverse.`,
  specs: {},
  async run(p) {
    return enterGuest(onePositional(p, 'enter'));
  },
};

export const exec: Command = {
  summary: 'run a command inside a running guest',
  help: `Usage: jaula exec NAME [-t] [-e VAR=VALUE]... [--cwd DIR] [--user UID[:GID]] -- CMD [ARGS...]

Standard input, output and error are passed through; the exit status is the command's.

Examples:
  jaula exec vs01 -- ps aux
  echo hello | jaula exec vs01 -- cat`,
  specs: {
    tty: { type: 'bool', short: 't' },
    env: { type: 'list', short: 'e' },
    cwd: { type: 'string' },
    user: { type: 'string', short: 'u' },
  },
  async run(p) {
    const name = onePositional(p, 'exec');
    const o: { tty: boolean; env: string[]; cwd?: string; user?: string } = {
      tty: bool(p, 'tty'),
      env: list(p, 'env'),
    };
    const cwd = str(p, 'cwd');
    const user = str(p, 'user');
    if (cwd) o.cwd = cwd;
    if (user) o.user = user;
    return execInGuest(name, p.rest, o);
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
    return runOnce(onePositional(p, 'run'), p.rest);
  },
};
