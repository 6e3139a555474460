/**
 * Mosaic scenes: 1 to 4 real MNIST digits or Fashion-MNIST items pasted on a dark canvas, each with a
 * colour (a tint of the grey glyph), a size and an exact box, an image caption naming the objects and
 * their spatial relations ("a small red seven above a large blue two") and region captions
 * ("small red seven"). Scene `i` of a data set depends only on `(seed, i)`.
 *
 * Vocabulary (fixed, so other tools can make compatible data): the colours of {@link COLORS}, the sizes
 * `small` and `large`, the classes of `DIGIT_CLASSES` / `FASHION_CLASSES`, and the words
 * `a`, `and`, `above`, `below`, `to`, `the`, `left`, `right`, `of` ({@link MOSAIC_WORDS} lists them all).
 * @module
 */

import { Rng } from "../tensor/random.ts";
import { mixSeed } from "./_seed.ts";
import type { Dataset, Sample } from "./dataset.ts";
import {
  DIGIT_CLASSES,
  FASHION_CLASSES,
  type GlyphSet,
  type GlyphSetName,
  loadGlyphs,
  type Split,
} from "./glyphs.ts";
import { resample } from "./image.ts";
import type { Region } from "./records.ts";

/** A named colour of the mosaic palette. */
export interface MosaicColor {
  /** The colour's word in captions. */
  name: string;
  /** 0..255 RGB; a glyph pixel of grey level g becomes `g * rgb / 255`. */
  rgb: readonly [number, number, number];
}

/** The mosaic palette, in id order. */
export const COLORS: readonly MosaicColor[] = [
  { name: "red", rgb: [230, 25, 75] },
  { name: "green", rgb: [60, 180, 75] },
  { name: "blue", rgb: [0, 130, 200] },
  { name: "yellow", rgb: [255, 225, 25] },
  { name: "orange", rgb: [245, 130, 48] },
  { name: "purple", rgb: [145, 30, 180] },
  { name: "cyan", rgb: [70, 240, 240] },
  { name: "white", rgb: [255, 255, 255] },
];

/** The palette index of white, the colour of monochrome scenes. */
const WHITE = COLORS.findIndex((c) => c.name === "white");

/** The object sizes, in id order. */
export const SIZES: readonly ["small", "large"] = ["small", "large"];

/** The relation phrases of captions. */
export const RELATIONS: readonly string[] = ["above", "below", "to the left of", "to the right of"];

/**
 * Every word a mosaic caption can use (both sources), sorted: the vocabulary of a word tokenizer that
 * covers every mosaic data set.
 */
export const MOSAIC_WORDS: readonly string[] = [
  ...new Set([
    "a",
    "and",
    ...RELATIONS.flatMap((r) => r.split(" ")),
    ...SIZES,
    ...COLORS.map((c) => c.name),
    ...DIGIT_CLASSES,
    ...FASHION_CLASSES.flatMap((c) => c.split(" ")),
  ]),
].sort();

/** Options of a mosaic data set. */
export interface MosaicOptions {
  /** Side of the square canvas in pixels. @default 64 */
  canvas?: number;
  /** Fewest objects in a scene. @default 1 */
  minObjects?: number;
  /** Most objects in a scene (a crowded canvas may fit fewer). @default 4 */
  maxObjects?: number;
  /** Seed of the scenes: scene i depends only on (seed, i). @default 0 */
  seed?: number;
  /** Longer side of a `small` object as a fraction of the canvas. @default 0.25 */
  smallSize?: number;
  /** Longer side of a `large` object as a fraction of the canvas. @default 0.45 */
  largeSize?: number;
  /**
   * Objects are placed at multiples of this many canvas pixels. A ViT sees a glyph differently in each of
   * its alignments to the patch grid; a grid of one patch shows each glyph in one, which a tiny model
   * learns far sooner. @default 1 (anywhere)
   */
  grid?: number;
  /**
   * Draw every object white and leave colour out of the captions ("a small seven above a large two"): then
   * only the digits and sizes tell scenes and regions apart. @default false
   */
  monochrome?: boolean;
  /**
   * Captions: `"full"` always says `<size> <colour> <class>`; `"mixed"` also gives each region its
   * {@link Region.phrases} (the class alone, colour and class, size and class, all three) and the scene its
   * `captions` made of them, of which a loader uses one level a batch, as the paper's VESL noun phrases vary in
   * detail. In a batch of bare class names colours cannot tell objects apart, so both towers must learn the
   * digits; that is what lets a model recognise a region by its class name. @default "full"
   */
  regionText?: "full" | "mixed";
}

