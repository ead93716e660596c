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
  | 'limit'
  | 'not_executable'
  | 'no_command'
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
  limit: 12,
  // exec: the command could not be started (as a shell says, and as Docker and Podman do).
  not_executable: 126,
  no_command: 127,
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
  limit: 409,
  not_executable: 403,
  no_command: 404,
  internal: 500,
};

/** What each exit status means, for `jaula --help` and the README. */
export const codeMeanings: Readonly<Record<ErrorCode, string>> = {
  usage: 'wrong usage',
  invalid: 'invalid input',
  not_found: 'no such guest, template, network or file',
  exists: 'it exists already',
  state: 'the guest is in the wrong state (e.g. not running)',
  busy: 'another operation holds the guest',
  runtime: 'the OCI runtime or the kernel failed',
  io: 'a read or write failed',
  unsupported: 'not supported on this host',
  timeout: 'timed out',
  denied: 'not allowed to this caller (jaulad over TCP: host paths, privileged guests)',
  limit: "a guest's limit refused it (e.g. pids.max)",
  not_executable: 'exec: the command is in the guest but cannot be executed',
  no_command: 'exec: no such command in the guest',
  internal: 'internal error (a bug: please report it)',
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
