import { JaulaError, messageOf } from '../common/errors.js';

/**
 * Every multi-step host change registers its undo as soon as the change is made; on failure the
 * undos run newest first, so a failed operation leaves nothing behind (Incus's shared/revert).
 */
export class Reverter {
  private steps: { what: string; fn: () => unknown }[] = [];

  add(what: string, fn: () => unknown): void {
    this.steps.push({ what, fn });
  }

  /** The operation succeeded: keep what it made. */
  success(): void {
    this.steps = [];
  }

  /** The operation failed with `e`: undo everything, and throw `e` (with what could not be undone). */
  async fail(e: unknown): Promise<never> {
    const failed = await this.revert();
    if (failed.length)
      throw new JaulaError('runtime', `${messageOf(e)}; and cleaning up failed: ${failed.join('; ')}`, {
        cause: e,
      });
    throw e;
  }

  /** Undo everything registered; returns the undo steps that failed. */
  async revert(): Promise<string[]> {
    const failed: string[] = [];
    for (const s of this.steps.reverse()) {
      try {
        await s.fn();
      } catch (e) {
        failed.push(`${s.what}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    this.steps = [];
    return failed;
  }
}
