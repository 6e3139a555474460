/**
 * Data sets: indexable collections of samples (a decoded image, its caption, its regions), and a plain
 * JSON description of one ({@link DataSpec}) that a loader worker can open on its own.
 * @module
 */

import { readCoco } from "./coco.ts";
import { decodeImage, type RgbImage } from "./image.ts";
import { imagePath, readRegionJsonl } from "./jsonl.ts";
import { MosaicDataset, type MosaicOptions } from "./mosaic.ts";
import {
  BadRecordError,
  type BadRecords,
  checkRecordBoxes,
  type Region,
  type RegionRecord,
} from "./records.ts";

/**
 * One training example: an image, its caption, and its regions (boxes in pixels of this image).
 *
 * @example
 * ```ts
 * import type { Sample } from "./dataset.ts";
 * const s: Sample = { image: { width: 1, height: 1, data: new Uint8Array(3) }, caption: "dark", regions: [] };
 * if (s.regions.length !== 0) throw new Error("no regions");
 * ```
 */
export interface Sample {
  /** The decoded image. */
  image: RgbImage;
  /** The image caption. */
  caption: string;
  /**
   * Optional: the caption at each detail level, coarsest first ("a seven above a two" … "a small red seven
   * above a large blue two"). A loader says it at the batch's detail level, as it does `Region.phrases`, so
   * that in a coarse batch the image-text loss too can only tell images apart by what the coarse words say.
   */
  captions?: string[];
  /** The regions, boxes in pixels of `image`. */
  regions: Region[];
}

/**
 * A data set the loader can draw from: a length and random access (synchronous for generated data,
 * asynchronous where images are read and decoded).
 *
 * @example
 * ```ts
 * import type { Dataset, Sample } from "./dataset.ts";
 * const one: Sample = { image: { width: 1, height: 1, data: new Uint8Array(3) }, caption: "x", regions: [] };
 * const set: Dataset = { length: 1, get: () => one };
 * if (set.get(0) !== one) throw new Error("random access");
 * ```
 */
export interface Dataset {
  /** Number of samples. */
  readonly length: number;
  /**
   * Sample `index`.
   *
   * @param index 0 <= index < length.
   * @returns The sample, or a promise of it.
   * @throws {BadRecordError} When the sample's image cannot be read or decoded.
   */
  get(index: number): Sample | Promise<Sample>;
}

/** A mosaic data set, generated in memory; the scene options are `MosaicOptions`'. */
export interface MosaicSpec extends MosaicOptions {
  /** Kind tag. */
  kind: "mosaic";
  /** `"digits"` (MNIST) or `"fashion"` (Fashion-MNIST). */
  set: "digits" | "fashion";
  /** `"train"` or `"test"` source images. */
  split: "train" | "test";
  /** Number of scenes. */
  count: number;
}

/** A region-text JSONL file. */
export interface JsonlSpec {
  /** Kind tag. */
  kind: "jsonl";
  /** Path of the file. */
  path: string;
  /** Throw at the first bad record. @default false */
  strict?: boolean;
  /** Image checks while reading. @default "header" */
  images?: "header" | "decode" | "none";
  /** Keep decoded images in memory after their first use. @default false */
  cacheImages?: boolean;
}

/** A COCO instances file (with its captions file when present). */
export interface CocoSpec {
  /** Kind tag. */
  kind: "coco";
  /** Path of `instances_<split>.json`. */
  path: string;
  /** Captions file, or false for none. @default captions_<split>.json beside it, when present */
  captions?: string | false;
  /** Image directory. @default COCO's layout */
  imageDir?: string;
  /** Throw at the first bad record. @default false */
  strict?: boolean;
  /** Image checks while reading. @default "header" */
  images?: "header" | "decode" | "none";
  /** Keep decoded images in memory after their first use. @default false */
  cacheImages?: boolean;
}

/**
 * A plain-JSON description of a data set (so a worker can open the same data).
 *
 * @example
 * ```ts
 * import type { DataSpec } from "./dataset.ts";
 * const spec: DataSpec = { kind: "mosaic", set: "digits", split: "train", count: 1000, seed: 0 };
 * if (JSON.parse(JSON.stringify(spec)).count !== 1000) throw new Error("plain JSON");
 * ```
 */
export type DataSpec = MosaicSpec | JsonlSpec | CocoSpec;

