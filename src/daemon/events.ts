/**
 * The event stream's source: guest changes noticed from the state files, whoever made them
 * (jaulad, a CLI run without it, a guest's supervisor when the guest halts itself). One
 * inotify watch (fs.watch) per guest run directory and config directory, plus the two parent
 * directories for guests that come and go; no polling per guest. One slow sweep over the guests
 * that run catches what leaves no file behind (a guest killed together with its supervisor).
 */
import * as fs from 'node:fs';
import type { GuestSummary, JaulaEvent } from '../api/types.js';
import { summarize, summarizeBroken } from '../core/guests.js';
import type { GuestConfig } from '../guest/config.js';
import { readGuest } from '../guest/store.js';
import { initAlive, liveStatus, readState, type GuestState } from '../guest/state.js';
import { mkdirp } from '../os/fs.js';
import { paths } from '../os/paths.js';

type Listener = (ev: JaulaEvent) => void;

export class EventHub {
  private readonly listeners = new Set<Listener>();
  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  publish(ev: JaulaEvent): void {
    for (const l of this.listeners) {
      try {
        l(ev);
      } catch {
        /* a broken subscriber does not stop the others */
      }
    }
  }
  get size(): number {
    return this.listeners.size;
  }
}

const FILES = new Set(['state.json', 'config.toml', 'exit', '.building']);
/** Files whose change leaves the guest's config as it was: its summary is made from the config last read. */
const STATE_FILES = new Set(['state.json', 'exit']);
const SWEEP_MS = 10_000;

export class GuestWatcher {
  /** The last summary published per guest (JSON), to send changes only. */
  private readonly known = new Map<string, string>();
  private readonly summaries = new Map<string, GuestSummary>();
  private readonly watchers = new Map<string, fs.FSWatcher>();
  private readonly pending = new Set<string>();
  /** The config each guest's summary was last made from, while only its state changes. */
  private readonly configs = new Map<string, GuestConfig>();
  /** Guests whose config (or being built) may have changed since it was read. */
  private readonly configTouched = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private sweep: NodeJS.Timeout | undefined;

  constructor(private readonly hub: EventHub) {}

  start(): void {
    mkdirp(paths().guestsRun, 0o700);
    mkdirp(paths().guestsConf, 0o755);
    this.watchDir(paths().guestsRun, (f) => f && this.addGuest(f));
    this.watchDir(paths().guestsConf, (f) => f && this.addGuest(f));
    for (const d of [paths().guestsConf, paths().guestsRun])
      for (const n of fs.readdirSync(d)) if (!n.startsWith('.')) this.addGuest(n, true);
    this.sweep = setInterval(() => this.sweepRunning(), SWEEP_MS);
    this.sweep.unref();
  }

  stop(): void {
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    if (this.sweep) clearInterval(this.sweep);
    if (this.timer) clearTimeout(this.timer);
  }

  /** Guests as last seen (the "hello" event). */
  all(): GuestSummary[] {
    return [...this.summaries.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  watchCount(): number {
    return this.watchers.size;
  }

  private watchDir(dir: string, onChange: (file: string | null) => void): void {
    if (this.watchers.has(dir)) return;
    try {
      const w = fs.watch(dir, { persistent: false }, (_ev, file) => onChange(file));
      w.on('error', () => {
        w.close();
        this.watchers.delete(dir);
      });
      this.watchers.set(dir, w);
    } catch {
      /* gone meanwhile */
    }
  }

  private addGuest(name: string, initial = false): void {
    if (name.startsWith('.')) return;
    for (const dir of [paths().guestRun(name), paths().guestConf(name)])
      this.watchDir(dir, (f) => {
        if (f === null || FILES.has(f)) this.touch(name, f === null || !STATE_FILES.has(f));
      });
    if (initial) this.refresh(name, true);
    else this.touch(name);
  }

  /**
   * The guests shown active whose state file or init says otherwise now (killed with their
   * supervisor: no file changed) are looked at again; only their state is read here, not their
   * config, which their directory's watch reports (a sweep over 1000 running guests reading and
   * parsing every config cost jaulad a second every 10 s).
   */
  private sweepRunning(): void {
    for (const [n, g] of this.summaries) {
      if (g.status === 'stopped') continue;
      let st: GuestState;
      try {
        st = readState(n);
      } catch {
        this.touch(n);
        continue;
      }
      // (what summarize and summarizeBroken in core/guests.ts would show of it now)
      const status = g.status === 'broken' ? 'broken' : liveStatus(st);
      const alive = g.status === 'broken' ? initAlive(st) : status !== 'stopped';
      const pid = alive && st.pid ? st.pid : undefined;
      if (status !== g.status || pid !== g.pid) this.touch(n, false);
    }
  }

  /**
   * Something changed for this guest: look again soon (changes come in bursts). `config`: its
   * config may have changed too (else a start's state changes read no config.toml again).
   */
  touch(name: string, config = true): void {
    this.pending.add(name);
    if (config) this.configTouched.add(name);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      const names = [...this.pending];
      this.pending.clear();
      for (const n of names) this.refresh(n, false);
    }, 15);
  }

  private refresh(name: string, quiet: boolean): void {
    let g: GuestSummary | undefined;
    const cfg = this.configTouched.delete(name) ? undefined : this.configs.get(name);
    try {
      if (cfg) g = summarize(cfg);
      else {
        const e = readGuest(name); // a broken one too (status "broken", with its error)
        if ('cfg' in e) this.configs.set(name, e.cfg);
        else this.configs.delete(name);
        g = 'cfg' in e ? summarize(e.cfg) : summarizeBroken(e.broken);
      }
    } catch {
      g = undefined;
    }
    if (!g) {
      if (fs.existsSync(paths().guestConf(name)) || fs.existsSync(paths().guestRun(name))) {
        // Being built: not a guest (yet).
        if (this.summaries.has(name)) this.forget(name, quiet);
        return;
      }
      for (const dir of [paths().guestRun(name), paths().guestConf(name)]) {
        this.watchers.get(dir)?.close();
        this.watchers.delete(dir);
      }
      if (this.summaries.has(name)) this.forget(name, quiet);
      return;
    }
    const text = JSON.stringify(g);
    if (this.known.get(name) === text) return;
    this.known.set(name, text);
    this.summaries.set(name, g);
    if (!quiet) this.hub.publish({ type: 'guest', at: new Date().toISOString(), guest: g });
  }

  private forget(name: string, quiet: boolean): void {
    this.known.delete(name);
    this.configs.delete(name);
    this.summaries.delete(name);
    if (!quiet) this.hub.publish({ type: 'guest-removed', at: new Date().toISOString(), name });
  }
}
