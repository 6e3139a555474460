/**
 * COCO detection annotations (`instances_*.json`, plus `captions_*.json` when present) read into
 * region-text records: one record an image, one region a (non-crowd) annotation whose text and label are
 * the category name, the image caption the first caption of the image (or, with no captions file, one made
 * from the category names: "a photo of a dog and a person"). Also writes records back as COCO JSON.
 * @module
 */

import { exists } from "../io/files.ts";
import { basename, dirname, join } from "node:path";
import { checkRecordImage } from "./jsonl.ts";
import { BadRecords, checkBox, type Region, type RegionRecord } from "./records.ts";

/** Options of {@link readCoco}. */
export interface ReadCocoOptions {
  /**
   * The captions file; `false` for none. By default `captions_<split>.json` beside the instances file,
   * when it exists.
   */
  captions?: string | false;
  /**
   * The directory holding the images. By default COCO's layout: `<dir>/../<split>` for
   * `<dir>/instances_<split>.json` (then `<dir>/<split>`, then `<dir>`), the first that exists.
   */
  imageDir?: string;
  /** Keep `iscrowd` annotations (boxes around groups of objects) as regions. @default false */
  includeCrowd?: boolean;
  /** Throw a `BadRecordError` at the first bad record instead of skipping it. @default false */
  strict?: boolean;
  /** How much of each image to check on disk (see `ReadJsonlOptions.images`). @default "header" */
  images?: "header" | "decode" | "none";
}

/** A COCO file read into records (the same shape as a region-text file). */
export interface CocoFile {
  /** The instances file. */
  file: string;
  /** The image directory. */
  root: string;
  /** The good records, in the order of the `images` array. */
  records: RegionRecord[];
  /** For each record, its 1-based index in the `images` array. */
  lines: number[];
  /** Skipped images and annotations. */
  bad: BadRecords;
  /** The category names by id. */
  categories: Map<number, string>;
}

interface CocoImage {
  id: number;
  file_name: string;
  width: number;
  height: number;
}

interface CocoAnnotation {
  id?: number;
  image_id: number;
  bbox?: number[];
  category_id?: number;
  iscrowd?: number;
  caption?: string;
}

/** The JSON of COCO instances and captions files. */
export interface CocoJson {
  /** Image entries. */
  images: { id: number; file_name: string; width: number; height: number }[];
  /** Box annotations (instances) or captions. */
  annotations: {
    id: number;
    image_id: number;
    bbox?: [number, number, number, number];
    area?: number;
    category_id?: number;
    iscrowd?: number;
    caption?: string;
  }[];
  /** Categories (instances files only). */
  categories?: { id: number; name: string; supercategory?: string }[];
}

/**
 * Turns COCO instances (and captions) JSON into records, checking boxes against the image sizes in the
 * JSON. Image files are not touched.
 *
 * @param instances The parsed instances JSON.
 * @param captions The parsed captions JSON, or null.
 * @param file The instances file name used in messages.
 * @param options `strict`, `includeCrowd`.
 * @returns Records, their image indices, bad records and categories.
 *
 * @example
 * ```ts
 * import { parseCoco } from "./coco.ts";
 * const coco = {
 *   images: [{ id: 7, file_name: "7.jpg", width: 100, height: 80 }],
 *   annotations: [{ id: 1, image_id: 7, bbox: [10, 10, 20, 30], category_id: 3, iscrowd: 0 }],
 *   categories: [{ id: 3, name: "cat" }],
 * };
 * const { records } = parseCoco(coco, null, "instances_x.json");
 * if (records[0].regions[0].box[3] !== 40 || records[0].caption !== "a photo of a cat") throw new Error("read");
 * ```
 */
