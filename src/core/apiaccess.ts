/**
 * Who can reach jaulad's API, and with what: jaulad records what it serves beyond its unix
 * socket (run/jaula/jaulad.json, no secret in it) and `jaula doctor --security` checks it: an
 * address other than loopback without TLS, a port the guests can reach, a token file others can
 * read or change, a --host-files directory others can change. jaulad itself refuses to start
 * with an unsafe token file (tokenFileProblem).
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { readFileOr, writeFileAtomic } from '../os/fs.js';
import { paths } from '../os/paths.js';
import { isSameProcess, readProcStat } from '../os/proc.js';
import type { Check } from './doctor.js';

export interface DaemonRecord {
  pid: number;
  pidStart: number;
  socket: string;
  /** HOST:PORT as bound (the port chosen when 0 was asked). */
  listen?: string;
  port?: number;
  loopback?: boolean;
  tls?: boolean;
  tokenFile?: string;
  hostFiles?: string;
  allowGuests?: boolean;
}

const recordPath = (): string => join(paths().run, 'jaulad.json');

export function writeDaemonRecord(r: Omit<DaemonRecord, 'pid' | 'pidStart'>): void {
  const rec: DaemonRecord = { pid: process.pid, pidStart: readProcStat(process.pid)?.starttime ?? 0, ...r };
  writeFileAtomic(recordPath(), JSON.stringify(rec) + '\n', 0o644, { durable: false });
}

export function removeDaemonRecord(): void {
  fs.rmSync(recordPath(), { force: true });
}

/** The record of the jaulad that runs now, if one does. */
export function readDaemonRecord(): DaemonRecord | undefined {
  try {
    const r = JSON.parse(readFileOr(recordPath(), '')) as DaemonRecord;
    return isSameProcess(r.pid, r.pidStart) ? r : undefined;
  } catch {
    return undefined;
  }
}

/** What is wrong with a token file (undefined: nothing): only root may read or change it. */
export function tokenFileProblem(file: string): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    return `${file} cannot be read: ${(e as Error).message}`;
  }
  if (!st.isFile()) return `${file} is not a regular file`;
  const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
  if (st.mode & 0o077)
    return `${file} is open to group or others (mode ${mode}): anyone who reads it is root on this host's guests; chmod 600 ${file}`;
  if (st.uid !== 0 && st.uid !== process.getuid?.())
    return `${file} belongs to uid ${st.uid}, who can read or replace the token: chown root ${file}`;
  return undefined;
}

/** What is wrong with a --host-files directory (undefined: nothing). */
function hostFilesProblem(dir: string): string | undefined {
  if (dir === '/') return 'is "/": a token holder reads and writes every file of the host';
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    return `cannot be read: ${(e as Error).message}`;
  }
  if (st.mode & 0o022)
    return `is writable by group or others (mode ${(st.mode & 0o7777).toString(8)}): they can change what token holders import; chmod go-w ${dir}`;
  if (st.uid !== 0)
    return `belongs to uid ${st.uid}, who can change what token holders import: chown root ${dir}`;
  return undefined;
}

/** doctor --security: the API's exposure. */
export async function apiChecks(): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (name: string, status: Check['status'], detail: string): void => {
    checks.push({ area: 'security', name, status, detail });
  };
  const r = readDaemonRecord();
  if (!r?.listen) {
    add(
      'API',
      'ok',
      r
        ? `jaulad serves only its unix socket ${r.socket} (mode 0600: root only)`
        : 'jaulad does not run: no API beyond root',
    );
    return checks;
  }
  add(
    'API address',
    r.loopback || r.tls ? 'ok' : 'warn',
    r.tls
      ? `${r.listen} with TLS (ECDHE and AEAD ciphers only)`
      : r.loopback
        ? `${r.listen}: loopback only, plain HTTP`
        : `${r.listen} without TLS: the token and everything else cross the network in clear (give --tls-cert and --tls-key)`,
  );
  if (r.loopback) add('API reachable by guests', 'ok', `no: ${r.listen} is a loopback address`);
  else if (r.allowGuests)
    add(
      'API reachable by guests',
      'warn',
      `yes: jaulad runs with --allow-guests, so every guest on a jaula bridge can reach ${r.listen} (restart it without)`,
    );
  else {
    const { daemonPortGuarded } = await import('../network/guard.js');
    const guarded = r.port !== undefined && (await daemonPortGuarded(r.port));
    add(
      'API reachable by guests',
      guarded ? 'ok' : 'warn',
      guarded
        ? `no: jaula's firewall drops guests' packets to port ${r.port}`
        : `yes: port ${r.port} is missing from jaula's firewall (restart jaulad to guard it)`,
    );
  }
  const tp = r.tokenFile ? tokenFileProblem(r.tokenFile) : 'jaulad has no token file';
  add('API token file', tp ? 'warn' : 'ok', tp ?? `${r.tokenFile}: only root can read or change it`);
  const hp = r.hostFiles ? hostFilesProblem(r.hostFiles) : undefined;
  add(
    'API host files',
    hp ? 'warn' : 'ok',
    !r.hostFiles
      ? 'token holders name no host file (jaulad has no --host-files)'
      : hp
        ? `--host-files ${r.hostFiles} ${hp}`
        : `token holders read and write host files beneath ${r.hostFiles} only`,
  );
  return checks;
}