/** One object of a scene. */
export interface MosaicObject {
  /** Class name (`"seven"`, `"ankle boot"`). */
  label: string;
  /** Class id in the source. */
  classId: number;
  /** Colour name. */
  color: string;
  /** `"small"` or `"large"`. */
  size: "small" | "large";
  /** Tight box `[x0, y0, x1, y1]` in canvas pixels around the glyph's non-zero pixels (x1, y1 exclusive). */
  box: [number, number, number, number];
  /** Index of the glyph in its source split. */
  glyph: number;
  /** The region caption: `"<size> <color> <label>"`. */
  text: string;
}

/**
 * A generated scene: a {@link Sample} (image, caption, regions) plus the objects that made it.
 *
 * @example
 * ```ts
 * import { MosaicDataset } from "./mosaic.ts";
 * const set = await MosaicDataset.open("digits", "test", 10);
 * const scene = set.get(0);
 * if (scene.regions.length !== scene.objects.length) throw new Error("one region an object");
 * ```
 */
export interface Scene extends Sample {
  /** The objects in generation order (the caption names them in this order). */
  objects: MosaicObject[];
}

/** Pixels at or below this grey level (after resizing) are dropped, so boxes hug the visible stroke. */
const INK_THRESHOLD = 48;

/** Tight crop of source glyph pixels above a low threshold: [x0, y0, x1, y1], exclusive ends. */
function cropOf(glyphs: GlyphSet, g: number, cache: Int16Array): [number, number, number, number] {
  if (cache[g * 4 + 2] === 0) {
    const { rows, cols, images } = glyphs;
    const base = g * rows * cols;
    let x0 = cols, y0 = rows, x1 = 0, y1 = 0;
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < cols; x++) {
        if (images[base + y * cols + x] > 16) {
          if (x < x0) x0 = x;
          if (x >= x1) x1 = x + 1;
          if (y < y0) y0 = y;
          if (y >= y1) y1 = y + 1;
        }
      }
    }
    if (x1 === 0) [x0, y0, x1, y1] = [0, 0, cols, rows]; // an empty glyph: keep the whole square
    cache.set([x0, y0, x1, y1], g * 4);
  }
  return [cache[g * 4], cache[g * 4 + 1], cache[g * 4 + 2], cache[g * 4 + 3]];
}

function relation(a: Pick<MosaicObject, "box">, b: Pick<MosaicObject, "box">): string {
  const dx = (a.box[0] + a.box[2]) / 2 - (b.box[0] + b.box[2]) / 2;
  const dy = (a.box[1] + a.box[3]) / 2 - (b.box[1] + b.box[3]) / 2;
  if (Math.abs(dy) >= Math.abs(dx)) return dy < 0 ? "above" : "below";
  return dx < 0 ? "to the left of" : "to the right of";
}

/**
 * The image caption of a list of objects: pairs in order joined by "and", each pair with the relation of
 * its first object to its second: "a small red seven above a large blue two and a small green three".
 *
 * @param objects The scene's objects.
 * @returns The caption.
 *
 * @example
 * ```ts
 * import { sceneCaption } from "./mosaic.ts";
 * const o = (text: string, y: number) => ({ text, box: [0, y, 10, y + 10] as [number, number, number, number] });
 * const c = sceneCaption([o("small red seven", 0), o("large blue two", 30)]);
 * if (c !== "a small red seven above a large blue two") throw new Error(c);
 * ```
 */
export function sceneCaption(
  objects: readonly Pick<MosaicObject, "text" | "box">[],
): string {
  const parts: string[] = [];
  for (let i = 0; i < objects.length; i += 2) {
    const a = objects[i], b = objects[i + 1];
    parts.push(
      b ? `a ${a.text} ${relation(a as MosaicObject, b as MosaicObject)} a ${b.text}` : `a ${a.text}`,
    );
  }
  return parts.join(" and ");
}

