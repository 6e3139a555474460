/**
 * Model input preprocessing: resize with padding to the model's square size (aspect kept), the boxes moved
 * with the image and normalised to [0, 1], and per-channel mean/std normalisation into f32 CHW.
 *
 * Padding (the paper's "resize with padding"): the image is scaled so its longer side is `size`, then
 * placed at the top-left corner (`pad: "corner"`, the default: padding goes to the bottom and right, so a
 * box keeps its origin and only scales) or in the middle (`pad: "center"`). Padded pixels take the colour
 * `padColor` (black by default, as the mosaic canvas) before normalisation.
 * @module
 */

import { resample, type RgbImage } from "./image.ts";

/** OpenAI CLIP's per-channel mean of [0, 1] pixel values (R, G, B). */
export const CLIP_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
/** OpenAI CLIP's per-channel standard deviation of [0, 1] pixel values (R, G, B). */
export const CLIP_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** Options of {@link preprocess}. */
export interface PreprocessOptions {
  /** Per-channel mean subtracted from [0, 1] pixel values. @default CLIP_MEAN */
  mean?: readonly number[];
  /** Per-channel standard deviation dividing the centred values. @default CLIP_STD */
  std?: readonly number[];
  /** Where the image goes in the square: `"corner"` pads bottom/right, `"center"` pads all sides. @default "corner" */
  pad?: "corner" | "center";
  /** RGB colour of the padding, 0..255. @default [0, 0, 0] */
  padColor?: readonly number[];
}

/** The geometry of a letterbox: `x' = x * scaleX + offsetX` in output pixels. */
export interface Letterbox {
  /** Output pixels per source pixel along x (the drawn width over the source width). */
  scaleX: number;
  /** Output pixels per source pixel along y. */
  scaleY: number;
  /** Left padding in output pixels. */
  offsetX: number;
  /** Top padding in output pixels. */
  offsetY: number;
  /** Width of the scaled image in output pixels. */
  width: number;
  /** Height of the scaled image in output pixels. */
  height: number;
}

/**
 * Computes where an image of `width` x `height` lands in a `size` x `size` square.
 *
 * @param width Source width in pixels.
 * @param height Source height in pixels.
 * @param size The square's side.
 * @param pad `"corner"` or `"center"`.
 * @returns The scale and offsets.
 *
 * @example
 * ```ts
 * import { letterbox } from "./preprocess.ts";
 * const lb = letterbox(200, 100, 64, "center");
 * if (lb.scaleX !== 0.32 || lb.offsetY !== 16 || lb.height !== 32) throw new Error("letterbox");
 * ```
 */
export function letterbox(width: number, height: number, size: number, pad: "corner" | "center"): Letterbox {
  if (!(width > 0 && height > 0)) {
    throw new RangeError(`letterbox: image size must be positive: got ${width}x${height}`);
  }
  const scale = size / Math.max(width, height);
  const w = Math.max(1, Math.min(size, Math.round(width * scale)));
  const h = Math.max(1, Math.min(size, Math.round(height * scale)));
  const offsetX = pad === "center" ? Math.floor((size - w) / 2) : 0;
  const offsetY = pad === "center" ? Math.floor((size - h) / 2) : 0;
  return { scaleX: w / width, scaleY: h / height, offsetX, offsetY, width: w, height: h };
}

/**
 * Maps pixel boxes `[x0, y0, x1, y1]` of the source image into the letterboxed square, normalised to
 * [0, 1] by the square's side (clamped into [0, 1]).
 *
 * @param boxes Boxes in source pixels.
 * @param lb The letterbox from {@link letterbox}.
 * @param size The square's side.
 * @returns Normalised boxes.
 *
 * @example
 * ```ts
 * import { letterbox, transformBoxes } from "./preprocess.ts";
 * const [b] = transformBoxes([[0, 0, 100, 50]], letterbox(200, 100, 64, "corner"), 64);
 * if (b[2] !== 0.5 || b[3] !== 0.25) throw new Error("half width, quarter height");
 * ```
 */
export function transformBoxes(
  boxes: readonly (readonly number[])[],
  lb: Letterbox,
  size: number,
): [number, number, number, number][] {
  const c = (v: number) => Math.min(1, Math.max(0, v));
  // The drawn size is rounded to whole pixels, so x and y use the exact ratios of the drawn size.
  const sx = lb.scaleX, sy = lb.scaleY;
  return boxes.map(([x0, y0, x1, y1]) => {
    return [
      c((x0 * sx + lb.offsetX) / size),
      c((y0 * sy + lb.offsetY) / size),
      c((x1 * sx + lb.offsetX) / size),
      c((y1 * sy + lb.offsetY) / size),
    ];
  });
}