export function parseCoco(
  instances: unknown,
  captions: unknown,
  file: string,
  options: { strict?: boolean; includeCrowd?: boolean } = {},
): Omit<CocoFile, "root" | "file"> {
  const bad = new BadRecords(options.strict ?? false);
  const inst = instances as Partial<CocoJson>;
  if (
    typeof inst !== "object" || inst === null || !Array.isArray(inst.images) ||
    !Array.isArray(inst.annotations)
  ) {
    throw new SyntaxError(
      `${file}: not a COCO instances file: wanted an object with "images" and "annotations" arrays`,
    );
  }
  const categories = new Map<number, string>();
  for (const c of inst.categories ?? []) categories.set(c.id, c.name);

  const byImage = new Map<number, CocoAnnotation[]>();
  for (const a of inst.annotations as CocoAnnotation[]) {
    let list = byImage.get(a.image_id);
    if (!list) byImage.set(a.image_id, list = []);
    list.push(a);
  }
  const captionsBy = new Map<number, string[]>();
  const caps = captions as Partial<CocoJson> | null;
  if (caps) {
    if (!Array.isArray(caps.annotations)) {
      throw new SyntaxError(`captions file: wanted an "annotations" array`);
    }
    for (const a of caps.annotations) {
      if (typeof a.caption !== "string" || a.caption.trim() === "") continue;
      let list = captionsBy.get(a.image_id);
      if (!list) captionsBy.set(a.image_id, list = []);
      list.push(a.caption.trim());
    }
  }

  const records: RegionRecord[] = [];
  const lines: number[] = [];
  const images = inst.images as CocoImage[];
  for (let i = 0; i < images.length; i++) {
    const img = images[i];
    const line = i + 1;
    if (typeof img?.file_name !== "string" || !(img.width > 0) || !(img.height > 0)) {
      bad.add({
        file,
        line,
        reason: `image entry needs "file_name", "width" > 0 and "height" > 0: got ${JSON.stringify(img)}`,
      });
      continue;
    }
    const regions: Region[] = [];
    for (const a of byImage.get(img.id) ?? []) {
      if (a.iscrowd && !options.includeCrowd) continue;
      const name = categories.get(a.category_id ?? -1);
      if (name === undefined || name.trim() === "") {
        bad.add({
          file,
          line,
          reason: `annotation ${a.id} of "${img.file_name}": unknown category ${a.category_id} or empty name`,
        });
        continue;
      }
      const b = a.bbox;
      if (!Array.isArray(b) || b.length !== 4) {
        bad.add({
          file,
          line,
          reason: `annotation ${a.id} of "${img.file_name}": bbox must be [x, y, w, h]: got ${
            JSON.stringify(b)
          }`,
        });
        continue;
      }
      // COCO boxes are floats that can stray past the border by rounding: clamp up to one pixel.
      const clamp = (v: number, hi: number) => (v < 0 && v > -1 ? 0 : v > hi && v < hi + 1 ? hi : v);
      const box: [number, number, number, number] = [
        clamp(b[0], img.width),
        clamp(b[1], img.height),
        clamp(b[0] + b[2], img.width),
        clamp(b[1] + b[3], img.height),
      ];
      const why = checkBox(box, img.width, img.height);
      if (why) {
        bad.add({ file, line, reason: `annotation ${a.id} of "${img.file_name}": ${why}` });
        continue;
      }
      regions.push({ box, text: name, label: name });
    }
    const caption = captionsBy.get(img.id)?.[0] ?? categoryCaption(regions);
    if (caption === "") {
      bad.add({ file, line, reason: `image "${img.file_name}" has no caption and no regions` });
      continue;
    }
    records.push({ image: img.file_name, caption, regions });
    lines.push(line);
  }
  return { records, lines, bad, categories };
}

/** "a photo of a cat, a dog and a person" from the distinct region labels; "" when there are none. */
function categoryCaption(regions: Region[]): string {
  const names = [...new Set(regions.map((r) => r.text))];
  if (names.length === 0) return "";
  const items = names.map((n) => `a ${n}`);
  const list = items.length === 1
    ? items[0]
    : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
  return `a photo of ${list}`;
}

