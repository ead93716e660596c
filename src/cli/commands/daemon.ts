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
                    [--listen ADDRESS:PORT --token-file FILE [--tls-cert CERT --tls-key KEY]
                     [--host-files DIR] [--allow-host NAME,...] [--allow-guests] [--allow-moves]]

jaulad serves jaula's REST API (OpenAPI document at /v1/openapi.json) on the unix socket
$JAULA_ROOT/run/jaula/jaulad.sock (mode 0600: root only). With --listen it also serves the API
and the web dashboard on TCP: every request needs the token of --token-file ("Authorization:
Bearer TOKEN", or ?access_token= for the dashboard's stream and console); without TLS only on a
loopback address. While it runs, every jaula command goes through it (JAULA_NO_DAEMON=1: not).

The token is root over every guest: whoever holds it can build, start, stop and delete guests
and run any command in them. It is not root over the host's files: over TCP, host paths (cp,
template import and export, a build from an archive) are only those beneath --host-files DIR
(none without it). The token file must be root's and mode 0600. ADDRESS is an IP address
(127.0.0.1, [::1], 0.0.0.0); guests on jaula bridges cannot reach the port (jaula's firewall
drops their packets) unless --allow-guests. Requests over TCP must name the host by an IP
address, localhost or a name of --allow-host (DNS rebinding), and pages of other sites are
refused (Origin). Moving guests to other hosts (migrate, fleet drain and balance, the
dashboard's Move and Drain) uses this host's tokens for its remotes, so over TCP it is refused
unless --allow-moves: then token holders may move this host's guests, only to the remotes root
added (jaula remote add); the remotes' tokens never leave jaulad. See
docs/security/threat-model.md.

At start it reconciles: guests that ended meanwhile are marked stopped with the reason,
interrupted starts are rolled back and interrupted stops completed, leftovers (mounts, runtime
state, cgroups, network devices) are removed, and after a host reboot the guests marked
"default" are started in dependency order (--no-autostart: not). Guests keep running when
jaulad stops or dies. contrib/systemd/jaulad.service runs it under systemd.

Examples:
  jaula daemon
  (umask 077; openssl rand -hex 32 > /etc/jaula/token)
  jaula daemon --listen 127.0.0.1:7440 --token-file /etc/jaula/token --host-files /srv/jaula
  jaula daemon --listen 0.0.0.0:7443 --token-file /etc/jaula/token --tls-cert cert.pem --tls-key key.pem \\
               --allow-host vhost1.example.com
  curl --unix-socket /run/jaula/jaulad.sock http://jaulad/v1/guests`,
  specs: {
    socket: { type: 'string' },
    listen: { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'token-file': { type: 'string' },
    'host-files': { type: 'string' },
    'allow-host': { type: 'string' },
    'allow-guests': { type: 'bool' },
    'allow-moves': { type: 'bool' },
    'no-autostart': { type: 'bool' },
  },
  async run(p) {
    const argv: string[] = [];
    for (const k of ['socket', 'listen', 'tls-cert', 'tls-key', 'token-file', 'host-files', 'allow-host']) {
      const v = str(p, k);
      if (v !== undefined) argv.push(`--${k}`, v);
    }
    for (const k of ['no-autostart', 'allow-guests', 'allow-moves']) if (bool(p, k)) argv.push(`--${k}`);
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
    if (i.daemon?.hostFiles) rows.push(['host files over TCP', `beneath ${i.daemon.hostFiles}`]);
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
