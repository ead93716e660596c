/**
 * `jaula console`: the guest's console, which its supervisor (jaula-helper shim) holds from the
 * start and copies to console.log, attached to a terminal, as lxc-console and vzctl console do.
 * The supervisor serves it on run/jaula/guests/NAME/attach.sock (root only); jaulad relays it
 * over its attach WebSocket (mode=console). Ctrl-a q detaches (common/detach.ts).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import type { ConsoleEnd } from '../api/types.js';
import { relayTerminal } from '../os/terminal.js';
import { JaulaError } from '../common/errors.js';
import { paths } from '../os/paths.js';
import { requireRunning } from './running.js';

export function consoleSocket(name: string): string {
  return join(paths().guestRun(name), 'attach.sock');
}

/** A connection to the console the guest's supervisor holds. */
export async function connectConsole(name: string): Promise<net.Socket> {
  requireRunning(name);
  const path = consoleSocket(name);
  if (!fs.existsSync(path))
    throw new JaulaError(
      'unsupported',
      `Guest "${name}" has no console to attach to: its supervisor was started by an older jaula (restart the guest: jaula restart ${name})`,
    );
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', (e) =>
      reject(new JaulaError('runtime', `Could not attach to the console of guest "${name}": ${e.message}`)),
    );
  });
}

/** Attach this process's terminal to the guest's console. */
export async function attachConsole(name: string, onAttached?: () => void): Promise<ConsoleEnd> {
  const sock = await connectConsole(name);
  onAttached?.();
  return relayTerminal({
    send: (d) => sock.write(d),
    close: () => sock.destroy(),
    listen: (output, ended) => {
      sock.on('data', output);
      sock.on('close', ended);
      sock.on('error', () => {});
    },
  });
}
