/** jaula metrics: the guests' counters as Prometheus' exposition, once or served over HTTP. */
import { JaulaError } from '../../common/errors.js';
import { prometheusText } from '../../core/monitor/prometheus.js';
import { str } from '../args.js';
import { out, type Command } from '../command.js';
import { sample } from './monitor.js';

function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(s);
  const port = Number(m?.[3]);
  if (!m || port > 65535)
    throw new JaulaError('usage', `--listen needs ADDRESS:PORT (e.g. 127.0.0.1:9100), not "${s}"`);
  return { host: (m[1] ?? m[2]) as string, port };
}

export const metrics: Command = {
  summary: "Prometheus metrics of the guests' CPU, memory, pids, I/O, network and limit hits",
  help: `Usage: jaula metrics                       print the exposition once
       jaula metrics --listen ADDRESS:PORT   serve it over HTTP at /metrics until stopped

Every series has the labels guest="NAME" and context="ID". Families: jaula_guest_cpu_usage_seconds_total,
jaula_guest_cpu_seconds_total{mode}, jaula_guest_cpu_throttled_periods_total,
jaula_guest_memory_usage_bytes, jaula_guest_memory_limit_bytes, jaula_guest_memory_limit_hits_total,
jaula_guest_oom_kills_total, jaula_guest_pids, jaula_guest_pids_limit,
jaula_guest_pids_limit_hits_total, jaula_guest_io_bytes_total{direction},
jaula_guest_network_bytes_total{direction}, jaula_guest_processes, jaula_guest_start_time_seconds
and more (see the HELP lines).

Examples:
  jaula metrics
  jaula metrics --listen 127.0.0.1:9100     # port 0 picks a free one (printed)`,
  specs: { listen: { type: 'string' } },
  async run(p) {
    const listen = str(p, 'listen');
    if (!listen) {
      out(prometheusText(await sample([], true)));
      return 0;
    }
    const { host, port } = parseListen(listen);
    const http = await import('node:http');
    const server = http.createServer((req, res) => void scrape(req, res));
    const scrape = async (
      req: import('node:http').IncomingMessage,
      res: import('node:http').ServerResponse,
    ) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' || (path !== '/metrics' && path !== '/')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('jaula: try /metrics\n');
        return;
      }
      try {
        const body = prometheusText(await sample([], true));
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body);
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`jaula: ${(e as Error).message}\n`);
      }
    };
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(new JaulaError('io', `Cannot listen on ${listen}: ${(e as Error).message}`, { cause: e })),
      );
      server.listen(port, host, resolve);
    });
    const addr = server.address();
    const real = typeof addr === 'object' && addr ? addr.port : port;
    out(`Serving Prometheus metrics at http://${host.includes(':') ? `[${host}]` : host}:${real}/metrics`);
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        server.close(() => resolve());
        server.closeAllConnections();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  },
};
