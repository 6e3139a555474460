/**
 * 8-bit RGB images: PNG (`fast-png`) and JPEG (`@jsquash/jpeg`, WebAssembly) decoding and encoding,
 * reading an image's size from its header, and an antialiased bilinear resize.
 *
 * The JPEG codec's WebAssembly is compiled from the bytes shipped in the npm package (read from Deno's npm
 * cache), so nothing is fetched over the network; this needs read permission on that cache (`-A` or
 * `--allow-read`).
 * @module
 */

import { createRequire } from "node:module";
import { convertIndexedToRgb, decode as pngDecode, encode as pngEncode } from "fast-png";
import jpegDecode, { init as jpegDecodeInit } from "@jsquash/jpeg/decode.js";
import jpegEncode, { init as jpegEncodeInit } from "@jsquash/jpeg/encode.js";

/**
 * An 8-bit RGB image, pixels interleaved row by row: `data[(y * width + x) * 3 + c]`.
 *
 * @example
 * ```ts
 * import type { RgbImage } from "./image.ts";
 * const img: RgbImage = { width: 2, height: 1, data: new Uint8Array([255, 0, 0, 0, 0, 255]) };
 * if (img.data.length !== img.width * img.height * 3) throw new Error("3 bytes a pixel");
 * ```
 */
export interface RgbImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** `width * height * 3` bytes, RGB interleaved. */
  data: Uint8Array;
}

/**
 * Makes a black RGB image.
 *
 * @param width Width in pixels.
 * @param height Height in pixels.
 * @returns A zero-filled image.
 *
 * @example
 * ```ts
 * import { blankImage } from "./image.ts";
 * const img = blankImage(4, 3);
 * if (img.data.length !== 36) throw new Error("4 x 3 x 3 bytes");
 * ```
 */
export function blankImage(width: number, height: number): RgbImage {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width >= 0 && height >= 0)) {
    throw new RangeError(
      `blankImage: width and height must be non-negative integers: got ${width}x${height}`,
    );
  }
  return { width, height, data: new Uint8Array(width * height * 3) };
}

/** The kinds of image file this module reads. */
export type ImageFormat = "png" | "jpeg";

/**
 * Tells a PNG from a JPEG by its first bytes.
 *
 * @param bytes The file's bytes.
 * @returns `"png"`, `"jpeg"`, or `null` when it is neither.
 *
 * @example
 * ```ts
 * import { imageFormat } from "./image.ts";
 * if (imageFormat(new Uint8Array([0xff, 0xd8, 0xff, 0xe0])) !== "jpeg") throw new Error("JPEG magic");
 * ```
 */
export function imageFormat(bytes: Uint8Array): ImageFormat | null {
  if (
    bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47 &&
    bytes[4] === 0x0d && bytes[5] === 0x0a && bytes[6] === 0x1a && bytes[7] === 0x0a
  ) return "png";
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  return null;
}

function magicOf(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 4), (b) => "0x" + b.toString(16).padStart(2, "0")).join(" ");
}

/**
 * Reads an image's width and height from its PNG (IHDR) or JPEG (SOF marker) header without decoding
 * the pixels.
 *
 * @param bytes The file's bytes.
 * @returns `{format, width, height}`.
 * @throws {SyntaxError} When the bytes are not a PNG or JPEG, or the header is cut short.
 *
 * @example
 * ```ts
 * import { blankImage, encodePng, imageSize } from "./image.ts";
 * const size = imageSize(encodePng(blankImage(5, 3)));
 * if (size.width !== 5 || size.height !== 3) throw new Error("header size");
 * ```
 */
