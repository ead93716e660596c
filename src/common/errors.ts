/**
 * One error type for everything a user can cause or meet. The code decides the CLI exit status
 * and the HTTP status; the message says what failed, in which state, and what to do.
 */
export type ErrorCode =
  | 'usage'
  | 'invalid'
  | 'not_found'
  | 'exists'
  | 'state'
  | 'busy'
  | 'runtime'
  | 'io'
  | 'unsupported'
  | 'timeout'
  | 'denied'
  | 'internal';

export const exitCodes: Readonly<Record<ErrorCode, number>> = {
  usage: 2,
  invalid: 2,
  not_found: 4,
  exists: 5,
  state: 6,
  busy: 7,
  runtime: 8,
  io: 9,
  unsupported: 10,
  timeout: 11,
  denied: 13,
  internal: 70,
};

export const httpStatus: Readonly<Record<ErrorCode, number>> = {
  usage: 400,
  invalid: 400,
  not_found: 404,
  exists: 409,
  state: 409,
  busy: 423,
  runtime: 500,
  io: 500,
  unsupported: 501,
  timeout: 504,
  denied: 403,
  internal: 500,
};

export interface ErrorOptions {
  cause?: unknown;
  details?: Record<string, unknown>;
}

export class JaulaError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'JaulaError';
    this.code = code;
    this.details = options.details;
  }
}

export function isJaulaError(e: unknown): e is JaulaError {
  return e instanceof JaulaError;
}

/** The errno name of a Node system error (`ENOENT`, ...), or undefined. */
export function errnoOf(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const code = (e as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function assertNever(x: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(x)}`);
}
