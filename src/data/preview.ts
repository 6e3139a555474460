/**
 * A preview sheet of samples: each image upscaled (nearest neighbour), its region boxes drawn with their
 * texts, and its caption written underneath, in a grid.
 * @module
 */

import type { Sample } from "./dataset.ts";
import { drawText, fill, FONT_ADVANCE, FONT_LINE, textWidth } from "./font.ts";
import { blankImage, type RgbImage } from "./image.ts";

/** Options of {@link renderPreview}. */
export interface PreviewOptions {
  /** Tiles per row. @default 4 */
  columns?: number;
  /** Side of each tile's image area in pixels (the image is scaled to fit, nearest neighbour). @default 256 */
  tile?: number;
  /** Most caption lines under a tile (longer captions end in "..."). @default 4 */
  captionLines?: number;
}

/** Distinct bright colours for boxes, by region index. */
const BOX_COLORS: readonly (readonly [number, number, number])[] = [
  [255, 255, 0],
  [0, 255, 255],
  [255, 0, 255],
  [0, 255, 0],
  [255, 128, 0],
  [128, 160, 255],
];

/**
 * Breaks a text into lines of at most `width` characters at spaces (a longer word is cut).
 *
 * @param text The text.
 * @param width Characters a line.
 * @returns The lines.
 *
 * @example
 * ```ts
 * import { wrapText } from "./preview.ts";
 * if (wrapText("a small red seven above", 10).join("|") !== "a small|red seven|above") throw new Error("wrap");
 * ```
 */
export function wrapText(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (let word of text.split(/\s+/).filter((w) => w !== "")) {
    while (word.length > width) {
      if (line) lines.push(line), line = "";
      lines.push(word.slice(0, width));
      word = word.slice(width);
    }
    if (line === "") line = word;
    else if (line.length + 1 + word.length <= width) line += " " + word;
    else lines.push(line), line = word;
  }
  if (line) lines.push(line);
  return lines;
}

/**
 * Draws a rectangle outline `[x0, x1] x [y0, y1]` (inclusive), clipped to the image.
 *
 * @param image The image, drawn into in place.
 * @param x0 Left column.
 * @param y0 Top row.
 * @param x1 Right column.
 * @param y1 Bottom row.
 * @param color RGB 0..255.
 * @param thickness Line width in pixels, growing outwards.
 *
 * @example
 * ```ts
 * import { drawRect } from "./preview.ts";
 * const img = { width: 4, height: 4, data: new Uint8Array(48) };
 * drawRect(img, 0, 0, 3, 3, [255, 0, 0]);
 * if (img.data[0] !== 255 || img.data[(1 * 4 + 1) * 3] !== 0) throw new Error("outline only");
 * ```
 */
export function drawRect(
  image: RgbImage,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  color: readonly number[],
  thickness = 1,
): void {
  for (let t = 0; t < thickness; t++) {
    const a = x0 - t, b = y0 - t, c = x1 + t, d = y1 + t;
    fill(image, a, b, c + 1, b + 1, color);
    fill(image, a, d, c + 1, d + 1, color);
    fill(image, a, b, a + 1, d + 1, color);
    fill(image, c, b, c + 1, d + 1, color);
  }
}

/**
 * Renders samples as a grid of captioned, boxed tiles.
 *
 * @param samples The samples (at most a few dozen make a readable sheet).
 * @param options Columns, tile size, caption lines.
 * @returns The sheet.
 *
 * @example
 * ```ts
 * import { renderPreview } from "./preview.ts";
 * const image = { width: 8, height: 8, data: new Uint8Array(192) };
 * const sheet = renderPreview([{ image, caption: "a small red seven", regions: [{ box: [1, 1, 5, 5], text: "small red seven" }] }]);
 * if (sheet.width < 256) throw new Error("one 256 px tile");
 * ```
 */