export function imageSize(bytes: Uint8Array): { format: ImageFormat; width: number; height: number } {
  const format = imageFormat(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (format === "png") {
    // 8-byte signature, then the IHDR chunk: length (4), "IHDR" (4), width (4), height (4).
    if (bytes.length < 24 || String.fromCharCode(...bytes.subarray(12, 16)) !== "IHDR") {
      throw new SyntaxError(
        `imageSize: PNG header is cut short or has no IHDR chunk (${bytes.length} bytes)`,
      );
    }
    return { format, width: view.getUint32(16), height: view.getUint32(20) };
  }
  if (format === "jpeg") {
    let p = 2;
    while (p + 4 <= bytes.length) {
      if (bytes[p] !== 0xff) {
        throw new SyntaxError(
          `imageSize: JPEG marker expected at byte ${p}, found 0x${bytes[p].toString(16)}`,
        );
      }
      const marker = bytes[p + 1];
      if (marker === 0xff) { // fill byte
        p++;
        continue;
      }
      if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
        p += 2;
        continue;
      }
      const length = view.getUint16(p + 2);
      // SOF0..SOF15 carry the frame size, except DHT (c4), JPG (c8) and DAC (cc).
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        if (p + 9 > bytes.length) break;
        return { format, height: view.getUint16(p + 5), width: view.getUint16(p + 7) };
      }
      if (marker === 0xd9 || marker === 0xda) break; // end of image or start of scan before any frame
      p += 2 + length;
    }
    throw new SyntaxError(`imageSize: JPEG has no frame header (SOF marker) in its ${bytes.length} bytes`);
  }
  throw new SyntaxError(`imageSize: not a PNG or JPEG file: starts with ${magicOf(bytes)}`);
}

/**
 * Decodes a PNG of any colour type (grey, grey+alpha, RGB, RGBA, palette) and depth to 8-bit RGB.
 * Alpha is dropped (colours are kept as stored, not composited).
 *
 * @param bytes The PNG file's bytes.
 * @returns The image.
 * @throws {SyntaxError} When the bytes are not a decodable PNG.
 *
 * @example
 * ```ts
 * import { decodePng, encodePng } from "./image.ts";
 * const img = { width: 1, height: 1, data: new Uint8Array([1, 2, 3]) };
 * if (decodePng(encodePng(img)).data[2] !== 3) throw new Error("round trip");
 * ```
 */
export function decodePng(bytes: Uint8Array): RgbImage {
  // deno-lint-ignore no-explicit-any
  let png: any;
  try {
    png = pngDecode(bytes);
  } catch (e) {
    throw new SyntaxError(`decodePng: not a decodable PNG: ${(e as Error).message}`);
  }
  const { width, height } = png;
  let channels: number = png.channels;
  let depth: number = png.depth;
  let src: ArrayLike<number> = png.data;
  if (png.palette) {
    src = convertIndexedToRgb(png);
    channels = png.palette[0].length;
    depth = 8;
  } else if (depth < 8) {
    // Grey at 1, 2 or 4 bits: rows are packed MSB first and byte aligned. Scale to 0..255.
    const packed = png.data as Uint8Array;
    const rowBytes = Math.ceil((width * depth * channels) / 8);
    const max = (1 << depth) - 1;
    const out = new Uint8Array(width * height * channels);
    for (let y = 0; y < height; y++) {
      for (let i = 0; i < width * channels; i++) {
        const bit = i * depth;
        const byte = packed[y * rowBytes + (bit >> 3)];
        const v = (byte >> (8 - depth - (bit & 7))) & max;
        out[y * width * channels + i] = Math.round((v * 255) / max);
      }
    }
    src = out;
    depth = 8;
  }
  const shift = depth === 16 ? 8 : 0;
  const data = new Uint8Array(width * height * 3);
  const n = width * height;
  if (src.length < n * channels) {
    throw new SyntaxError(
      `decodePng: pixel data too short: ${src.length} values for ${width}x${height}x${channels}`,
    );
  }
  if (channels >= 3) {
    for (let i = 0; i < n; i++) {
      data[i * 3] = src[i * channels] >> shift;
      data[i * 3 + 1] = src[i * channels + 1] >> shift;
      data[i * 3 + 2] = src[i * channels + 2] >> shift;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const v = src[i * channels] >> shift;
      data[i * 3] = v;
      data[i * 3 + 1] = v;
      data[i * 3 + 2] = v;
    }
  }
  return { width, height, data };
}

