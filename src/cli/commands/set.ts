import { JaulaError } from '../../common/errors.js';
import { configureGuest, type ConfigChanges } from '../../core/configure.js';
import { liveStatus, readState } from '../../core/state.js';
import { setQuota } from '../../core/quota.js';
import { formatSize, parseSize } from '../../common/size.js';
import { parseForward } from '../../network/forward.js';
import { formatInterfaceSpec, parseInterfaceSpec } from '../../network/ifspec.js';
import { bool, list, num, str } from '../args.js';
import { out, type Command } from '../command.js';

export const set: Command = {
  summary: "change a guest's settings (network, hostname, marks, ...)",
  help: `Usage: jaula set NAME [options]

Changes the guest's stored config; network changes apply at its next start
("jaula restart NAME"). Addresses, MACs and forwards are checked against every guest and the
host: a conflict is refused and nothing is changed.

Options:
  --interface SPEC        replace all interfaces (repeatable; see "jaula build --help")
  --add-interface SPEC    add an interface (repeatable)
  --remove-interface IF   remove the interface named IF inside the guest (repeatable)
  --no-interfaces         remove all interfaces (loopback only)
  --forward SPEC          replace all port forwards ([host-ip:]host-port:guest-port[/tcp|/udp])
  --add-forward SPEC      add a port forward
  --remove-forward SPEC   remove a port forward
  --hostname H  --initstyle S  --cmd "CMD"  --mark M (repeatable, replaces)  --depends G
  --stop-timeout S
  --quota SIZE|none       limit the guest's own files (e.g. 4G), or no limit; the guest must be
  --quota-inodes N        stopped (its files are copied into a new image unless it only grows)

Examples:
  jaula set web1 --add-interface eth1=jaula0:auto,isolated
  jaula set web1 --add-forward 8080:80 --add-forward 5353:53/udp
  jaula set web1 --hostname www.example.org`,
  specs: {
    interface: { type: 'list' },
    'add-interface': { type: 'list' },
    'remove-interface': { type: 'list' },
    'no-interfaces': { type: 'bool' },
    forward: { type: 'list' },
    'add-forward': { type: 'list' },
    'remove-forward': { type: 'list' },
    hostname: { type: 'string' },
    initstyle: { type: 'string' },
    cmd: { type: 'string' },
    mark: { type: 'list' },
    depends: { type: 'list' },
    'stop-timeout': { type: 'number' },
    quota: { type: 'string' },
    'quota-inodes': { type: 'number' },
  },
  async run(p) {
    const [name, ...extra] = p.positionals;
    if (!name)
      throw new JaulaError(
        'usage',
        'Give the guest to change: jaula set NAME [options] (see "jaula set --help")',
      );
    if (extra.length)
      throw new JaulaError('usage', `Unexpected arguments "${extra.join(' ')}" (see "jaula set --help")`);
    const ch: ConfigChanges = {};
    if (list(p, 'interface').length) ch.interfaces = list(p, 'interface').map(parseInterfaceSpec);
    if (bool(p, 'no-interfaces')) ch.interfaces = [];
    if (list(p, 'add-interface').length) ch.addInterfaces = list(p, 'add-interface').map(parseInterfaceSpec);
    if (list(p, 'remove-interface').length) ch.removeInterfaces = list(p, 'remove-interface');
    if (list(p, 'forward').length) ch.forwards = list(p, 'forward').map(parseForward);
    if (list(p, 'add-forward').length) ch.addForwards = list(p, 'add-forward').map(parseForward);
    if (list(p, 'remove-forward').length) ch.removeForwards = list(p, 'remove-forward').map(parseForward);
    const hostname = str(p, 'hostname');
    const initstyle = str(p, 'initstyle');
    const cmd = str(p, 'cmd');
    const stopTimeout = num(p, 'stop-timeout');
    if (hostname !== undefined) ch.hostname = hostname;
    if (initstyle !== undefined) ch.initstyle = initstyle;
    if (cmd !== undefined) ch.cmd = cmd.split(/\s+/).filter(Boolean);
    if (list(p, 'mark').length) ch.marks = list(p, 'mark');
    if (list(p, 'depends').length) ch.depends = list(p, 'depends');
    if (stopTimeout !== undefined) ch.stopTimeout = stopTimeout;
    const quota = str(p, 'quota');
    const qi = num(p, 'quota-inodes');
    if (Object.keys(ch).length === 0 && quota === undefined && qi === undefined)
      throw new JaulaError('usage', 'Nothing to change: give at least one option (see "jaula set --help")');
    if (quota !== undefined || qi !== undefined) {
      const q = await setQuota(name, {
        ...(quota !== undefined ? { bytes: quota === 'none' ? null : parseSize(quota, 'quota') } : {}),
        ...(qi !== undefined ? { inodes: qi } : {}),
      });
      out(
        q.storage.quotaBytes
          ? `Guest "${name}" may use ${formatSize(q.storage.quotaBytes)}${q.storage.quotaInodes ? ` and ${q.storage.quotaInodes} inodes` : ''} for its own files.`
          : `Guest "${name}" has no quota.`,
      );
      if (Object.keys(ch).length === 0) return 0;
    }
    const cfg = await configureGuest(name, ch);
    out(
      `Saved the config of guest "${name}"${cfg.interfaces.length ? `; interfaces: ${cfg.interfaces.map(formatInterfaceSpec).join(' ')}` : ''}.`,
    );
    if (liveStatus(readState(name)) !== 'stopped')
      out(`It is running: the change applies at its next start (jaula restart ${name}).`);
    return 0;
  },
};
