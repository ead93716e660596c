/** The OpenAPI 3 document of jaula's API, made from the route table (served at /v1/openapi.json). */
import { API_VERSION, PARAMS, pathParams, ROUTES, SCHEMAS, type Route } from './routes.js';
import type { Schema } from './schema.js';

export type OpenApiDocument = Record<string, unknown> & {
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: { schemas: Record<string, Schema>; securitySchemes: Record<string, unknown> };
};

export interface OpenApiOperation {
  operationId: string;
  summary: string;
  tags: string[];
  parameters?: { name: string; in: 'path' | 'query'; required: boolean; schema: Schema }[];
  requestBody?: { required: boolean; content: Record<string, { schema: Schema }> };
  responses: Record<string, { description: string; content?: Record<string, { schema: Schema }> }>;
}

const ERROR_STATUSES: Record<string, string> = {
  '400': 'bad request (usage or invalid value)',
  '401': 'no or wrong bearer token (TCP only)',
  '403': 'refused: a host path outside --host-files, a foreign Origin or Host (TCP only)',
  '404': 'no such guest, network, job or route',
  '409': 'conflict with the current state, or exists already',
  '413': 'the request body is larger than 1 MiB',
  '415': 'a request body that is not application/json',
  '423': 'busy: another operation holds the guest',
  '500': 'the runtime or the host failed',
};

function operation(r: Route): OpenApiOperation {
  const params: NonNullable<OpenApiOperation['parameters']> = pathParams(r.path).map((p) => ({
    name: p,
    in: 'path',
    required: true,
    schema: PARAMS[p] ?? { type: 'string' },
  }));
  for (const [q, schema] of Object.entries(r.query ?? {}))
    params.push({ name: q, in: 'query', required: false, schema });
  const ok = r.job ? '202' : r.stream === 'websocket' ? '101' : '200';
  const content =
    r.stream === 'sse'
      ? { 'text/event-stream': { schema: r.response } }
      : r.stream === 'websocket'
        ? undefined
        : { 'application/json': { schema: r.response } };
  const responses: OpenApiOperation['responses'] = {
    [ok]: content ? { description: r.summary, content } : { description: r.summary },
  };
  for (const [code, description] of Object.entries(ERROR_STATUSES))
    responses[code] = {
      description,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  const op: OpenApiOperation = {
    operationId: r.op,
    summary: r.summary,
    tags: [r.tag],
    responses,
  };
  if (params.length) op.parameters = params;
  if (r.body) op.requestBody = { required: true, content: { 'application/json': { schema: r.body } } };
  return op;
}

export function openapiDocument(version: string): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  for (const r of ROUTES as readonly Route[]) {
    paths[r.path] ??= {};
    (paths[r.path] as Record<string, OpenApiOperation>)[r.method.toLowerCase()] = operation(r);
  }
  return {
    openapi: '3.0.3',
    info: {
      title: 'jaula API',
      version: `${API_VERSION} (jaula ${version})`,
      description:
        'jaulad manages guests (isolated Linux systems) on this host. On its unix socket ' +
        '($JAULA_ROOT/run/jaula/jaulad.sock, root only) no authentication is needed; on TCP every request ' +
        'carries "Authorization: Bearer TOKEN" (or ?access_token=TOKEN for EventSource and WebSocket). ' +
        'Errors are {"error": {"code", "message"}} with the HTTP status of the code.',
    },
    servers: [{ url: '/' }],
    paths,
    components: {
      schemas: SCHEMAS,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    },
    security: [{ bearer: [] }],
  };
}