/**
 * Encodes an RGB image as an 8-bit RGB PNG.
 *
 * @param image The image.
 * @returns The PNG file's bytes.
 *
 * @example
 * ```ts
 * import { blankImage, encodePng, imageFormat } from "./image.ts";
 * if (imageFormat(encodePng(blankImage(2, 2))) !== "png") throw new Error("a PNG");
 * ```
 */
export function encodePng(image: RgbImage): Uint8Array {
  checkImage("encodePng", image);
  return pngEncode({ width: image.width, height: image.height, data: image.data, channels: 3, depth: 8 });
}

function checkImage(op: string, image: RgbImage): void {
  if (image.data.length !== image.width * image.height * 3) {
    throw new RangeError(
      `${op}: image data has ${image.data.length} bytes, wanted ${image.width}x${image.height}x3 = ${
        image.width * image.height * 3
      }`,
    );
  }
}

// ---- JPEG (WebAssembly) ----

let jpegMessages: string[] = [];
let decoderReady: Promise<void> | null = null;
let encoderReady: Promise<void> | null = null;

/** The wasm module of the package's codec, compiled from its bytes; null where the package path is unknown. */
async function codecModule(which: "dec" | "enc"): Promise<WebAssembly.Module | null> {
  let index: string;
  try {
    index = createRequire(import.meta.url).resolve("@jsquash/jpeg");
  } catch {
    return null; // not resolvable (e.g. imported from a remote URL): let the codec load its wasm itself
  }
  const dir = index.slice(0, index.lastIndexOf("/") + 1) || index.slice(0, index.lastIndexOf("\\") + 1);
  const bytes = await Deno.readFile(`${dir}codec/${which}/mozjpeg_${which}.wasm`);
  return await WebAssembly.compile(bytes);
}

const codecOptions = {
  print: () => {},
  printErr: (message: string) => {
    jpegMessages.push(message);
  },
};

/** The packages' `init(module?, overrides?)`: its .d.ts declares only the one-argument form. */
type CodecInit = (
  module?: WebAssembly.Module | Record<string, unknown>,
  overrides?: Record<string, unknown>,
) => Promise<void>;

function ensureDecoder(): Promise<void> {
  const init = jpegDecodeInit as CodecInit;
  decoderReady ??= codecModule("dec").then((mod) => mod ? init(mod, codecOptions) : init(codecOptions));
  return decoderReady;
}

function ensureEncoder(): Promise<void> {
  const init = jpegEncodeInit as CodecInit;
  encoderReady ??= codecModule("enc").then((mod) => mod ? init(mod, codecOptions) : init(codecOptions));
  return encoderReady;
}

function exactBuffer(bytes: Uint8Array): ArrayBuffer {
  return (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? bytes.buffer
    : bytes.slice().buffer) as ArrayBuffer;
}

/**
 * Decodes a JPEG to 8-bit RGB with mozjpeg (WebAssembly).
 *
 * @param bytes The JPEG file's bytes.
 * @returns The image.
 * @throws {SyntaxError} When the bytes are not a decodable JPEG; the message carries libjpeg's reason.
 *
 * @example
 * ```ts
 * import { decodeJpeg, encodeJpeg } from "./image.ts";
 * const img = { width: 8, height: 8, data: new Uint8Array(192).fill(200) };
 * const back = await decodeJpeg(await encodeJpeg(img));
 * if (back.width !== 8 || Math.abs(back.data[0] - 200) > 4) throw new Error("round trip");
 * ```
 */