/**
 * A data set of `count` mosaic scenes over one glyph source; scenes are generated on demand from
 * `(seed, index)`, thousands a second.
 *
 * @example
 * ```ts
 * import { MosaicDataset } from "./mosaic.ts";
 * const set = await MosaicDataset.open("digits", "train", 100, { seed: 1, canvas: 32 });
 * const a = set.get(5), b = set.get(5);
 * if (a.caption !== b.caption || a.image.width !== 32) throw new Error("deterministic");
 * ```
 */
export class MosaicDataset implements Dataset {
  /** Number of scenes. */
  readonly length: number;
  /** The glyph source. */
  readonly glyphs: GlyphSet;
  /** The options with defaults filled in. */
  readonly options: Required<MosaicOptions>;
  #crops: Int16Array;

  /**
   * Makes a data set over loaded glyphs.
   *
   * @param glyphs The glyph source (from `loadGlyphs`).
   * @param count Number of scenes.
   * @param options Canvas size, object counts, seed, object sizes.
   */
  constructor(glyphs: GlyphSet, count: number, options: MosaicOptions = {}) {
    if (!(Number.isInteger(count) && count >= 0)) {
      throw new RangeError(`MosaicDataset: count must be an integer >= 0: got ${count}`);
    }
    const o: Required<MosaicOptions> = {
      canvas: options.canvas ?? 64,
      minObjects: options.minObjects ?? 1,
      maxObjects: options.maxObjects ?? 4,
      seed: options.seed ?? 0,
      smallSize: options.smallSize ?? 0.25,
      largeSize: options.largeSize ?? 0.45,
      grid: options.grid ?? 1,
      monochrome: options.monochrome ?? false,
      regionText: options.regionText ?? "full",
    };
    if (!(Number.isInteger(o.canvas) && o.canvas >= 8)) {
      throw new RangeError(`MosaicDataset: canvas must be an integer >= 8: got ${o.canvas}`);
    }
    if (!(o.minObjects >= 1 && o.maxObjects >= o.minObjects && o.maxObjects <= COLORS.length)) {
      throw new RangeError(
        `MosaicDataset: wanted 1 <= minObjects <= maxObjects <= ${COLORS.length}: got ${o.minObjects} and ${o.maxObjects}`,
      );
    }
    if (!(o.smallSize > 0 && o.largeSize <= 1 && o.smallSize <= o.largeSize)) {
      throw new RangeError(
        `MosaicDataset: wanted 0 < smallSize <= largeSize <= 1: got ${o.smallSize} and ${o.largeSize}`,
      );
    }
    if (!(Number.isInteger(o.grid) && o.grid >= 1 && o.grid <= o.canvas)) {
      throw new RangeError(`MosaicDataset: grid must be an integer in [1, canvas]: got ${o.grid}`);
    }
    this.length = count;
    this.glyphs = glyphs;
    this.options = o;
    this.#crops = new Int16Array(glyphs.count * 4);
  }

  /**
   * Loads a glyph source and makes a data set over it.
   *
   * @param set `"digits"` or `"fashion"`.
   * @param split `"train"` (source train images) or `"test"` (source test images).
   * @param count Number of scenes.
   * @param options Canvas size, object counts, seed, object sizes.
   * @returns The data set.
   */
  static async open(
    set: GlyphSetName,
    split: Split,
    count: number,
    options: MosaicOptions = {},
  ): Promise<MosaicDataset> {
    return new MosaicDataset(await loadGlyphs(set, split), count, options);
  }

  /**
   * Generates scene `index`.
   *
   * @param index 0 <= index < length.
   * @returns The scene.
   */
  get(index: number): Scene {
    if (!(Number.isInteger(index) && index >= 0 && index < this.length)) {
      throw new RangeError(`MosaicDataset.get: index ${index} out of range [0, ${this.length})`);
    }
    const scene = this.#generate(new Rng(mixSeed(this.options.seed, index)));
    if (this.options.regionText === "mixed") {
      const levels = scene.objects.map((o) =>
        this.options.monochrome
          ? [o.label, o.text]
          : [o.label, `${o.color} ${o.label}`, `${o.size} ${o.label}`, o.text]
      );
      scene.regions = scene.objects.map((o, k) => ({
        box: [...o.box],
        text: o.text,
        label: o.label,
        phrases: levels[k],
      }));
      scene.captions = levels[0].map((_, level) =>
        sceneCaption(scene.objects.map((o, k) => ({ box: o.box, text: levels[k][level] })))
      );
    }
    return scene;
  }