/**
 * Reads a COCO instances file (and its captions file) into region-text records and checks the images.
 *
 * @param file Path of `instances_<split>.json`.
 * @param options Captions file, image directory, strictness, image checks.
 * @returns The records with the image directory they are relative to.
 * @throws {BadRecordError} In strict mode, at the first bad record.
 *
 * @example
 * ```ts
 * import { readCoco } from "./coco.ts";
 * const dir = await Deno.makeTempDir();
 * const coco = { images: [{ id: 1, file_name: "1.jpg", width: 10, height: 10 }], annotations: [], categories: [] };
 * await Deno.writeTextFile(`${dir}/instances_x.json`, JSON.stringify(coco));
 * const set = await readCoco(`${dir}/instances_x.json`, { images: "none" });
 * if (set.records.length !== 0 || set.bad.count !== 1) throw new Error("no caption, no regions: skipped");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readCoco(file: string, options: ReadCocoOptions = {}): Promise<CocoFile> {
  const dir = dirname(file);
  const split = basename(file).match(/^instances_(.+)\.json$/)?.[1];
  let captionsFile = options.captions;
  if (captionsFile === undefined && split) {
    const guess = join(dir, `captions_${split}.json`);
    captionsFile = (await exists(guess)) ? guess : false;
  }
  const instances = JSON.parse(await Deno.readTextFile(file));
  const captions = captionsFile ? JSON.parse(await Deno.readTextFile(captionsFile)) : null;
  const parsed = parseCoco(instances, captions, file, options);

  let root = options.imageDir;
  if (root === undefined) {
    const candidates = split ? [join(dir, "..", split), join(dir, split), dir] : [dir];
    root = candidates[candidates.length - 1];
    for (const c of candidates) {
      if (await exists(c)) {
        root = c;
        break;
      }
    }
  }
  const check = options.images ?? "header";
  if (check === "none") return { file, root, ...parsed };
  const records: RegionRecord[] = [];
  const lines: number[] = [];
  for (let i = 0; i < parsed.records.length; i++) {
    const why = await checkRecordImage(root, parsed.records[i], check === "decode");
    if (why) {
      parsed.bad.add({ file, line: parsed.lines[i], reason: why });
      continue;
    }
    records.push(parsed.records[i]);
    lines.push(parsed.lines[i]);
  }
  return { file, root, records, lines, bad: parsed.bad, categories: parsed.categories };
}

/**
 * Converts records to COCO instances and captions JSON. Each region becomes an annotation whose category
 * is its `label` (or its text when it has none); categories are numbered from 1 in sorted order.
 *
 * @param records The records.
 * @param sizes The width and height of each record's image.
 * @returns `{instances, captions}` ready for `JSON.stringify`.
 *
 * @example
 * ```ts
 * import { toCoco } from "./coco.ts";
 * const { instances } = toCoco(
 *   [{ image: "a.png", caption: "a cat", regions: [{ box: [1, 2, 5, 8], text: "cat" }] }],
 *   [{ width: 10, height: 10 }],
 * );
 * if (instances.annotations[0].bbox?.join() !== "1,2,4,6") throw new Error("xywh");
 * ```
 */
export function toCoco(
  records: readonly RegionRecord[],
  sizes: readonly { width: number; height: number }[],
): { instances: CocoJson; captions: CocoJson } {
  if (sizes.length !== records.length) {
    throw new RangeError(`toCoco: ${records.length} records but ${sizes.length} image sizes`);
  }
  const names = [...new Set(records.flatMap((r) => r.regions.map((g) => g.label ?? g.text)))].sort();
  const catId = new Map(names.map((n, i) => [n, i + 1]));
  const images = records.map((r, i) => ({ id: i + 1, file_name: r.image, ...sizes[i] }));
  const annotations: CocoJson["annotations"] = [];
  const captionAnns: CocoJson["annotations"] = [];
  records.forEach((r, i) => {
    for (const g of r.regions) {
      const [x0, y0, x1, y1] = g.box;
      annotations.push({
        id: annotations.length + 1,
        image_id: i + 1,
        bbox: [x0, y0, x1 - x0, y1 - y0],
        area: (x1 - x0) * (y1 - y0),
        category_id: catId.get(g.label ?? g.text)!,
        iscrowd: 0,
      });
    }
    captionAnns.push({ id: i + 1, image_id: i + 1, caption: r.caption });
  });
  const categories = names.map((name, i) => ({ id: i + 1, name }));
  return {
    instances: { images, annotations, categories },
    captions: { images, annotations: captionAnns },
  };
}
