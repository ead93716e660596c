/**
 * Jobs: long operations (build, clone, template save/import/export, hashify) run by jaulad
 * while their progress goes to the event stream. A job lives in memory only: if jaulad dies
 * during one, the operation's own crash safety applies (a half-built or half-cloned guest, a
 * temporary template or archive are removed at the next start; hashify resumes) and the job is
 * forgotten.
 */
import { randomBytes } from 'node:crypto';
import type { Job } from '../api/types.js';
import { errorInfo } from '../api/errors.js';
import { isJaulaError, JaulaError } from '../common/errors.js';
import type { JobHooks } from '../api/engine.js';
import { tmpSuffix } from '../os/fs.js';

const KEEP_ENDED = 200;
const MAX_PROGRESS = 500;

export class Jobs {
  private readonly jobs = new Map<string, { job: Job; abort: AbortController }>();
  constructor(
    private readonly publish: (job: Job) => void,
    private readonly log: (line: string) => void = () => {},
  ) {}

  start(op: string, target: string, fn: (hooks: JobHooks) => Promise<unknown>): Job {
    const abort = new AbortController();
    const job: Job = {
      id: tmpSuffix(),
      op,
      target,
      state: 'running',
      progress: [],
      createdAt: new Date().toISOString(),
    };
    this.jobs.set(job.id, { job, abort });
    this.publish(job);
    const hooks: JobHooks = {
      signal: abort.signal,
      onProgress: (line, fraction) => {
        job.progress.push(line);
        if (job.progress.length > MAX_PROGRESS) job.progress.splice(0, job.progress.length - MAX_PROGRESS);
        if (fraction !== undefined) job.fraction = fraction;
        this.publish(job);
      },
    };
    void fn(hooks).then(
      (result) => this.end(job, 'succeeded', { result }),
      (e: unknown) => {
        const state = abort.signal.aborted ? 'cancelled' : 'failed';
        if (isJaulaError(e)) return this.end(job, state, { error: errorInfo(e) });
        // A fault of jaulad (not a JaulaError) is logged whole; the job, which every API
        // client sees, names only a reference (its message may hold host paths).
        const ref = randomBytes(4).toString('hex');
        this.log(
          `internal error ${ref} in job ${job.id}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
        );
        this.end(job, state, {
          error: { code: 'internal', message: `jaulad failed (reference ${ref} in its log)` },
        });
      },
    );
    return job;
  }

  private end(job: Job, state: Job['state'], extra: Partial<Job>): void {
    Object.assign(job, extra, { state, endedAt: new Date().toISOString() });
    if (state === 'succeeded') job.fraction = 1;
    this.publish(job);
    const ended = [...this.jobs.values()].filter((j) => j.job.state !== 'running');
    for (const j of ended.slice(0, Math.max(0, ended.length - KEEP_ENDED))) this.jobs.delete(j.job.id);
  }

  list(): Job[] {
    return [...this.jobs.values()].map((j) => j.job);
  }

  get(id: string): Job {
    const j = this.jobs.get(id);
    if (!j) throw new JaulaError('not_found', `There is no job "${id}" (see GET /v1/jobs)`);
    return j.job;
  }

  cancel(id: string): Job {
    const j = this.jobs.get(id);
    if (!j) throw new JaulaError('not_found', `There is no job "${id}" (see GET /v1/jobs)`);
    if (j.job.state === 'running')
      j.abort.abort(new JaulaError('runtime', `The job was cancelled; what it made was removed`));
    return j.job;
  }

  running(): number {
    return this.list().filter((j) => j.state === 'running').length;
  }
}
