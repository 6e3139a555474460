/**
 * A 5x7 pixel bitmap font (letters drawn as capitals, digits, space, hyphen and a little punctuation) and
 * a text renderer for RGB images, used to caption previews.
 * @module
 */

import type { RgbImage } from "./image.ts";

/** Glyphs as 7 rows of 5 columns, `#` = ink. Letters are looked up case-insensitively. */
const GLYPHS: Record<string, string> = {
  a: ".###. #...# #...# ##### #...# #...# #...#",
  b: "####. #...# #...# ####. #...# #...# ####.",
  c: ".###. #...# #.... #.... #.... #...# .###.",
  d: "####. #...# #...# #...# #...# #...# ####.",
  e: "##### #.... #.... ####. #.... #.... #####",
  f: "##### #.... #.... ####. #.... #.... #....",
  g: ".###. #...# #.... #.### #...# #...# .####",
  h: "#...# #...# #...# ##### #...# #...# #...#",
  i: ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
  j: "..### ...#. ...#. ...#. ...#. #..#. .##..",
  k: "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
  l: "#.... #.... #.... #.... #.... #.... #####",
  m: "#...# ##.## #.#.# #.#.# #...# #...# #...#",
  n: "#...# #...# ##..# #.#.# #..## #...# #...#",
  o: ".###. #...# #...# #...# #...# #...# .###.",
  p: "####. #...# #...# ####. #.... #.... #....",
  q: ".###. #...# #...# #...# #.#.# #..#. .##.#",
  r: "####. #...# #...# ####. #.#.. #..#. #...#",
  s: ".#### #.... #.... .###. ....# ....# ####.",
  t: "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
  u: "#...# #...# #...# #...# #...# #...# .###.",
  v: "#...# #...# #...# #...# #...# .#.#. ..#..",
  w: "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
  x: "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
  y: "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
  z: "##### ....# ...#. ..#.. .#... #.... #####",
  "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
  "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
  "2": ".###. #...# ....# ...#. ..#.. .#... #####",
  "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
  "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
  "5": "##### #.... ####. ....# ....# #...# .###.",
  "6": "..##. .#... #.... ####. #...# #...# .###.",
  "7": "##### ....# ...#. ..#.. .#... .#... .#...",
  "8": ".###. #...# #...# .###. #...# #...# .###.",
  "9": ".###. #...# #...# .#### ....# ...#. .##..",
  " ": "..... ..... ..... ..... ..... ..... .....",
  "-": "..... ..... ..... ##### ..... ..... .....",
  "_": "..... ..... ..... ..... ..... ..... #####",
  "%": "##..# ##.#. ...#. ..#.. .#... .#.## #..##",
  "@": ".###. #...# #.### #.#.# #.##. #.... .####",
  "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
  "=": "..... ..... ##### ..... ##### ..... .....",
  ">": ".#... ..#.. ...#. ....# ...#. ..#.. .#...",
  "<": "...#. ..#.. .#... #.... .#... ..#.. ...#.",
  ".": "..... ..... ..... ..... ..... .##.. .##..",
  ",": "..... ..... ..... ..... .##.. ..#.. .#...",
  "'": "..#.. ..#.. .#... ..... ..... ..... .....",
  "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
  ":": "..... .##.. .##.. ..... .##.. .##.. .....",
  "/": "..... ....# ...#. ..#.. .#... #.... .....",
  "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
  ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
};

/** Width of a glyph in font pixels. */
export const FONT_WIDTH = 5;
/** Height of a glyph in font pixels. */
export const FONT_HEIGHT = 7;
/** Horizontal advance per character (glyph plus one column of space). */
export const FONT_ADVANCE = 6;
/** Vertical advance per line. */
export const FONT_LINE = 9;

/** Each glyph as 7 row bitmasks (bit 4 = leftmost column). */
const BITS = new Map<string, number[]>(
  Object.entries(GLYPHS).map(([ch, rows]) => [
    ch,
    rows.split(" ").map((r) => [...r].reduce((m, c) => (m << 1) | (c === "#" ? 1 : 0), 0)),
  ]),
);

