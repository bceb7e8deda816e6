/**
 * Geometry of the dashboard's server-rendered SVG charts. Pure functions: the templates draw the shapes,
 * give each one a <title> (tooltip and accessible name) and put a data table beside the chart.
 * Colours come from CSS classes (admin.css): the CSP forbids inline styles.
 */

export interface BarItem {
  key: string;
  label: string;
  value: number;
}

/** An axis for counts up to `max`: a whole tick step of 1, 2 or 5 × 10^k, about four ticks, top ≥ max. */
export function countAxis(max: number): { top: number; step: number } {
  const raw = Math.max(1, max / 4);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  return { top: Math.max(step, Math.ceil(max / step) * step), step };
}

/** Approximate width of `text` at 13 px: wide (CJK) characters count double. */
function textWidth(text: string): number {
  let width = 0;
  for (const char of text) width += char.codePointAt(0)! >= 0x2e80 ? 13 : 7.4;
  return width;
}

/** Horizontal bars, one row per item, label left and value right of its bar; the label column fits the longest label. */
export function horizontalBars(items: BarItem[], options: { width?: number; row?: number } = {}) {
  const width = options.width ?? 420;
  const row = options.row ?? 34;
  const labelWidth = Math.round(Math.min(200, Math.max(80, ...items.map((i) => textWidth(i.label) + 14))));
  const valueWidth = 64;
  const track = width - labelWidth - valueWidth;
  const max = Math.max(0, ...items.map((i) => i.value));
  const bars = items.map((item, index) => {
    const y = index * row;
    const w = max === 0 ? 0 : Math.max(item.value > 0 ? 2 : 0, (item.value / max) * track);
    return { ...item, x: labelWidth, y: y + 6, w: round(w), h: row - 12, textY: y + row / 2, valueX: labelWidth + w + 8, trackWidth: track };
  });
  return { width, height: Math.max(row, items.length * row), labelWidth, bars, total: items.reduce((sum, i) => sum + i.value, 0) };
}

export interface StackColumn {
  key: string;
  label: string;
  segments: Array<{ key: string; value: number }>;
}

/** Stacked columns (one per bucket) on a y axis with round ticks; `labelEvery` thins the x labels. */
export function stackedColumns(columns: StackColumn[], options: { width?: number; height?: number; labelEvery?: number } = {}) {
  const width = options.width ?? 720;
  const height = options.height ?? 210;
  // The y axis is on the right, beside the latest hours (what a narrow screen shows first).
  const right = 40;
  const bottom = 26;
  const top = 10;
  const plot = { x: 8, y: top, w: width - 8 - right, h: height - top - bottom };
  const totals = columns.map((c) => c.segments.reduce((sum, s) => sum + s.value, 0));
  const { top: max, step } = countAxis(Math.max(0, ...totals));
  const slot = plot.w / Math.max(1, columns.length);
  const barWidth = Math.max(2, slot * 0.72);
  const scale = (v: number) => (v / max) * plot.h;
  const drawn = columns.map((column, index) => {
    let base = plot.y + plot.h;
    const segments = column.segments
      .filter((s) => s.value > 0)
      .map((s) => {
        const h = scale(s.value);
        base -= h;
        return { key: s.key, value: s.value, y: round(base), h: round(h) };
      });
    const x = plot.x + index * slot + (slot - barWidth) / 2;
    return {
      key: column.key,
      label: column.label,
      total: totals[index]!,
      x: round(x),
      w: round(barWidth),
      cx: round(x + barWidth / 2),
      segments,
      showLabel: index % (options.labelEvery ?? 1) === 0,
    };
  });
  const ticks = Array.from({ length: Math.round(max / step) + 1 }, (_, i) => ({ value: i * step, y: round(plot.y + plot.h - scale(i * step)) }));
  return { width, height, plot, columns: drawn, ticks, max };
}

const round = (n: number) => Math.round(n * 10) / 10;