/**
 * Records on disk as a data set: `get` reads and decodes the image, checks the boxes against its decoded
 * size, and throws a {@link BadRecordError} (file, line, reason) when any of that fails.
 *
 * @example
 * ```ts
 * import { RecordDataset } from "./dataset.ts";
 * const set = new RecordDataset("d.jsonl", "/nonexistent", [{ image: "a.png", caption: "c", regions: [] }], [1]);
 * try {
 *   await set.get(0);
 *   throw new Error("unreachable");
 * } catch (e) {
 *   if (!(e as Error).message.startsWith("d.jsonl:1:")) throw e;
 * }
 * ```
 */
export class RecordDataset implements Dataset {
  #cache: (Sample | undefined)[] | null;

  /**
   * Makes a data set over records read from `file`.
   *
   * @param file The data file (for messages).
   * @param root The directory the image paths are relative to.
   * @param records The records.
   * @param lines Each record's line (or image index) in `file`.
   * @param options `cacheImages`: keep decoded samples in memory.
   */
  constructor(
    readonly file: string,
    readonly root: string,
    readonly records: readonly RegionRecord[],
    readonly lines: readonly number[],
    options: { cacheImages?: boolean } = {},
  ) {
    if (lines.length !== records.length) {
      throw new RangeError(`RecordDataset: ${records.length} records but ${lines.length} line numbers`);
    }
    this.#cache = options.cacheImages ? new Array(records.length) : null;
  }

  /** Number of records. */
  get length(): number {
    return this.records.length;
  }

  /**
   * Reads and decodes record `index`.
   *
   * @param index 0 <= index < length.
   * @returns The sample.
   */
  async get(index: number): Promise<Sample> {
    const hit = this.#cache?.[index];
    if (hit) return hit;
    const rec = this.records[index];
    if (!rec) {
      throw new RangeError(`RecordDataset.get: index ${index} out of range [0, ${this.records.length})`);
    }
    const where = { file: this.file, line: this.lines[index] };
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(imagePath(this.root, rec.image));
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound
        ? "not found"
        : `could not be read: ${(e as Error).message}`;
      throw new BadRecordError({ ...where, reason: `image "${rec.image}" ${why}` });
    }
    let image: RgbImage;
    try {
      image = await decodeImage(bytes);
    } catch (e) {
      throw new BadRecordError({
        ...where,
        reason: `image "${rec.image}" could not be decoded: ${(e as Error).message}`,
      });
    }
    const why = checkRecordBoxes(rec, image.width, image.height);
    if (why) throw new BadRecordError({ ...where, reason: why });
    const sample = { image, caption: rec.caption, captions: rec.captions, regions: rec.regions };
    if (this.#cache) this.#cache[index] = sample;
    return sample;
  }
}

/**
 * Opens the data set a spec describes: generates mosaic scenes, or reads a JSONL or COCO file (checking
 * its records under the spec's policy).
 *
 * @param spec The description.
 * @returns The data set and the records skipped while reading (none for a mosaic).
 * @throws {BadRecordError} With `strict`, at the first bad record.
 *
 * @example
 * ```ts
 * import { openDataset } from "./dataset.ts";
 * const { dataset } = await openDataset({ kind: "mosaic", set: "digits", split: "test", count: 8 });
 * if (dataset.length !== 8) throw new Error("8 scenes");
 * ```
 */
export async function openDataset(spec: DataSpec): Promise<{ dataset: Dataset; bad: BadRecords | null }> {
  switch (spec.kind) {
    case "mosaic": {
      const { set, split, count, kind: _, ...options } = spec;
      return { dataset: await MosaicDataset.open(set, split, count, options), bad: null };
    }
    case "jsonl": {
      const f = await readRegionJsonl(spec.path, spec);
      return { dataset: new RecordDataset(f.file, f.root, f.records, f.lines, spec), bad: f.bad };
    }
    case "coco": {
      const f = await readCoco(spec.path, spec);
      return { dataset: new RecordDataset(f.file, f.root, f.records, f.lines, spec), bad: f.bad };
    }
    default:
      throw new TypeError(
        `openDataset: unknown data kind ${
          JSON.stringify((spec as { kind: unknown }).kind)
        }: wanted "mosaic", "jsonl" or "coco"`,
      );
  }
}
