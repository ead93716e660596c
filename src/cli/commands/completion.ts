/**
 * `jaula completion bash`: a bash completion script made from the command table (commands,
 * aliases, every command's options and the values some take), so it never drifts from the CLI.
 * Guest and network names come from `jaula __names` when completing.
 */
import { JaulaError } from '../../common/errors.js';
import { onePositional } from '../args.js';
import { out, type Command } from '../command.js';
import { ALIASES, COMMANDS } from '../registry.js';

/** What the value of an option is, for completion: words, or guests, networks, files. */
const VALUES: Record<string, string> = {
  format: 'table json',
  method: 'skeleton template debootstrap',
  initstyle: 'plain sysv cmd',
  profile: 'default full-os',
  mode: 'exec enter run',
  depends: '@guests',
  socket: '@files',
  'tls-cert': '@files',
  'tls-key': '@files',
  'token-file': '@files',
  'host-files': '@files',
  to: '@files',
};

/** Commands whose positionals are not guest names. */
const POSITIONALS: Record<string, string> = {
  build: '',
  doctor: '',
  info: '',
  daemon: '',
  autostart: '',
  completion: 'bash',
  cp: '@files',
  restore: '@files',
};

const quote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;

export async function bashCompletion(): Promise<string> {
  const names = Object.keys(COMMANDS).filter((n) => !n.startsWith('__'));
  const cases: string[] = [];
  for (const name of names) {
    const cmd = await (COMMANDS[name] as () => Promise<Command>)();
    const opts: string[] = [];
    const takes: string[] = [];
    const shorts: string[] = [];
    for (const [k, spec] of Object.entries(cmd.specs)) {
      opts.push(`--${k}`);
      if (spec.short) {
        opts.push(`-${spec.short}`);
        shorts.push(`-${spec.short}:--${k}`);
      }
      if (spec.type !== 'bool') takes.push(`--${k}`);
    }
    opts.push('--help');
    const positional = cmd.verbs ? cmd.verbs.join(' ') : (POSITIONALS[name] ?? '@guests');
    cases.push(
      `    ${name}) opts=${quote(opts.join(' '))}; takes=${quote(takes.join(' '))}; shorts=${quote(shorts.join(' '))}; pos=${quote(positional)} ;;`,
    );
  }
  const values = Object.entries(VALUES)
    .map(([k, v]) => `    --${k}) _jaula_words ${quote(v)} ;;`)
    .join('\n');
  const aliases = Object.entries(ALIASES)
    .map(([a, c]) => `    ${a}) cmd=${c} ;;`)
    .join('\n');
  return `# bash completion for jaula, made by "jaula completion bash" from jaula's command table.
# Install: jaula completion bash > /usr/share/bash-completion/completions/jaula
_jaula_words() {
  local w=$1
  case $w in
    @guests) w=$(jaula __names guests 2>/dev/null) ;;
    @networks) w=$(jaula __names networks 2>/dev/null) ;;
    @files) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  COMPREPLY=($(compgen -W "$w" -- "$cur"))
}
_jaula() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} i
  # After "--" come the guest's own command and arguments.
  for ((i = 1; i < COMP_CWORD; i++)); do [[ \${COMP_WORDS[i]} == -- ]] && return 0; done
  if ((COMP_CWORD == 1)); then
    COMPREPLY=($(compgen -W ${quote([...names, ...Object.keys(ALIASES), '--help', '--version'].join(' '))} -- "$cur"))
    return 0
  fi
  local cmd=\${COMP_WORDS[1]} opts='' takes='' shorts='' pos='' s
  case $cmd in
${aliases}
  esac
  case $cmd in
${cases.join('\n')}
    *) return 0 ;;
  esac
  for s in $shorts; do [[ $prev == "\${s%%:*}" ]] && prev=\${s#*:}; done
  if [[ " $takes " == *" $prev "* ]]; then
    case $prev in
${values}
      *) COMPREPLY=() ;;
    esac
    return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [[ $cmd == network ]] && ((COMP_CWORD > 2)); then
    _jaula_words @networks
  else
    _jaula_words "$pos"
  fi
}
complete -F _jaula jaula
`;
}

export const completion: Command = {
  summary: 'print a bash completion script (made from the command table)',
  help: `Usage: jaula completion bash

Prints a bash completion script for jaula: commands, their options, option values, guest and
network names. "./setup install" installs it.

Examples:
  jaula completion bash > /usr/share/bash-completion/completions/jaula
  source <(jaula completion bash)`,
  specs: {},
  async run(p) {
    const shell = onePositional(p, 'completion', 'SHELL');
    if (shell !== 'bash')
      throw new JaulaError('unsupported', `No completion for "${shell}": only bash (jaula completion bash)`);
    out(await bashCompletion());
    return 0;
  },
};

export const names: Command = {
  summary: 'internal: guest or network names, one a line (for completion)',
  help: 'Usage: jaula __names guests|networks (internal)',
  specs: {},
  async run(p) {
    const what = onePositional(p, '__names', 'guests|networks');
    if (what === 'networks') {
      const { listNetworks } = await import('../../network/networks.js');
      out(
        listNetworks()
          .map((n) => n.name)
          .join('\n'),
      );
    } else {
      const { listGuestNames } = await import('../../guest/store.js');
      out(listGuestNames().join('\n'));
    }
    return 0;
  },
};
