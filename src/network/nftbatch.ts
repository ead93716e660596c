/**
 * Guests' firewall elements, applied in shared nft transactions. Each nftables commit waits for
 * the kernel's RCU grace periods (about 12 ms here, of which 7 ms of CPU: `nft -f` of one
 * guest's six elements) under a mutex that serialises all commits, so that starting or stopping
 * many guests at once queued up behind one commit per guest. Here the texts that arrive while a
 * transaction runs wait for it and then go together, as one transaction of one nft process: a
 * bulk start or stop pays one commit per batch. A batch that fails is applied again text by
 * text, so that one guest's bad element fails only that guest, with nft's own error.
 */
import { run, runOk } from '../os/spawn.js';

interface Pending {
  text: string;
  what: string;
  resolve: () => void;
  reject: (e: unknown) => void;
}

let queue: Pending[] = [];
let busy = false;

/** Apply `text` (nft commands, one per line) in an nft transaction, shared with others that wait. */
export function nftApply(text: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    queue.push({ text: text.endsWith('\n') ? text : `${text}\n`, what, resolve, reject });
    if (!busy) void drain();
  });
}

async function drain(): Promise<void> {
  busy = true;
  try {
    while (queue.length) {
      const batch = queue;
      queue = [];
      if (batch.length > 1) {
        const r = await run(['nft', '-f', '-'], { input: batch.map((p) => p.text).join('') }).catch(
          () => undefined,
        );
        if (r?.code === 0) {
          for (const p of batch) p.resolve();
          continue;
        }
      }
      for (const p of batch)
        await runOk(['nft', '-f', '-'], { input: p.text, what: p.what }).then(() => p.resolve(), p.reject);
    }
  } finally {
    busy = false;
  }
}
