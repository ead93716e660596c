/**
 * The console's escape keys, as lxc-console's: Ctrl-a q detaches, Ctrl-a Ctrl-a (or Ctrl-a a)
 * types one Ctrl-a; Ctrl-a and any other key type both.
 */
export const DETACH_KEYS = 'Ctrl-a q';

const CTRL_A = 0x01;

export class DetachScanner {
  private escaped = false;

  /** The bytes to type on the console, and whether the user asked to detach (what follows is dropped). */
  feed(input: Uint8Array): { data: Uint8Array; detach: boolean } {
    const out: number[] = [];
    for (const b of input) {
      if (this.escaped) {
        this.escaped = false;
        if (b === 0x71) return { data: Uint8Array.from(out), detach: true }; // q
        if (b === CTRL_A || b === 0x61)
          out.push(CTRL_A); // Ctrl-a, a
        else out.push(CTRL_A, b);
      } else if (b === CTRL_A) this.escaped = true;
      else out.push(b);
    }
    return { data: Uint8Array.from(out), detach: false };
  }
}
