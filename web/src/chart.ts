/** Usage history per guest and small canvas charts of it (no chart library). */
import type { GuestUsage } from '../../src/api/types.js';

export const HISTORY = 60;

export interface Series {
  /** CPU use in percent of one CPU, per sample. */
  cpu: number[];
  /** Memory in bytes, per sample. */
  mem: number[];
  last?: GuestUsage;
}

export class UsageHistory {
  private readonly series = new Map<string, Series>();

  /** Add one reading per running guest; guests not in it are forgotten. */
  add(readings: GuestUsage[]): void {
    const seen = new Set<string>();
    for (const u of readings) {
      seen.add(u.name);
      let s = this.series.get(u.name);
      if (!s) this.series.set(u.name, (s = { cpu: [], mem: [] }));
      if (s.last && u.at > s.last.at && u.cpuNs >= s.last.cpuNs) {
        const pct = ((u.cpuNs - s.last.cpuNs) / ((u.at - s.last.at) * 1e6)) * 100;
        push(s.cpu, pct);
        push(s.mem, u.memoryBytes);
      } else if (!s.last) push(s.mem, u.memoryBytes);
      s.last = u;
    }
    for (const n of [...this.series.keys()]) if (!seen.has(n)) this.series.delete(n);
  }

  get(name: string): Series | undefined {
    return this.series.get(name);
  }
}

function push(a: number[], v: number): void {
  a.push(v);
  if (a.length > HISTORY) a.splice(0, a.length - HISTORY);
}

/** Draw a series as a filled line, scaled to its maximum or `max`, whichever is higher. */
export function drawChart(
  canvas: HTMLCanvasElement,
  values: number[],
  opts: { max?: number; color: string; label?: string },
): void {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext('2d');
  if (!g) return;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  canvas.dataset['samples'] = String(values.length);
  canvas.dataset['last'] = values.length ? String(values[values.length - 1]) : '';
  if (values.length) {
    const max = Math.max(opts.max ?? 0, ...values, 1e-9);
    const step = w / (HISTORY - 1);
    const x0 = w - (values.length - 1) * step;
    const y = (v: number): number => h - 1 - (v / max) * (h - 3);
    g.beginPath();
    g.moveTo(x0, h);
    values.forEach((v, i) => g.lineTo(x0 + i * step, y(v)));
    g.lineTo(w, h);
    g.closePath();
    g.fillStyle = `${opts.color}33`;
    g.fill();
    g.beginPath();
    values.forEach((v, i) => (i ? g.lineTo(x0 + i * step, y(v)) : g.moveTo(x0, y(v))));
    g.strokeStyle = opts.color;
    g.lineWidth = 1.5;
    g.stroke();
  }
  if (opts.label) {
    g.fillStyle = '#555';
    g.font = '11px system-ui, sans-serif';
    g.fillText(opts.label, 4, 12);
  }
}

export function bytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(n < 10 && i ? 1 : 0)} ${u[i]}`;
}
