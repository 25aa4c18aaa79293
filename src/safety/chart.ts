/**
 * Pictures of the latency samples, for people who look rather than read. GitHub's job summary
 * strips inline <svg> and data: images, so the summary shows a Mermaid chart (GitHub draws those)
 * and a one-line sparkline; the SVG is written beside it as a file to keep as an artifact.
 */
import type { Sample } from './metrics';
import { isFailure } from './metrics';

export interface ChartOptions {
  /** The P99 threshold, drawn as a dashed line. */
  thresholdMs: number;
  title: string;
  width?: number;
  height?: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const num = (n: number) => String(Math.round(n * 10) / 10);

/** A "nice" axis maximum above `v`: 1, 2 or 5 times a power of ten. */
export function niceCeiling(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * An SVG bar chart: one bar per request in order, its height the response time; failed requests
 * (no answer, or 400 and up) drawn red at full height; the threshold as a dashed line.
 */
export function latencySvg(samples: readonly Sample[], o: ChartOptions): string {
  const width = o.width ?? 640;
  const height = o.height ?? 220;
  const left = 64;
  const right = 12;
  const top = 28;
  const bottom = 28;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const maxMs = niceCeiling(Math.max(o.thresholdMs * 1.2, ...samples.filter((s) => s.code !== 0).map((s) => s.ms)));
  const y = (ms: number) => top + plotH - (Math.min(ms, maxMs) / maxMs) * plotH;
  const slot = samples.length ? plotW / samples.length : plotW;
  const barW = Math.max(1, slot * 0.8);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(o.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="16" font-size="13" fill="#24292f">${esc(o.title)}</text>`,
    `<line x1="${left}" y1="${top + plotH}" x2="${width - right}" y2="${top + plotH}" stroke="#8c959f"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#8c959f"/>`,
  ];
  for (const tick of [0, maxMs / 2, maxMs]) {
    parts.push(`<text x="${left - 6}" y="${num(y(tick) + 4)}" text-anchor="end" fill="#57606a">${num(tick)} ms</text>`);
  }
  samples.forEach((s, i) => {
    const failed = isFailure(s);
    const h = failed ? plotH : Math.max(1, top + plotH - y(s.ms));
    const x = left + i * slot + (slot - barW) / 2;
    const fill = failed ? '#cf222e' : s.ms > o.thresholdMs ? '#bf8700' : '#2da44e';
    parts.push(
      `<rect class="sample" x="${num(x)}" y="${num(top + plotH - h)}" width="${num(barW)}" height="${num(h)}" fill="${fill}"><title>request ${i + 1}: ${s.code === 0 ? 'no answer' : `HTTP ${s.code}`}, ${num(s.ms)} ms</title></rect>`,
    );
  });
  const ty = y(o.thresholdMs);
  parts.push(`<line class="threshold" x1="${left}" y1="${num(ty)}" x2="${width - right}" y2="${num(ty)}" stroke="#cf222e" stroke-dasharray="6 4"/>`);
  // Legend below the plot, where no bar can cover it.
  parts.push(`<text x="${left}" y="${height - 8}" fill="#57606a">${samples.length} requests, in order</text>`);
  parts.push(`<line x1="${width - right - 150}" y1="${height - 12}" x2="${width - right - 126}" y2="${height - 12}" stroke="#cf222e" stroke-dasharray="6 4"/>`);
  parts.push(`<text x="${width - right}" y="${height - 8}" text-anchor="end" fill="#cf222e">P99 limit ${num(o.thresholdMs)} ms</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

/** A Mermaid xychart (GitHub renders it in job summaries): the samples as bars, the threshold as a line. */
export function latencyMermaid(samples: readonly Sample[], o: ChartOptions): string {
  const values = samples.map((s) => (s.code === 0 ? 0 : Math.round(s.ms)));
  const max = niceCeiling(Math.max(o.thresholdMs * 1.2, ...values));
  return [
    '```mermaid',
    'xychart-beta',
    `    title "${o.title.replace(/"/g, "'")}"`,
    `    x-axis "request" [${values.map((_, i) => i + 1).join(', ')}]`,
    `    y-axis "ms" 0 --> ${max}`,
    `    bar [${values.join(', ')}]`,
    `    line [${values.map(() => o.thresholdMs).join(', ')}]`,
    '```',
  ].join('\n');
}

const BLOCKS = '▁▂▃▄▅▆▇█';

/** One character per sample, scaled to the slowest; ✖ for a failed request. */
export function sparkline(samples: readonly Sample[]): string {
  const answered = samples.filter((s) => s.code !== 0).map((s) => s.ms);
  const max = Math.max(1e-9, ...answered);
  return samples.map((s) => (isFailure(s) ? '✖' : BLOCKS[Math.min(BLOCKS.length - 1, Math.floor((s.ms / max) * (BLOCKS.length - 1) + 0.5))])).join('');
}