export async function decodeJpeg(bytes: Uint8Array): Promise<RgbImage> {
  await ensureDecoder();
  jpegMessages = [];
  let rgba: { width: number; height: number; data: ArrayLike<number> };
  try {
    rgba = await jpegDecode(exactBuffer(bytes));
  } catch (e) {
    const why = jpegMessages.join("; ") || (e instanceof Error ? e.message : String(e));
    throw new SyntaxError(`decodeJpeg: not a decodable JPEG: ${why}`);
  }
  const n = rgba.width * rgba.height;
  const data = new Uint8Array(n * 3);
  const src = rgba.data;
  for (let i = 0; i < n; i++) {
    data[i * 3] = src[i * 4];
    data[i * 3 + 1] = src[i * 4 + 1];
    data[i * 3 + 2] = src[i * 4 + 2];
  }
  return { width: rgba.width, height: rgba.height, data };
}

/**
 * Encodes an RGB image as a baseline JPEG with mozjpeg (WebAssembly).
 *
 * @param image The image.
 * @param options `quality`: 0 to 100.
 * @returns The JPEG file's bytes.
 *
 * @example
 * ```ts
 * import { blankImage, encodeJpeg, imageFormat } from "./image.ts";
 * if (imageFormat(await encodeJpeg(blankImage(4, 4))) !== "jpeg") throw new Error("a JPEG");
 * ```
 */
export async function encodeJpeg(image: RgbImage, options: { quality?: number } = {}): Promise<Uint8Array> {
  checkImage("encodeJpeg", image);
  await ensureEncoder();
  const n = image.width * image.height;
  const rgba = new Uint8ClampedArray(n * 4);
  for (let i = 0; i < n; i++) {
    rgba[i * 4] = image.data[i * 3];
    rgba[i * 4 + 1] = image.data[i * 3 + 1];
    rgba[i * 4 + 2] = image.data[i * 3 + 2];
    rgba[i * 4 + 3] = 255;
  }
  const out = await jpegEncode(
    { data: rgba, width: image.width, height: image.height, colorSpace: "srgb" } as ImageData,
    { quality: options.quality ?? 90, baseline: true },
  );
  return new Uint8Array(out);
}

/**
 * Decodes a PNG or JPEG (told apart by their first bytes) to 8-bit RGB.
 *
 * @param bytes The file's bytes.
 * @returns The image.
 * @throws {SyntaxError} When the bytes are neither format or do not decode.
 *
 * @example
 * ```ts
 * import { blankImage, decodeImage, encodePng } from "./image.ts";
 * const img = await decodeImage(encodePng(blankImage(3, 2)));
 * if (img.width !== 3 || img.height !== 2) throw new Error("size");
 * ```
 */
