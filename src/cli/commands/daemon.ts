import { createRequire } from 'node:module';
import { join } from 'node:path';
import { projectDir } from '../../os/paths.js';
import { bool, str } from '../args.js';
import { formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { table } from '../table.js';

export const daemon: Command = {
  summary: 'run jaulad: the REST API, event stream and web dashboard (in the foreground)',
  help: `Usage: jaula daemon [--socket PATH] [--no-autostart]
                    [--listen HOST:PORT --token-file FILE [--tls-cert CERT --tls-key KEY]]

jaulad serves jaula's REST API (OpenAPI document at /v1/openapi.json) on the unix socket
$JAULA_ROOT/run/jaula/jaulad.sock (mode 0600: root only). With --listen it also serves the API
and the web dashboard on TCP: every request needs the token of --token-file ("Authorization:
Bearer TOKEN", or ?access_token= for the dashboard's stream and console); without TLS only on a
loopback address. While it runs, every jaula command goes through it (JAULA_NO_DAEMON=1: not).

At start it reconciles: guests that ended meanwhile are marked stopped with the reason,
interrupted starts are rolled back and interrupted stops completed, leftovers (mounts, runtime
state, cgroups, network devices) are removed, and after a host reboot the guests marked
"default" are started in dependency order (--no-autostart: not). Guests keep running when
jaulad stops or dies. contrib/systemd/jaulad.service runs it under systemd.

Examples:
  jaula daemon
  openssl rand -hex 32 > /etc/jaula/token
  jaula daemon --listen 0.0.0.0:7443 --token-file /etc/jaula/token --tls-cert cert.pem --tls-key key.pem
  curl --unix-socket /run/jaula/jaulad.sock http://jaulad/v1/guests`,
  specs: {
    socket: { type: 'string' },
    listen: { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'token-file': { type: 'string' },
    'no-autostart': { type: 'bool' },
  },
  async run(p) {
    const argv: string[] = [];
    for (const k of ['socket', 'listen', 'tls-cert', 'tls-key', 'token-file']) {
      const v = str(p, k);
      if (v !== undefined) argv.push(`--${k}`, v);
    }
    if (bool(p, 'no-autostart')) argv.push('--no-autostart');
    // jaulad is its own bundle: loaded only here, so the CLI's other commands do not pay for it.
    const req = createRequire(join(projectDir, 'package.json'));
    (req(join(projectDir, 'dist/jaulad.cjs')) as { daemonMain: (a: string[]) => void }).daemonMain(argv);
    return new Promise<number>(() => {}); // jaulad exits the process itself
  },
};

export const info: Command = {
  summary: "jaula's version, whether jaulad serves this command, and its last reconcile",
  help: `Usage: jaula info [--format table|json]

Examples:
  jaula info
  jaula info --format json`,
  specs: { format: { type: 'string' } },
  async run(p) {
    const i = await (await engine()).getInfo();
    if (formatOf(p) === 'json') {
      json(i);
      return 0;
    }
    const rows: [string, string][] = [
      ['version', i.version],
      [
        'engine',
        i.engine === 'remote'
          ? `jaulad (pid ${i.daemon?.pid ?? '?'}, ${i.daemon?.socket ?? ''})`
          : 'local (jaulad does not run)',
      ],
      ['root', i.root],
      ['boot id', i.bootId],
      [
        'features',
        Object.entries(i.features)
          .filter(([, v]) => v)
          .map(([k]) => k)
          .join(', ') || '-',
      ],
    ];
    if (i.daemon?.listen) rows.push(['listening', i.daemon.listen]);
    const r = i.daemon?.reconcile;
    if (r)
      rows.push([
        'reconciled',
        `${r.at}: ${r.settled.length} settled, ${r.rolledBack.length} starts rolled back, ${r.completedStops.length} stops completed, ${r.mounts.length + r.runtimeStates.length + r.cgroups.length + r.network.length} leftovers removed${r.hostRebooted ? ', new boot' : ''}`,
      ]);
    out(table(['WHAT', 'VALUE'], rows));
    return 0;
  },
};
