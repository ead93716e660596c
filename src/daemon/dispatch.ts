/**
 * From a request to an operation: which route of api/routes.ts a method and path name (404 or
 * 405 when none), and the operation's arguments from its path, query and body, each checked
 * against the route before any lock or file is touched: path parameters and query (every name
 * against the name pattern), the body (application/json, only the declared fields, own
 * properties only).
 */
import type * as http from 'node:http';
import type { Engine, JobHooks } from '../api/engine.js';
import {
  matchPath,
  PARAMS,
  parseQueryValue,
  ROUTES,
  SCHEMAS,
  type EngineOp,
  type JobOp,
  type RequestOf,
  type ResponseOf,
  type Route,
} from '../api/routes.js';
import { MAX_PROBLEMS, propertyOf, validate, type Schema } from '../api/schema.js';
import { JaulaError } from '../common/errors.js';
import { isJson, readBody } from './http.js';

export interface Found {
  route: Route;
  params: Record<string, string>;
}

export const resolveRef = (ref: string): Schema | undefined => {
  const name = ref.replace('#/components/schemas/', '');
  return Object.prototype.hasOwnProperty.call(SCHEMAS, name) ? SCHEMAS[name] : undefined;
};

export function findRoute(method: string, pathname: string): Found {
  const allowed: string[] = [];
  for (const route of ROUTES as readonly Route[]) {
    const params = matchPath(route.path, pathname);
    if (!params) continue;
    if (route.method === method) return { route, params };
    allowed.push(route.method);
  }
  if (allowed.length)
    throw new JaulaError('usage', `${pathname} takes ${allowed.join(', ')}, not ${method}`, {
      details: { status: 405, allow: allowed },
    });
  throw new JaulaError('not_found', `No API route ${method} ${pathname} (see GET /v1/openapi.json)`);
}

/** Path parameters checked against PARAMS (names: the name pattern): problems, or none. */
export function paramProblems(params: Record<string, string>): string[] {
  return Object.entries(params).flatMap(([k, v]) =>
    validate(v, PARAMS[k] ?? { type: 'string' }, resolveRef, k),
  );
}

const bad = (problems: string[]): JaulaError =>
  new JaulaError('invalid', `Bad request: ${problems.slice(0, MAX_PROBLEMS + 1).join('; ')}`);

/** The query's parameters, each declared by the route and valid, into args; the problems found. */
function queryArgs(route: Route, url: URL, args: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const [k, v] of url.searchParams) {
    if (k === 'access_token' && route.stream === 'sse') continue;
    const schema =
      route.query && Object.prototype.hasOwnProperty.call(route.query, k) ? route.query[k] : undefined;
    if (!schema) {
      problems.push(`${JSON.stringify(k.slice(0, 64))}: is not a parameter of ${route.method} ${route.path}`);
      continue;
    }
    const value = parseQueryValue(v, schema);
    problems.push(...validate(value, schema, resolveRef, k));
    args[k] = value;
  }
  return problems;
}

/** The body's declared fields into args, after the whole body is checked against the route. */
async function bodyArgs(
  route: Route,
  req: http.IncomingMessage,
  args: Record<string, unknown>,
): Promise<void> {
  // Anything but GET: a body, or a media type, must be JSON (a page's form or text/plain post is not).
  if (route.upload) return; // (raw bytes: the route's handler reads them)
  const type = req.headers['content-type'];
  const hasBody =
    Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  if (route.method !== 'GET' && (type !== undefined || hasBody) && !isJson(type))
    throw new JaulaError(
      'invalid',
      `The request body must be JSON ("Content-Type: application/json"), not ${JSON.stringify(type ?? 'untyped')}`,
      { details: { status: 415 } },
    );
  if (!route.body) return;
  const body = (await readBody(req)) ?? {};
  const problems = validate(body, route.body, resolveRef);
  if (problems.length) throw bad(problems);
  const schema = route.body.$ref ? (resolveRef(route.body.$ref) as Schema) : route.body;
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (propertyOf(schema, k) && b[k] !== undefined) args[k] = b[k];
}

/**
 * The arguments of an operation, from the request's path, query and body: each checked against
 * the route (names first, before the body is read), and only the declared fields taken, own
 * properties only, into an object without a prototype.
 */
export async function requestArgs(
  { route, params }: Found,
  url: URL,
  req: http.IncomingMessage,
): Promise<Record<string, unknown>> {
  const args = Object.create(null) as Record<string, unknown>;
  const problems = [...paramProblems(params), ...queryArgs(route, url, args)];
  if (problems.length) throw bad(problems);
  await bodyArgs(route, req, args);
  for (const [k, v] of Object.entries(params)) args[k] = v;
  return args;
}

/**
 * An engine route's call of its Engine method: the compiler checks that the method exists, takes
 * the route's request (path parameters, query and body) and answers the route's response (a
 * job's method: its result, which comes at the job's end).
 */
type EngineCall<K extends EngineOp> = (
  engine: Engine,
  args: RequestOf<K>,
  hooks: JobHooks,
) => Promise<K extends JobOp ? unknown : ResponseOf<K>>;

