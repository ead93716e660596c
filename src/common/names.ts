import { JaulaError } from './errors.js';

/** Guest, template and mark names: safe as file names, hostnames-like, never a path. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
export const NAME_MAX = 64;
/**
 * The same rule as one pattern (OpenAPI's "pattern", checked where jaulad parses a request,
 * before any lock or file is touched): validateName gives the more precise message.
 */
export const NAME_PATTERN = `^(?!.*\\.\\.)[A-Za-z0-9][A-Za-z0-9_.-]{0,${NAME_MAX - 1}}$`;

export function validateName(name: string, what = 'guest'): string {
  if (name.length === 0)
    throw new JaulaError('invalid', `The ${what} name is empty (give a name such as "web1")`);
  if (name.length > NAME_MAX)
    throw new JaulaError(
      'invalid',
      `The ${what} name "${name.slice(0, 20)}..." is ${name.length} characters long (at most ${NAME_MAX})`,
    );
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name))
    throw new JaulaError('invalid', `The ${what} name ${JSON.stringify(name)} contains control characters`);
  if (name.includes('/'))
    throw new JaulaError('invalid', `The ${what} name "${name}" contains "/" (names are not paths)`);
  if (name.includes('..')) throw new JaulaError('invalid', `The ${what} name "${name}" contains ".."`);
  if (!NAME_RE.test(name))
    throw new JaulaError(
      'invalid',
      `The ${what} name "${name}" is not valid: use letters, digits, "-", "_" and "." and begin with a letter or digit`,
    );
  return name;
}

export const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function validateHostname(h: string): string {
  if (!HOSTNAME_RE.test(h))
    throw new JaulaError(
      'invalid',
      `The hostname "${h}" is not valid (letters, digits and "-", dot-separated labels of at most 63 characters)`,
    );
  return h;
}

export const CONTEXT_MIN = 2;
export const CONTEXT_MAX = 65535;
/** First context handed out automatically (OpenVZ started at 101, the seed used 1001). */
export const CONTEXT_FIRST_AUTO = 100;

export function validateContext(n: number): number {
  if (!Number.isInteger(n) || n < CONTEXT_MIN || n > CONTEXT_MAX)
    throw new JaulaError(
      'invalid',
      `The context ID ${n} is out of range: use a whole number from ${CONTEXT_MIN} to ${CONTEXT_MAX} (0 is the host, 1 the spectator)`,
    );
  return n;
}
