import { formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { table } from '../table.js';

export const doctor: Command = {
  summary: 'report the runtime, cgroup mode and kernel features jaula relies on',
  help: `Usage: jaula doctor [--security] [--format table|json]

Reports the runtime, cgroup mode, kernel features and tools jaula relies on; with --security,
what protects guests on this host (user namespaces, the barrier that keeps host users out of
guests' and templates' trees, nosuid,nodev storage mounts, idmapped mounts, seccomp, devices,
capabilities, kernel settings) and which guests are privileged; a weakened barrier is reported
with the command that fixes it.
Exit status 1 when something jaula needs is missing.

Examples:
  jaula doctor
  jaula doctor --security --format json`,
  specs: { format: { type: 'string' }, security: { type: 'bool' } },
  async run(p) {
    const checks = await (await engine()).doctor({ security: p.opts['security'] === true });
    if (formatOf(p) === 'json') json(checks);
    else
      out(
        table(
          ['AREA', 'CHECK', 'STATUS', 'DETAIL'],
          checks.map((c) => [c.area, c.name, c.status, c.detail]),
        ),
      );
    return checks.some((c) => c.status === 'missing') ? 1 : 0;
  },
};