export function renderPreview(samples: readonly Sample[], options: PreviewOptions = {}): RgbImage {
  const columns = Math.max(1, Math.min(options.columns ?? 4, samples.length || 1));
  const tile = options.tile ?? 256;
  const maxLines = options.captionLines ?? 4;
  const gap = 6;
  const capChars = Math.floor((tile + 1) / FONT_ADVANCE);
  const captions = samples.map((s) => {
    const lines = wrapText(s.caption, capChars);
    if (lines.length > maxLines) {
      lines.length = maxLines;
      lines[maxLines - 1] = lines[maxLines - 1].slice(0, capChars - 3) + "...";
    }
    return lines;
  });
  const capHeight = Math.max(1, ...captions.map((c) => c.length)) * FONT_LINE + 4;
  const cellH = tile + capHeight;
  const rows = Math.ceil(samples.length / columns);
  const sheet = blankImage(gap + columns * (tile + gap), gap + rows * (cellH + gap));
  fill(sheet, 0, 0, sheet.width, sheet.height, [48, 48, 56]);

  samples.forEach((s, n) => {
    const ox = gap + (n % columns) * (tile + gap);
    const oy = gap + Math.floor(n / columns) * (cellH + gap);
    const { width: w, height: h, data } = s.image;
    const k = tile / Math.max(w, h);
    // Nearest-neighbour upscale into the tile, black beyond the image.
    fill(sheet, ox, oy, ox + tile, oy + tile, [0, 0, 0]);
    const dw = Math.round(w * k), dh = Math.round(h * k);
    for (let y = 0; y < dh; y++) {
      const sy = Math.min(h - 1, Math.floor(y / k));
      for (let x = 0; x < dw; x++) {
        const sx = Math.min(w - 1, Math.floor(x / k));
        const i = (sy * w + sx) * 3, o = ((oy + y) * sheet.width + ox + x) * 3;
        sheet.data[o] = data[i];
        sheet.data[o + 1] = data[i + 1];
        sheet.data[o + 2] = data[i + 2];
      }
    }
    // Boxes just outside the region's pixels, then their texts above (or below, or inside) them.
    const clip = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
    s.regions.forEach((r, j) => {
      const color = BOX_COLORS[j % BOX_COLORS.length];
      const x0 = clip(ox + Math.round(r.box[0] * k) - 1, ox, ox + tile - 1);
      const y0 = clip(oy + Math.round(r.box[1] * k) - 1, oy, oy + tile - 1);
      const x1 = clip(ox + Math.round(r.box[2] * k), ox, ox + tile - 1);
      const y1 = clip(oy + Math.round(r.box[3] * k), oy, oy + tile - 1);
      drawRect(sheet, x0, y0, x1, y1, color, 2);
    });
    // Each label takes the first spot that does not cover an earlier label: above the box, below it,
    // inside its top; left-aligned, then right-aligned.
    const taken: [number, number, number, number][] = [];
    s.regions.forEach((r, j) => {
      const color = BOX_COLORS[j % BOX_COLORS.length];
      const x0 = ox + Math.round(r.box[0] * k), y0 = oy + Math.round(r.box[1] * k);
      const x1 = ox + Math.round(r.box[2] * k), y1 = oy + Math.round(r.box[3] * k);
      const tw = textWidth(r.text);
      const spots: [number, number][] = [];
      for (const tx of [x0, x1 - tw]) {
        for (const ty of [y0 - 12, y1 + 4, y0 + 2]) {
          spots.push([clip(tx, ox + 1, ox + tile - tw - 1), clip(ty, oy + 1, oy + tile - 8)]);
        }
      }
      const free = spots.find(([tx, ty]) =>
        taken.every(([a, b, c, d]) =>
          tx + tw + 1 < a || c < tx - 1 || ty + 8 < b || d < ty - 1
        )
      ) ?? spots[0];
      taken.push([free[0], free[1], free[0] + tw, free[1] + 7]);
      drawText(sheet, r.text, free[0], free[1], color, { background: [0, 0, 0] });
    });
    captions[n].forEach((line, l) =>
      drawText(sheet, line, ox, oy + tile + 4 + l * FONT_LINE, [235, 235, 235])
    );
  });
  return sheet;
}
