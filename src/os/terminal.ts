/**
 * This process's terminal on a console (jaula console, locally or through jaulad): raw when it is
 * one, the detach keys of common/detach.ts, until they are typed, its input ends or the console
 * closes.
 */
import { DetachScanner } from '../common/detach.js';

/** How a terminal session ended: the user detached, or the console closed (the guest stopped). */
export type TerminalEnd = 'detached' | 'ended';

/** Where a terminal session sends what is typed, and how it ends. */
export interface ConsoleLink {
  send(data: Uint8Array): void;
  close(): void;
  /** Calls `output` with what the console shows, `ended` when it closes (the guest stopped). */
  listen(output: (b: Uint8Array) => void, ended: () => void): void;
}

/**
 * This process's terminal (raw, when it is one) on a console until the detach keys, the end of
 * its input, or the console's end.
 */
export function relayTerminal(link: ConsoleLink): Promise<TerminalEnd> {
  return new Promise((resolve) => {
    const stdin = process.stdin;
    const tty = stdin.isTTY === true;
    const scanner = new DetachScanner();
    let done = false;
    const finish = (how: TerminalEnd): void => {
      if (done) return;
      done = true;
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      if (tty) stdin.setRawMode(false);
      stdin.pause();
      link.close();
      resolve(how);
    };
    const onData = (b: Buffer): void => {
      const r = scanner.feed(b);
      if (r.data.length) link.send(r.data);
      if (r.detach) finish('detached');
    };
    const onEnd = (): void => finish('detached'); // nothing more to type (input from a pipe)
    link.listen(
      (b) => process.stdout.write(b),
      () => finish('ended'),
    );
    if (tty) stdin.setRawMode(true);
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.resume();
  });
}
