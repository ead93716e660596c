import { doctor as runDoctor } from '../../core/doctor.js';
import { formatOf, json, out, type Command } from '../command.js';
import { table } from '../table.js';

export const doctor: Command = {
  summary: 'report the runtime, cgroup mode and kernel features jaula relies on',
  help: `Usage: jaula doctor [--format table|json]

Exit status 1 when something jaula needs is missing.`,
  specs: { format: { type: 'string' } },
  async run(p) {
    const checks = await runDoctor();
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
