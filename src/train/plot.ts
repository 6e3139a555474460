/**
 * Loss curves a person can look at: an SVG (text, crisp) and a PNG (for viewers without SVG), drawn from the
 * same layout. No plotting library: a few lines, axes and labels.
 *
 * @module
 */

import { drawText, textWidth } from "../data/font.ts";
import { encodePng } from "../data/image.ts";

/** One line of a chart. */
export interface Series {
  /** The legend's label. */
  name: string;
  /** Points (x ascending). */
  points: [number, number][];
}

const COLORS: [number, number, number][] = [
  [0, 114, 178],
  [213, 94, 0],
  [0, 158, 115],
  [204, 121, 167],
  [230, 159, 0],
  [86, 180, 233],
];

interface Layout {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
  xMin: number;
  xMax: number;
  yMin: number;
  yMax: number;
  x: (v: number) => number;
  y: (v: number) => number;
  yTicks: number[];
  xTicks: number[];
}

function niceTicks(min: number, max: number, count: number): number[] {
  const span = max - min || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + 1e-9 * span; v += step) {
    ticks.push(Number(v.toPrecision(12)));
  }
  return ticks;
}

function layout(series: Series[], width: number, height: number): Layout {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const xMin = Math.min(...xs, 0), xMax = Math.max(...xs, 1);
  let yMin = Math.min(...ys, 0), yMax = Math.max(...ys, 1e-9);
  if (yMin === yMax) yMax = yMin + 1;
  const pad = (yMax - yMin) * 0.05;
  yMin = yMin >= 0 ? 0 : yMin - pad;
  yMax += pad;
  const left = 56, right = 150, top = 30, bottom = 36;
  const plotW = width - left - right, plotH = height - top - bottom;
  return {
    width,
    height,
    left,
    right,
    top,
    bottom,
    xMin,
    xMax,
    yMin,
    yMax,
    x: (v) => left + ((v - xMin) / (xMax - xMin || 1)) * plotW,
    y: (v) => top + (1 - (v - yMin) / (yMax - yMin)) * plotH,
    yTicks: niceTicks(yMin, yMax, 6),
    xTicks: niceTicks(xMin, xMax, 6),
  };
}

function label(v: number): string {
  return Math.abs(v) >= 1000 ? v.toExponential(1) : `${Number(v.toPrecision(3))}`;
}

/**
 * A line chart as SVG text.
 *
 * @param series The lines.
 * @param options `title`, `xLabel`, `width` (default 720), `height` (default 400).
 * @returns The SVG document.
 *
 * @example
 * ```ts
 * import { lineChartSvg } from "./plot.ts";
 * const svg = lineChartSvg([{ name: "loss", points: [[0, 2], [1, 1]] }], { title: "loss" });
 * console.log(svg.startsWith("<svg")); // true
 * ```
 */
