import { percentile } from './stats.js';

export interface PlotPoint {
  /** Start order, from 0. */
  index: number;
  batch: number;
  /** Time to healthy, or undefined for a clone that failed. */
  ms: number | undefined;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/**
 * An SVG chart of time to healthy: one bar per clone in start order (batches in
 * alternating shades, failures as red marks), with p50 and p90 lines. Pure.
 */
export function timeToHealthySvg(points: readonly PlotPoint[], title: string): string {
  const W = 900;
  const H = 420;
  const m = { l: 60, r: 20, t: 40, b: 50 };
  const ok = points.flatMap((p) => (p.ms === undefined ? [] : [p.ms]));
  const max = Math.max(1000, ...ok) * 1.1;
  const step = (W - m.l - m.r) / Math.max(1, points.length);
  const y = (ms: number) => m.t + (H - m.t - m.b) * (1 - ms / max);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`);
  // Axes and seconds gridlines.
  const tick = max > 120_000 ? 30_000 : max > 30_000 ? 10_000 : max > 10_000 ? 2_000 : 1_000;
  for (let t = 0; t <= max; t += tick) {
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#eee"/>`);
    out.push(`<text x="${m.l - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${t / 1000}s</text>`);
  }
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="black"/>`);
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="black"/>`);
  for (const p of points) {
    const x = m.l + p.index * step + step * 0.1;
    const w = Math.max(1, step * 0.8);
    if (p.ms === undefined) {
      out.push(`<text x="${(x + w / 2).toFixed(1)}" y="${H - m.b - 4}" text-anchor="middle" fill="#c00">x</text>`);
      continue;
    }
    out.push(`<rect x="${x.toFixed(1)}" y="${y(p.ms).toFixed(1)}" width="${w.toFixed(1)}" height="${(H - m.b - y(p.ms)).toFixed(1)}" fill="${p.batch % 2 ? '#6a9fd4' : '#2f6db0'}"><title>clone ${p.index + 1} (batch ${p.batch + 1}): ${(p.ms / 1000).toFixed(2)}s</title></rect>`);
  }
  for (const [name, v, color] of [['p50', percentile(ok, 50), '#090'], ['p90', percentile(ok, 90), '#d80']] as const) {
    if (v === undefined) continue;
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="${color}" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${W - m.r - 4}" y="${(y(v) - 4).toFixed(1)}" text-anchor="end" fill="${color}">${name} ${(v / 1000).toFixed(1)}s</text>`);
  }
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">clones in start order (shade: batch; red x: failed)</text>`);
  out.push(`<text x="16" y="${(m.t + H - m.b) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(m.t + H - m.b) / 2})">time to healthy</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