const lutCache = new Map<string, Float32Array>();

/** Per channel, the normalised value of each byte: `lut[c * 256 + v] = (v / 255 - mean[c]) / std[c]`. */
function normLut(mean: readonly number[], std: readonly number[]): Float32Array {
  const key = `${mean.join(",")}|${std.join(",")}`;
  let lut = lutCache.get(key);
  if (!lut) {
    if (mean.length !== 3 || std.length !== 3) {
      throw new RangeError(`preprocess: mean and std need 3 values (R, G, B): got [${mean}] and [${std}]`);
    }
    if (std.some((s) => !(s > 0))) {
      throw new RangeError(`preprocess: std values must be positive: got [${std}]`);
    }
    lut = new Float32Array(768);
    for (let c = 0; c < 3; c++) {
      for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - mean[c]) / std[c];
    }
    lutCache.set(key, lut);
  }
  return lut;
}

/**
 * Letterboxes an RGB image into a `size` x `size` square and normalises it into f32 CHW, writing into
 * `out` at `offset` (so a batch can be filled in place).
 *
 * @param image The source image.
 * @param size The model's square image size.
 * @param out Destination, at least `offset + 3 * size * size` floats: [3, size, size] channel-major.
 * @param offset Where in `out` this image starts.
 * @param options Mean, std, padding.
 * @returns The letterbox used (to move the boxes with {@link transformBoxes}).
 *
 * @example
 * ```ts
 * import { preprocessInto } from "./preprocess.ts";
 * const img = { width: 2, height: 1, data: new Uint8Array([255, 255, 255, 255, 255, 255]) };
 * const out = new Float32Array(3 * 4 * 4);
 * preprocessInto(img, 4, out, 0, { mean: [0, 0, 0], std: [1, 1, 1] });
 * if (out[0] !== 1 || out[15] !== 0) throw new Error("top rows white, bottom rows padded black");
 * ```
 */
export function preprocessInto(
  image: RgbImage,
  size: number,
  out: Float32Array,
  offset: number,
  options: PreprocessOptions = {},
): Letterbox {
  const lut = normLut(options.mean ?? CLIP_MEAN, options.std ?? CLIP_STD);
  const lb = letterbox(image.width, image.height, size, options.pad ?? "corner");
  const padColor = options.padColor ?? [0, 0, 0];
  const plane = size * size;
  const px = lb.width === image.width && lb.height === image.height
    ? image.data
    : resample(image.data, image.width, image.height, lb.width, lb.height, 3);
  if (lb.width !== size || lb.height !== size) {
    for (let c = 0; c < 3; c++) {
      out.fill(lut[c * 256 + (padColor[c] & 255)], offset + c * plane, offset + (c + 1) * plane);
    }
  }
  const r = lut.subarray(0, 256), g = lut.subarray(256, 512), b = lut.subarray(512, 768);
  for (let y = 0; y < lb.height; y++) {
    const o = offset + (y + lb.offsetY) * size + lb.offsetX;
    const s = y * lb.width * 3;
    for (let x = 0; x < lb.width; x++) {
      out[o + x] = r[px[s + x * 3]];
      out[o + plane + x] = g[px[s + x * 3 + 1]];
      out[o + 2 * plane + x] = b[px[s + x * 3 + 2]];
    }
  }
  return lb;
}

/**
 * Letterboxes and normalises one image and moves its boxes with it.
 *
 * @param image The source image.
 * @param boxes Pixel boxes `[x0, y0, x1, y1]` in the source image.
 * @param size The model's square image size.
 * @param options Mean, std, padding.
 * @returns `pixels` f32 [3, size, size] and `boxes` normalised to [0, 1].
 *
 * @example
 * ```ts
 * import { preprocess } from "./preprocess.ts";
 * const img = { width: 8, height: 4, data: new Uint8Array(96) };
 * const { pixels, boxes } = preprocess(img, [[4, 0, 8, 4]], 16);
 * if (pixels.length !== 768 || boxes[0][0] !== 0.5 || boxes[0][3] !== 0.5) throw new Error("boxes");
 * ```
 */
export function preprocess(
  image: RgbImage,
  boxes: readonly (readonly number[])[],
  size: number,
  options: PreprocessOptions = {},
): { pixels: Float32Array; boxes: [number, number, number, number][]; letterbox: Letterbox } {
  const pixels = new Float32Array(3 * size * size);
  const lb = preprocessInto(image, size, pixels, 0, options);
  return { pixels, boxes: transformBoxes(boxes, lb, size), letterbox: lb };
}