export function lineChartSvg(
  series: Series[],
  options: { title?: string; xLabel?: string; width?: number; height?: number } = {},
): string {
  const l = layout(series, options.width ?? 720, options.height ?? 400);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${l.width}" height="${l.height}" font-family="sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="100%" height="100%" fill="white"/>`);
  for (const t of l.yTicks) {
    parts.push(
      `<line x1="${l.left}" x2="${l.width - l.right}" y1="${l.y(t)}" y2="${l.y(t)}" stroke="#ddd"/>`,
    );
    parts.push(`<text x="${l.left - 6}" y="${l.y(t) + 4}" text-anchor="end">${label(t)}</text>`);
  }
  for (const t of l.xTicks) {
    parts.push(`<text x="${l.x(t)}" y="${l.height - l.bottom + 16}" text-anchor="middle">${label(t)}</text>`);
  }
  parts.push(
    `<rect x="${l.left}" y="${l.top}" width="${l.width - l.left - l.right}" height="${
      l.height - l.top - l.bottom
    }" fill="none" stroke="#444"/>`,
  );
  series.forEach((s, i) => {
    const [r, g, b] = COLORS[i % COLORS.length];
    const d = s.points.filter((p) => Number.isFinite(p[1])).map((p, k) =>
      `${k ? "L" : "M"}${l.x(p[0]).toFixed(1)},${l.y(p[1]).toFixed(1)}`
    ).join("");
    parts.push(`<path d="${d}" fill="none" stroke="rgb(${r},${g},${b})" stroke-width="1.5"/>`);
    const ly = l.top + 14 + 18 * i;
    parts.push(
      `<line x1="${l.width - l.right + 10}" x2="${l.width - l.right + 30}" y1="${ly - 4}" y2="${
        ly - 4
      }" stroke="rgb(${r},${g},${b})" stroke-width="3"/>`,
    );
    parts.push(`<text x="${l.width - l.right + 36}" y="${ly}">${escapeXml(s.name)}</text>`);
  });
  if (options.title) {
    parts.push(
      `<text x="${l.width / 2}" y="18" text-anchor="middle" font-size="14">${
        escapeXml(options.title)
      }</text>`,
    );
  }
  if (options.xLabel) {
    parts.push(
      `<text x="${(l.left + l.width - l.right) / 2}" y="${l.height - 4}" text-anchor="middle">${
        escapeXml(options.xLabel)
      }</text>`,
    );
  }
  parts.push("</svg>");
  return parts.join("\n");
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * The same chart as a PNG (RGB), with a small bitmap font for the labels.
 *
 * @param series The lines.
 * @param options As {@link lineChartSvg}.
 * @returns PNG bytes.
 *
 * @example
 * ```ts
 * import { lineChartPng } from "./plot.ts";
 * const png = lineChartPng([{ name: "loss", points: [[0, 2], [1, 1]] }]);
 * console.log(png[1] === 0x50); // "P" of the PNG signature
 * ```
 */
export function lineChartPng(
  series: Series[],
  options: { title?: string; xLabel?: string; width?: number; height?: number } = {},
): Uint8Array {
  const l = layout(series, options.width ?? 720, options.height ?? 400);
  const { width, height } = l;
  const image = { width, height, data: new Uint8Array(width * height * 3).fill(255) };
  const pixels = image.data;
  const set = (x: number, y: number, c: [number, number, number]) => {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    pixels.set(c, (y * width + x) * 3);
  };
  const line = (x0: number, y0: number, x1: number, y1: number, c: [number, number, number], thick = 1) => {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    for (let k = 0; k <= n; k++) {
      const x = x0 + ((x1 - x0) * k) / n, y = y0 + ((y1 - y0) * k) / n;
      for (let dx = 0; dx < thick; dx++) for (let dy = 0; dy < thick; dy++) set(x + dx, y + dy, c);
    }
  };
  const text = (s: string, x: number, y: number, anchor: "start" | "middle" | "end" = "start") => {
    const w = textWidth(s);
    const x0 = anchor === "start" ? x : anchor === "middle" ? x - w / 2 : x - w;
    drawText(image, s, Math.round(x0), Math.round(y - 7), [0, 0, 0]);
  };
  const grey: [number, number, number] = [221, 221, 221], dark: [number, number, number] = [68, 68, 68];
  for (const t of l.yTicks) {
    line(l.left, l.y(t), width - l.right, l.y(t), grey);
    text(label(t), l.left - 6, l.y(t) + 4, "end");
  }
  for (const t of l.xTicks) text(label(t), l.x(t), height - l.bottom + 16, "middle");
  line(l.left, l.top, width - l.right, l.top, dark);
  line(l.left, height - l.bottom, width - l.right, height - l.bottom, dark);
  line(l.left, l.top, l.left, height - l.bottom, dark);
  line(width - l.right, l.top, width - l.right, height - l.bottom, dark);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    for (let k = 1; k < pts.length; k++) {
      line(l.x(pts[k - 1][0]), l.y(pts[k - 1][1]), l.x(pts[k][0]), l.y(pts[k][1]), c, 2);
    }
    const ly = l.top + 14 + 18 * i;
    line(width - l.right + 10, ly - 4, width - l.right + 30, ly - 4, c, 3);
    text(s.name, width - l.right + 36, ly);
  });
  if (options.title) text(options.title, width / 2, 18, "middle");
  if (options.xLabel) text(options.xLabel, (l.left + width - l.right) / 2, height - 4, "middle");
  return encodePng(image);
}