export function decodeImage(bytes: Uint8Array): Promise<RgbImage> {
  const format = imageFormat(bytes);
  if (format === "png") {
    try {
      return Promise.resolve(decodePng(bytes));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  if (format === "jpeg") return decodeJpeg(bytes);
  return Promise.reject(
    new SyntaxError(`decodeImage: not a PNG or JPEG file: starts with ${magicOf(bytes)}`),
  );
}

// ---- resampling ----

/** Per output index: first source index and the normalised weights of the taps. */
interface Taps {
  start: Int32Array;
  count: Int32Array;
  weights: Float32Array;
  stride: number;
}

const tapsCache = new Map<number, Taps>();

/** {@link taps}, cached by size pair (scenes resample the same few sizes over and over). */
function cachedTaps(n: number, m: number): Taps {
  const key = n * 65536 + m;
  let t = tapsCache.get(key);
  if (!t) {
    if (tapsCache.size > 4096) tapsCache.clear();
    t = taps(n, m);
    tapsCache.set(key, t);
  }
  return t;
}

/**
 * Triangle-filter taps from a source axis of length `n` to `m` outputs (bilinear when upscaling, a
 * triangle of width `n/m` when downscaling, so a shrink averages instead of aliasing; as PIL's BILINEAR).
 */
function taps(n: number, m: number): Taps {
  const scale = n / m;
  const support = Math.max(1, scale);
  const stride = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(m);
  const count = new Int32Array(m);
  const weights = new Float32Array(m * stride);
  for (let o = 0; o < m; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(0, Math.floor(center - support));
    const hi = Math.min(n, Math.ceil(center + support));
    let total = 0;
    let k = 0;
    for (let i = lo; i < hi && k < stride; i++, k++) {
      const w = Math.max(0, 1 - Math.abs((i + 0.5 - center) / support));
      weights[o * stride + k] = w;
      total += w;
    }
    if (total === 0) { // cannot happen for n >= 1, but never divide by zero
      weights[o * stride] = 1;
      total = 1;
      k = Math.max(k, 1);
    }
    for (let j = 0; j < k; j++) weights[o * stride + j] /= total;
    start[o] = lo;
    count[o] = k;
  }
  return { start, count, weights, stride };
}

/**
 * Resamples interleaved 8-bit pixels with `channels` values each (1 or 3) to a new size with a separable
 * triangle filter (antialiased bilinear).
 *
 * @param src Source pixels, `sw * sh * channels` bytes.
 * @param sw Source width.
 * @param sh Source height.
 * @param dw Output width.
 * @param dh Output height.
 * @param channels Values per pixel.
 * @returns `dw * dh * channels` bytes.
 *
 * @example
 * ```ts
 * import { resample } from "./image.ts";
 * const up = resample(new Uint8Array([0, 200]), 2, 1, 4, 1, 1);
 * if (up[0] !== 0 || up[3] !== 200 || !(up[1] > 0 && up[1] < up[2])) throw new Error(`${up}`);
 * ```
 */
export function resample(
  src: Uint8Array,
  sw: number,
  sh: number,
  dw: number,
  dh: number,
  channels: number,
): Uint8Array {
  const out = new Uint8Array(dw * dh * channels);
  if (dw === 0 || dh === 0 || sw === 0 || sh === 0) return out;
  if (dw === sw && dh === sh) {
    out.set(src.subarray(0, out.length));
    return out;
  }
  const tx = cachedTaps(sw, dw);
  const ty = cachedTaps(sh, dh);
  // Horizontal pass into floats [sh, dw, channels], then vertical into bytes.
  const mid = new Float32Array(sh * dw * channels);
  for (let y = 0; y < sh; y++) {
    const row = y * sw * channels;
    for (let x = 0; x < dw; x++) {
      const s = tx.start[x], k = tx.count[x], wo = x * tx.stride;
      for (let c = 0; c < channels; c++) {
        let acc = 0;
        for (let j = 0; j < k; j++) acc += tx.weights[wo + j] * src[row + (s + j) * channels + c];
        mid[(y * dw + x) * channels + c] = acc;
      }
    }
  }
  const rowLen = dw * channels;
  for (let y = 0; y < dh; y++) {
    const s = ty.start[y], k = ty.count[y], wo = y * ty.stride;
    const orow = y * rowLen;
    for (let i = 0; i < rowLen; i++) {
      let acc = 0;
      for (let j = 0; j < k; j++) acc += ty.weights[wo + j] * mid[(s + j) * rowLen + i];
      out[orow + i] = acc <= 0 ? 0 : acc >= 255 ? 255 : Math.round(acc);
    }
  }
  return out;
}

/**
 * Resizes an RGB image to `width` x `height` (antialiased bilinear; aspect is not kept).
 *
 * @param image The source image.
 * @param width Output width in pixels.
 * @param height Output height in pixels.
 * @returns The resized image (the same pixels copied when the size is unchanged).
 *
 * @example
 * ```ts
 * import { resizeImage } from "./image.ts";
 * const img = { width: 2, height: 2, data: new Uint8Array(12).fill(100) };
 * const big = resizeImage(img, 5, 3);
 * if (big.width !== 5 || big.data[0] !== 100) throw new Error("flat stays flat");
 * ```
 */
export function resizeImage(image: RgbImage, width: number, height: number): RgbImage {
  checkImage("resizeImage", image);
  return { width, height, data: resample(image.data, image.width, image.height, width, height, 3) };
}
