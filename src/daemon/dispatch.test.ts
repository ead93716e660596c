import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Engine, JobHooks } from '../api/engine.js';
import { ROUTES, SCHEMAS, type EngineOp, type Route } from '../api/routes.js';
import type { Schema } from '../api/schema.js';
import { engineCall, findRoute } from './dispatch.js';

const engineOps = (ROUTES as readonly Route[]).filter((r) => r.engine).map((r) => r.op as EngineOp);

describe("jaulad's dispatch", () => {
  it('calls, for every engine route, the Engine method of its name with its arguments (and a job its hooks)', async () => {
    const calls: { method: string; args: unknown[] }[] = [];
    const engine = new Proxy({} as Engine, {
      get:
        (_t, method: string) =>
        async (...args: unknown[]) => {
          calls.push({ method, args });
          return method;
        },
    });
    const hooks: JobHooks = { onProgress: () => {} };
    assert.ok(engineOps.length > 25);
    for (const op of engineOps) {
      calls.length = 0;
      const args = { name: 'g1' };
      assert.equal(await engineCall(op)(engine, args, hooks), op);
      assert.equal(calls.length, 1, op);
      assert.equal(calls[0]?.method, op);
      const route = (ROUTES as readonly Route[]).find((r) => r.op === op) as Route;
      const takes = calls[0]?.args ?? [];
      // Methods without a request (listNetworks, networkGc, ...) take nothing.
      if (takes.length) assert.equal(takes[0], args, op);
      if (route.job) assert.equal(takes[1], hooks, op);
    }
  });

  it('finds each route by its method and path; another method is a 405 naming the allowed ones', () => {
    assert.equal(findRoute('GET', '/v1/guests/g1/limits').route.op, 'getLimits');
    assert.deepEqual(findRoute('PUT', '/v1/guests/g1/limits').params, { name: 'g1' });
    assert.throws(() => findRoute('POST', '/v1/guests/g1/limits'), {
      code: 'usage',
      details: { status: 405, allow: ['GET', 'PUT'] },
    });
    assert.throws(() => findRoute('GET', '/v1/nothing'), { code: 'not_found' });
  });

  it('resolves every schema a route or a shared schema refers to', () => {
    const refs = new Set<string>();
    const walk = (s: unknown): void => {
      if (typeof s !== 'object' || s === null) return;
      const ref = (s as Schema).$ref;
      if (ref) refs.add(ref.replace('#/components/schemas/', ''));
      for (const v of Object.values(s)) walk(v);
    };
    walk(ROUTES);
    walk(SCHEMAS);
    assert.ok(refs.size > 10);
    for (const r of refs) assert.ok(Object.hasOwn(SCHEMAS, r), `${r} is not in SCHEMAS`);
  });
});
