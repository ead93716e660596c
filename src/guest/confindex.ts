/**
 * Every guest's config, parsed, kept in this process and brought up to date by inotify: a
 * process that starts guest after guest (jaulad, `start --all`) does not read or even stat
 * every guest's config at each start (conflict checks need them all: store.ts loadEveryConfig).
 *
 * One watch on the guests' config directory (entries made, removed, renamed) and one on each
 * guest's directory (its files written, replaced, removed, whoever does it: jaula, a CLI run
 * without jaulad, an editor). The events are read synchronously (a non-blocking read of the
 * inotify descriptor) before the index is used, so a change another process finished before
 * this call is always seen: the kernel queues its event in that process's own system call.
 * Only the entries named by an event are read again. A guest whose watch could not be added
 * (the watch limit, a symlinked directory or config) is looked at every time (`fallback`), and a
 * lost event queue (overflow) or no inotify at all makes the index read everything again.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf } from '../common/errors.js';
import { native } from '../os/native.js';
import type { GuestConfig } from './config.js';

const IN_MODIFY = 0x2;
const IN_ATTRIB = 0x4;
const IN_CLOSE_WRITE = 0x8;
const IN_MOVED_FROM = 0x40;
const IN_MOVED_TO = 0x80;
const IN_CREATE = 0x100;
const IN_DELETE = 0x200;
const IN_DELETE_SELF = 0x400;
const IN_MOVE_SELF = 0x800;
const IN_Q_OVERFLOW = 0x4000;
const IN_ONLYDIR = 0x1000000;
const IN_DONT_FOLLOW = 0x2000000;
const ENTRIES = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF;
const TOP_MASK = ENTRIES | IN_ONLYDIR;
const GUEST_MASK = ENTRIES | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_ONLYDIR | IN_DONT_FOLLOW;

interface Entry {
  /** Its directory's watch. */
  wd: number | undefined;
  /** Without a watch that sees its config change: looked at every time. */
  fallback: boolean;
  cfg: GuestConfig | undefined;
}

export class ConfigIndex {
  private fd: number | undefined;
  private topWd: number | undefined;
  private readonly entries = new Map<string, Entry>();
  private readonly byWd = new Map<number, string>();
  private readonly dirty = new Set<string>();
  private list: GuestConfig[] | undefined;
  private readonly buf = Buffer.alloc(64 * 1024);

  /**
   * @param dir the guests' config directory (one subdirectory per guest)
   * @param read a guest's config from its file, or undefined (absent, unreadable, broken)
   * @param forget called with the file of an entry that is gone
   */
  constructor(
    readonly dir: string,
    private readonly read: (file: string) => GuestConfig | undefined,
    private readonly forget: (file: string) => void = () => {},
  ) {}

  /** Every guest's config that loads (half-built guests' too); callers do not change them. */
  all(): GuestConfig[] {
    if (!this.watching() && !this.rebuild()) return this.scan();
    this.drain();
    if (!this.watching()) return this.scan(); // (the directory went meanwhile)
    for (const [n, e] of this.entries) if (e.fallback) this.dirty.add(n);
    if (this.dirty.size) {
      for (const n of this.dirty) this.refresh(n);
      this.dirty.clear();
      this.list = undefined;
    }
    this.list ??= [...this.entries.values()].flatMap((e) => (e.cfg ? [e.cfg] : []));
    return [...this.list];
  }

  /** Drop the inotify descriptor (tests; a process that ends just lets it go). */
  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = this.topWd = this.list = undefined;
    this.entries.clear();
    this.byWd.clear();
    this.dirty.clear();
  }

  private watching(): boolean {
    return this.fd !== undefined && this.topWd !== undefined;
  }

  /** Without inotify or the directory: every entry read (each read is cached by its file's identity). */
  private scan(): GuestConfig[] {
    return entriesOf(this.dir).flatMap((n) => this.read(join(this.dir, n, 'config.toml')) ?? []);
  }

  /** Watch the directory, then list it (a change after the watch is an event): false without inotify. */
  private rebuild(): boolean {
    this.close();
    try {
      this.fd = native().inotifyInit();
      this.topWd = native().inotifyAddWatch(this.fd, this.dir, TOP_MASK);
    } catch {
      this.close(); // (no directory yet, no inotify instances left: scan, and try again next time)
      return false;
    }
    for (const n of entriesOf(this.dir)) this.dirty.add(n);
    return true;
  }

  /** Read the pending events: the guests they name become dirty. */
  private drain(): void {
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(this.fd as number, this.buf, 0, this.buf.length, null);
      } catch (e) {
        if (errnoOf(e) === 'EAGAIN') return;
        throw e;
      }
      for (let o = 0; o + 16 <= n;) {
        const wd = this.buf.readInt32LE(o);
        const mask = this.buf.readUInt32LE(o + 4);
        const len = this.buf.readUInt32LE(o + 12);
        const name = this.buf.toString('utf8', o + 16, o + 16 + len).replace(/\0+$/, '');
        o += 16 + len;
        if (mask & IN_Q_OVERFLOW || (wd === this.topWd && mask & (IN_DELETE_SELF | IN_MOVE_SELF))) {
          // Events lost, or the directory itself replaced: everything read again (the rest of
          // this buffer is the old descriptor's).
          this.rebuild();
          return;
        }
        const guest = wd === this.topWd ? name : this.byWd.get(wd);
        if (guest !== undefined && guest !== '') this.dirty.add(guest);
      }
    }
  }

  /** Look again at one entry: its directory watched (the same watch if it was), its config read. */
  private refresh(name: string): void {
    const old = this.entries.get(name);
    if (old?.wd !== undefined && this.byWd.get(old.wd) === name) this.byWd.delete(old.wd);
    this.entries.delete(name);
    const dir = join(this.dir, name);
    const file = join(dir, 'config.toml');
    this.forget(file);
    let wd: number | undefined;
    try {
      wd = native().inotifyAddWatch(this.fd as number, dir, GUEST_MASK);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return; // gone: an event names it if it comes back
      // A file (no guest: its replacement by a directory is an event of the directory above),
      // else a symlinked directory or the watch limit: looked at every time.
      if (errnoOf(e) === 'ENOTDIR' && fs.lstatSync(dir, { throwIfNoEntry: false })?.isFile()) {
        this.entries.set(name, { wd: undefined, fallback: false, cfg: undefined });
        return;
      }
    }
    // A symlinked config changes where no watch sees it: looked at every time.
    if (wd !== undefined && fs.lstatSync(file, { throwIfNoEntry: false })?.isSymbolicLink()) wd = undefined;
    if (wd !== undefined) this.byWd.set(wd, name);
    this.entries.set(name, { wd, fallback: wd === undefined, cfg: this.read(file) });
  }
}

function entriesOf(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return [];
    throw e;
  }
}
