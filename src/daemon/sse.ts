/**
 * GET /v1/events: Server-Sent Events. "hello" (all guests and jobs), then every change the hub
 * publishes; with job=ID only that job, from its start, ending when it ends. A keepalive comment
 * every 15 s holds idle streams open through proxies; a client that does not read is dropped
 * past 16 MiB held.
 */
import type * as http from 'node:http';
import type { JaulaEvent } from '../api/types.js';
import type { EventHub, GuestWatcher } from './events.js';
import type { Jobs } from './jobs.js';

export class EventStreams {
  private readonly open = new Set<http.ServerResponse>();
  private keepalive: NodeJS.Timeout | undefined;

  constructor(
    private readonly hub: EventHub,
    private readonly watcher: GuestWatcher,
    private readonly jobs: Jobs,
  ) {}

  start(): void {
    this.keepalive = setInterval(() => {
      for (const r of this.open) r.write(': keepalive\n\n');
    }, 15_000);
    this.keepalive.unref();
  }

  stop(): void {
    if (this.keepalive) clearInterval(this.keepalive);
    for (const r of this.open) r.end();
  }

  serve(res: http.ServerResponse, jobId: string | undefined): void {
    const job = jobId ? this.jobs.get(jobId) : undefined; // an unknown job: a 404, before the stream
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const send = (ev: JaulaEvent): void => {
      res.write(`data: ${JSON.stringify(ev)}\n\n`);
      if (res.writableLength > 16 << 20) res.destroy(); // a client that does not read
    };
    res.write('retry: 2000\n\n');
    let unsubscribe: () => void;
    if (job) {
      send({ type: 'job', at: new Date().toISOString(), job });
      if (job.state !== 'running') {
        res.end();
        return;
      }
      unsubscribe = this.hub.subscribe((ev) => {
        if (ev.type !== 'job' || ev.job.id !== jobId) return;
        send(ev);
        if (ev.job.state !== 'running') res.end();
      });
    } else {
      send({
        type: 'hello',
        at: new Date().toISOString(),
        guests: this.watcher.all(),
        jobs: this.jobs.list(),
      });
      unsubscribe = this.hub.subscribe(send);
    }
    this.open.add(res);
    res.on('close', () => {
      unsubscribe();
      this.open.delete(res);
    });
  }
}
