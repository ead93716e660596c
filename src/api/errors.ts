/** Errors across the wire: a JaulaError as jaulad answers it, and back (RemoteEngine). */
import { exitCodes, JaulaError, type ErrorCode } from '../common/errors.js';
import type { ErrorInfo } from './types.js';

/** A JaulaError as it crosses the wire (jaulad's error answers, a job's error): code, message, details. */
export function errorInfo(e: JaulaError): ErrorInfo {
  const info: ErrorInfo = { code: e.code, message: e.message };
  if (e.details !== undefined) info.details = e.details;
  return info;
}

/**
 * The JaulaError an ErrorInfo from the wire describes, details and all; a code this jaula does
 * not know becomes `fallback` (the code of the HTTP status, or runtime).
 */
export function fromErrorInfo(
  info: Partial<ErrorInfo> | undefined,
  fallback: ErrorCode,
  otherwise: string,
): JaulaError {
  const code =
    info?.code !== undefined && Object.hasOwn(exitCodes, info.code) ? (info.code as ErrorCode) : fallback;
  const d = info?.details;
  const details = typeof d === 'object' && d !== null && !Array.isArray(d) ? d : undefined;
  return new JaulaError(
    code,
    typeof info?.message === 'string' ? info.message : otherwise,
    details ? { details } : {},
  );
}