  /** Generates a scene from a generator's next numbers. */
  #generate(rng: Rng): Scene {
    const { canvas: C, minObjects, maxObjects, smallSize, largeSize, grid, monochrome } = this.options;
    const g = this.glyphs;
    const data = new Uint8Array(C * C * 3);
    const objects: MosaicObject[] = [];
    const texts = new Set<string>();
    const n = minObjects + rng.int(maxObjects - minObjects + 1);
    // (A scene that placed nothing, from blank source images, keeps drawing objects for a while.)
    for (let k = 0; k < n || (objects.length === 0 && k < n + 16); k++) {
      const classId = rng.int(g.classes.length);
      const members = g.byClass[classId];
      if (members.length === 0) continue;
      const glyph = members[rng.int(members.length)];
      const size = SIZES[rng.int(2)];
      let color = rng.int(COLORS.length);
      const label = g.classes[classId];
      let text: string;
      if (monochrome) {
        color = WHITE;
        text = `${size} ${label}`;
        if (texts.has(text)) continue; // region captions are unique within a scene
      } else {
        // Region captions are unique within a scene: a repeated description takes the next colour.
        while (texts.has(`${size} ${COLORS[color].name} ${label}`)) color = (color + 1) % COLORS.length;
        text = `${size} ${COLORS[color].name} ${label}`;
      }

      // Crop the glyph to its ink, scale its longer side to the object size, drop faint pixels.
      const [cx0, cy0, cx1, cy1] = cropOf(g, glyph, this.#crops);
      const cw = cx1 - cx0, ch = cy1 - cy0;
      const target = Math.max(2, Math.round((size === "large" ? largeSize : smallSize) * C));
      const f = target / Math.max(cw, ch);
      const dw = Math.min(C, Math.max(1, Math.round(cw * f)));
      const dh = Math.min(C, Math.max(1, Math.round(ch * f)));
      const crop = new Uint8Array(cw * ch);
      for (let y = 0; y < ch; y++) {
        const s = glyph * g.rows * g.cols + (y + cy0) * g.cols + cx0;
        crop.set(g.images.subarray(s, s + cw), y * cw);
      }
      const ink = resample(crop, cw, ch, dw, dh, 1);
      let bx0 = dw, by0 = dh, bx1 = 0, by1 = 0;
      for (let y = 0; y < dh; y++) {
        for (let x = 0; x < dw; x++) {
          const i = y * dw + x;
          if (ink[i] <= INK_THRESHOLD) ink[i] = 0;
          else {
            if (x < bx0) bx0 = x;
            if (x >= bx1) bx1 = x + 1;
            if (y < by0) by0 = y;
            if (y >= by1) by1 = y + 1;
          }
        }
      }
      if (bx1 === 0) continue; // nothing left above the threshold (a blank source image)

      // Place it where its box keeps a one-pixel gap from every other box; give up after a few tries.
      let placed: [number, number, number, number] | null = null;
      let ox = 0, oy = 0;
      for (let t = 0; t < 24 && !placed; t++) {
        ox = grid * rng.int(Math.floor((C - dw) / grid) + 1);
        oy = grid * rng.int(Math.floor((C - dh) / grid) + 1);
        const box: [number, number, number, number] = [ox + bx0, oy + by0, ox + bx1, oy + by1];
        if (
          objects.every((o) =>
            box[2] < o.box[0] || o.box[2] < box[0] || box[3] < o.box[1] || o.box[3] < box[1]
          )
        ) {
          placed = box;
        }
      }
      if (!placed) continue;

      const [r, gr, b] = COLORS[color].rgb;
      for (let y = by0; y < by1; y++) {
        for (let x = bx0; x < bx1; x++) {
          const v = ink[y * dw + x];
          if (v === 0) continue;
          const o = ((oy + y) * C + ox + x) * 3;
          // Every palette colour has a channel >= 145, so v > 48 never tints to black.
          data[o] = (v * r + 127) / 255;
          data[o + 1] = (v * gr + 127) / 255;
          data[o + 2] = (v * b + 127) / 255;
        }
      }
      texts.add(text);
      objects.push({ label, classId, color: COLORS[color].name, size, box: placed, glyph, text });
    }
    const regions: Region[] = objects.map((o) => ({ box: [...o.box], text: o.text, label: o.label }));
    return { image: { width: C, height: C, data }, caption: sceneCaption(objects), regions, objects };
  }
}