/** Every engine route (engine: true in api/routes.ts) to its Engine method: one entry each, or it does not compile. */
const ENGINE_CALLS: { [K in EngineOp]: EngineCall<K> } = {
  getInfo: (e) => e.getInfo(),
  listGuests: (e, a) => e.listGuests(a),
  buildGuest: (e, a, h) => e.buildGuest(a, h),
  getGuest: (e, a) => e.getGuest(a),
  deleteGuest: (e, a) => e.deleteGuest(a),
  getGuestSettings: (e, a) => e.getGuestSettings(a),
  configureGuest: (e, a) => e.configureGuest(a),
  renameGuest: (e, a) => e.renameGuest(a),
  guestLogs: (e, a) => e.guestLogs(a),
  startGuest: (e, a) => e.startGuest(a),
  stopGuest: (e, a) => e.stopGuest(a),
  restartGuest: (e, a) => e.restartGuest(a),
  execCapture: (e, a) => e.execCapture(a),
  getUsage: (e, a) => e.getUsage(a),
  listProcesses: (e, a) => e.listProcesses(a),
  sampleGuests: (e, a) => e.sampleGuests(a),
  copy: (e, a) => e.copy(a),
  doctor: (e, a) => e.doctor(a),
  listNetworks: (e) => e.listNetworks(),
  createNetwork: (e, a) => e.createNetwork(a),
  deleteNetwork: (e, a) => e.deleteNetwork(a),
  networkGc: (e) => e.networkGc(),
  networkCheck: (e) => e.networkCheck(),
  cloneGuest: (e, a, h) => e.cloneGuest(a, h),
  getLimits: (e, a) => e.getLimits(a),
  setLimits: (e, a) => e.setLimits(a),
  listTemplates: (e) => e.listTemplates(),
  getTemplate: (e, a) => e.getTemplate(a),
  listLayers: (e, a) => e.listLayers(a),
  setQuota: (e, a) => e.setQuota(a),
  getPool: (e) => e.getPool(),
  createPool: (e, a, h) => e.createPool(a, h),
  setPool: (e, a) => e.setPool(a),
  deletePool: (e) => e.deletePool(),
  changeLayers: (e, a) => e.changeLayers(a),
  saveTemplate: (e, a, h) => e.saveTemplate(a, h),
  importTemplate: (e, a, h) => e.importTemplate(a, h),
  exportTemplate: (e, a, h) => e.exportTemplate(a, h),
  deleteTemplate: (e, a) => e.deleteTemplate(a),
  hashify: (e, a, h) => e.hashify(a, h),
  diskUsage: (e, a) => e.diskUsage(a),
  getFleet: (e) => e.getFleet(),
  joinFleet: (e, a) => e.joinFleet(a),
  leaveFleet: (e, a) => e.leaveFleet(a),
  fleetHosts: (e) => e.fleetHosts(),
  fleetGuests: (e) => e.fleetGuests(),
  fleetHa: (e) => e.fleetHa(),
  fleetDrain: (e, a, h) => e.fleetDrain(a, h),
  fleetBalance: (e, a, h) => e.fleetBalance(a, h),
  fleetProcesses: (e, a) => e.fleetProcesses(a),
  fleetSamples: (e, a) => e.fleetSamples(a),
  listRemotes: (e) => e.listRemotes(),
  addRemote: (e, a) => e.addRemote(a),
  removeRemote: (e, a) => e.removeRemote(a),
  migrateGuest: (e, a, h) => e.migrateGuest(a, h),
  listMoves: (e, a) => e.listMoves(a),
  backupGuest: (e, a, h) => e.backupGuest(a, h),
  restoreGuest: (e, a, h) => e.restoreGuest(a, h),
  listSnapshots: (e, a) => e.listSnapshots(a),
  createSnapshot: (e, a) => e.createSnapshot(a),
  restoreSnapshot: (e, a, h) => e.restoreSnapshot(a, h),
  deleteSnapshot: (e, a) => e.deleteSnapshot(a),
  listImages: (e) => e.listImages(),
  pullImage: (e, a, h) => e.pullImage(a, h),
  importImage: (e, a, h) => e.importImage(a, h),
  inspectImage: (e, a) => e.inspectImage(a),
  deleteImage: (e, a) => e.deleteImage(a),
  pushImage: (e, a, h) => e.pushImage(a, h),
};

/** The Engine's methods that are no route of their own: their stdio goes over the attach WebSocket. */
type Interactive = 'kind' | 'execInteractive' | 'enterGuest' | 'runOnce' | 'attachConsole';
/** Every Engine method is an engine route or interactive (this type does not compile otherwise). */
export type EveryMethodRouted = Exclude<keyof Engine, EngineOp | Interactive> extends never ? true : never;
const everyMethodRouted: EveryMethodRouted = true;
void everyMethodRouted;

/**
 * The call of an engine route. Its arguments are the ones requestArgs checked against this
 * route's schemas, from which RequestOf<op> is derived: the one place they meet its type.
 */
export function engineCall(
  op: EngineOp,
): (engine: Engine, args: Record<string, unknown>, hooks: JobHooks) => Promise<unknown> {
  const call = ENGINE_CALLS[op] as (engine: Engine, args: never, hooks: JobHooks) => Promise<unknown>;
  return (engine, args, hooks) => call(engine, args as never, hooks);
}
