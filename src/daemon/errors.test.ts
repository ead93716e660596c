import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fromErrorInfo } from '../api/errors.js';
import type { ApiError } from '../api/types.js';
import { JaulaError } from '../common/errors.js';
import { findRoute } from './dispatch.js';
import { sendError } from './http.js';
import { Jobs } from './jobs.js';

/**
 * Errors across the wire: jaulad's answer carries a JaulaError's code, message and details, and
 * the client's side (fromErrorInfo, which RemoteEngine uses) rebuilds it whole. A real HTTP
 * server on a unix socket answers with sendError.
 */
describe('errors across the wire', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jaula-errors-'));
  const socket = join(dir, 'sock');
  let fail: unknown;
  const server = http.createServer((_req, res) => sendError(res, fail, false, () => {}));

  before(() => new Promise<void>((resolve) => server.listen(socket, resolve)));
  const get = (method: string, path: string) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }>((resolve, reject) =>
      http
        .request({ socketPath: socket, method, path }, (res) => {
          let text = '';
          res.on('data', (b: Buffer) => (text += b.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        })
        .on('error', reject)
        .end(),
    );
  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the details: the client rebuilds the JaulaError jaulad threw', async () => {
    fail = new JaulaError('runtime', '"crun start x" failed with status 1: no', {
      details: { argv: ['crun', 'start', 'x'], code: 1, stderr: 'no\n' },
    });
    const r = await get('GET', '/v1/guests/x');
    assert.equal(r.status, 500);
    const body = JSON.parse(r.text) as ApiError;
    assert.throws(
      () => {
        throw fromErrorInfo(body.error, 'internal', 'no message');
      },
      (e: unknown) => {
        assert.ok(e instanceof JaulaError);
        assert.equal(e.code, 'runtime');
        assert.equal(e.message, '"crun start x" failed with status 1: no');
        assert.deepEqual(e.details, { argv: ['crun', 'start', 'x'], code: 1, stderr: 'no\n' });
        return true;
      },
    );
  });

  it('answers a method the path does not take with 405 and an Allow header', async () => {
    try {
      findRoute('PUT', '/v1/guests');
      assert.fail('PUT /v1/guests was found');
    } catch (e) {
      fail = e;
    }
    const r = await get('PUT', '/v1/guests');
    assert.equal(r.status, 405);
    assert.equal(r.headers['allow'], 'GET, POST');
    assert.equal((JSON.parse(r.text) as { error: { code: string } }).error.code, 'usage');
  });

  it("keeps a failed job's details", async () => {
    const ended = new Promise<unknown>((resolve) => {
      const jobs = new Jobs((job) => {
        if (job.state !== 'running') resolve(job.error);
      });
      jobs.start('buildGuest', 'x', () =>
        Promise.reject(new JaulaError('invalid', 'bad config', { details: { line: 3 } })),
      );
    });
    assert.deepEqual(await ended, { code: 'invalid', message: 'bad config', details: { line: 3 } });
  });
});