/** One group of bars (a metric), one bar per series (a model). */
export interface BarGroup {
  /** The group's label under its bars. */
  label: string;
  /** One value per series, in [0, 1] (null: not measured, no bar). */
  values: (number | null)[];
}

/**
 * A grouped bar chart of fractions in [0, 1] as a PNG: one group per metric, one colour per model.
 *
 * @param groups The metrics.
 * @param seriesNames The models, in the order of each group's values.
 * @param options `title`, `width` (default 900), `height` (default 420).
 * @returns PNG bytes.
 *
 * @example
 * ```ts
 * import { barChartPng } from "./plot.ts";
 * const png = barChartPng([{ label: "R@1", values: [0.5, 0.7] }], ["CLIP", "CLOC"]);
 * console.log(png.length > 100); // true
 * ```
 */
export function barChartPng(
  groups: BarGroup[],
  seriesNames: string[],
  options: { title?: string; width?: number; height?: number } = {},
): Uint8Array {
  const width = options.width ?? 900, height = options.height ?? 420;
  const image = { width, height, data: new Uint8Array(width * height * 3).fill(255) };
  const left = 48, right = 150, top = 30, bottom = 40;
  const plotW = width - left - right, plotH = height - top - bottom;
  const y = (v: number) => top + (1 - v) * plotH;
  const rect = (x0: number, y0: number, x1: number, y1: number, c: readonly number[]) => {
    for (let yy = Math.max(0, Math.round(y0)); yy < Math.min(height, Math.round(y1)); yy++) {
      for (let xx = Math.max(0, Math.round(x0)); xx < Math.min(width, Math.round(x1)); xx++) {
        image.data.set(c, (yy * width + xx) * 3);
      }
    }
  };
  const text = (s: string, x: number, yy: number, anchor: "start" | "middle" | "end" = "start") => {
    const w = textWidth(s);
    drawText(
      image,
      s,
      Math.round(anchor === "start" ? x : anchor === "middle" ? x - w / 2 : x - w),
      Math.round(yy - 7),
      [0, 0, 0],
    );
  };
  for (let t = 0; t <= 10; t += 2) {
    rect(left, y(t / 10), left + plotW, y(t / 10) + 1, [221, 221, 221]);
    text(`${t * 10}%`, left - 6, y(t / 10) + 4, "end");
  }
  const groupW = plotW / Math.max(groups.length, 1);
  const barW = (groupW * 0.8) / Math.max(seriesNames.length, 1);
  groups.forEach((g, i) => {
    const x0 = left + i * groupW + groupW * 0.1;
    g.values.forEach((v, k) => {
      if (v === null || !Number.isFinite(v)) return;
      rect(
        x0 + k * barW,
        y(Math.max(0, Math.min(1, v))),
        x0 + (k + 1) * barW - 1,
        y(0),
        COLORS[k % COLORS.length],
      );
    });
    text(g.label, left + (i + 0.5) * groupW, height - bottom + 16, "middle");
  });
  rect(left, y(0), left + plotW, y(0) + 1, [68, 68, 68]);
  seriesNames.forEach((name, k) => {
    const ly = top + 14 + 18 * k;
    rect(width - right + 10, ly - 8, width - right + 26, ly, COLORS[k % COLORS.length]);
    text(name, width - right + 32, ly);
  });
  if (options.title) text(options.title, width / 2, 18, "middle");
  return encodePng(image);
}