/**
 * Whether the font has a glyph for a character (others draw as `?`).
 *
 * @param ch One character.
 * @returns True for a-z, A-Z, 0-9, space, `-.,'?:/()`.
 *
 * @example
 * ```ts
 * import { hasGlyph } from "./font.ts";
 * if (!hasGlyph("Q") || hasGlyph("é")) throw new Error("coverage");
 * ```
 */
export function hasGlyph(ch: string): boolean {
  return BITS.has(ch.toLowerCase());
}

/**
 * Width of a line of text in image pixels (no trailing space column).
 *
 * @param text The text (one line).
 * @param scale Pixels per font pixel.
 * @returns Width in pixels.
 *
 * @example
 * ```ts
 * import { textWidth } from "./font.ts";
 * if (textWidth("ab", 1) !== 11) throw new Error("5 + 1 + 5");
 * ```
 */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * FONT_ADVANCE - 1) * scale;
}

/**
 * Draws one line of text into an image; pixels outside the image are clipped.
 *
 * @param image The image, drawn into in place.
 * @param text The text (one line).
 * @param x Left edge in pixels.
 * @param y Top edge in pixels.
 * @param color RGB 0..255.
 * @param options `scale`: pixels per font pixel (default 1); `background`: fill the text's box (one pixel
 *   of margin) with this colour first.
 *
 * @example
 * ```ts
 * import { drawText } from "./font.ts";
 * const img = { width: 12, height: 8, data: new Uint8Array(12 * 8 * 3) };
 * drawText(img, "i", 0, 0, [255, 255, 255]);
 * if (img.data[(0 * 12 + 1) * 3] !== 255 || img.data[0] !== 0) throw new Error("the top bar of i");
 * ```
 */
export function drawText(
  image: RgbImage,
  text: string,
  x: number,
  y: number,
  color: readonly number[],
  options: { scale?: number; background?: readonly number[] } = {},
): void {
  const s = options.scale ?? 1;
  if (options.background) {
    fill(image, x - s, y - s, x + textWidth(text, s) + s, y + FONT_HEIGHT * s + s, options.background);
  }
  for (let i = 0; i < text.length; i++) {
    const rows = BITS.get(text[i].toLowerCase()) ?? BITS.get("?")!;
    const gx = x + i * FONT_ADVANCE * s;
    for (let r = 0; r < FONT_HEIGHT; r++) {
      for (let c = 0; c < FONT_WIDTH; c++) {
        if ((rows[r] >> (FONT_WIDTH - 1 - c)) & 1) {
          fill(image, gx + c * s, y + r * s, gx + (c + 1) * s, y + (r + 1) * s, color);
        }
      }
    }
  }
}

/**
 * Fills the rectangle `[x0, x1) x [y0, y1)` with a colour, clipped to the image.
 *
 * @param image The image, drawn into in place.
 * @param x0 Left edge (inclusive).
 * @param y0 Top edge (inclusive).
 * @param x1 Right edge (exclusive).
 * @param y1 Bottom edge (exclusive).
 * @param color RGB 0..255.
 *
 * @example
 * ```ts
 * import { fill } from "./font.ts";
 * const img = { width: 2, height: 2, data: new Uint8Array(12) };
 * fill(img, 1, 0, 5, 1, [9, 9, 9]);
 * if (img.data[3] !== 9 || img.data[0] !== 0) throw new Error("clipped fill");
 * ```
 */
export function fill(
  image: RgbImage,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  color: readonly number[],
): void {
  const xa = Math.max(0, Math.floor(x0)), xb = Math.min(image.width, Math.floor(x1));
  const ya = Math.max(0, Math.floor(y0)), yb = Math.min(image.height, Math.floor(y1));
  for (let y = ya; y < yb; y++) {
    for (let x = xa; x < xb; x++) {
      const o = (y * image.width + x) * 3;
      image.data[o] = color[0];
      image.data[o + 1] = color[1];
      image.data[o + 2] = color[2];
    }
  }
}
