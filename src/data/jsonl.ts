/**
 * Region-text JSONL: one image a line,
 * `{"image": "path relative to the file", "caption": "...", "regions": [{"box": [x0, y0, x1, y1], "text": "...", "label": "optional"}]}`,
 * boxes in pixels of the image. Optional `"captions"` (of a record) and `"phrases"` (of a region) give the texts
 * at each detail level, coarsest first, of which the loader says one level a batch. Reading checks every line and skips (or, strict, throws at) bad records:
 * malformed JSON, missing fields, empty texts, inverted boxes, a missing or undecodable image, a box
 * outside the image.
 * @module
 */

import { dirname, isAbsolute, join } from "node:path";
import { decodeImage, imageSize } from "./image.ts";
import { BadRecords, checkRecordBoxes, parseRecord, type RegionRecord } from "./records.ts";

/** Options of {@link readRegionJsonl}. */
export interface ReadJsonlOptions {
  /** Throw a `BadRecordError` at the first bad record instead of skipping it. @default false */
  strict?: boolean;
  /**
   * How much of each image to check while reading: `"header"` reads the file's header (exists, is a PNG
   * or JPEG, its size bounds the boxes); `"decode"` decodes it fully; `"none"` checks only the JSON.
   * @default "header"
   */
  images?: "header" | "decode" | "none";
}

/** A region-text file read into records. */
export interface RegionFile {
  /** The data file as given. */
  file: string;
  /** The directory image paths are relative to. */
  root: string;
  /** The good records, in file order. */
  records: RegionRecord[];
  /** The 1-based line of each good record. */
  lines: number[];
  /** The skipped records. */
  bad: BadRecords;
}

/**
 * Parses the text of a region-text JSONL file, checking the JSON and the fields but not the images.
 *
 * @param text The file's contents.
 * @param file The file name used in messages.
 * @param options `strict`: throw at the first bad line.
 * @returns The good records with their lines, and the bad ones.
 *
 * @example
 * ```ts
 * import { parseRegionJsonl } from "./jsonl.ts";
 * const text = '{"image": "a.png", "caption": "a cat", "regions": []}\n{oops\n';
 * const { records, bad } = parseRegionJsonl(text, "d.jsonl");
 * if (records.length !== 1 || bad.list[0].line !== 2) throw new Error("line 2 is malformed");
 * ```
 */
export function parseRegionJsonl(
  text: string,
  file: string,
  options: { strict?: boolean } = {},
): { records: RegionRecord[]; lines: number[]; bad: BadRecords } {
  const bad = new BadRecords(options.strict ?? false);
  const records: RegionRecord[] = [];
  const lines: number[] = [];
  const rows = text.split("\n");
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i].trim();
    if (row === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(row);
    } catch (e) {
      bad.add({ file, line: i + 1, reason: `malformed JSON: ${(e as Error).message}` });
      continue;
    }
    const rec = parseRecord(value);
    if ("reason" in rec) {
      bad.add({ file, line: i + 1, reason: rec.reason });
      continue;
    }
    records.push(rec);
    lines.push(i + 1);
  }
  return { records, lines, bad };
}

/**
 * Resolves a record's image path against the data file's directory (absolute paths stay as they are).
 *
 * @param root The directory the paths are relative to.
 * @param image The record's image path.
 * @returns The path to open.
 *
 * @example
 * ```ts
 * import { imagePath } from "./jsonl.ts";
 * if (imagePath("data/set", "a.png") !== "data/set/a.png") throw new Error("joined");
 * ```
 */
export function imagePath(root: string, image: string): string {
  return isAbsolute(image) ? image : join(root, image);
}

/**
 * Checks a record's image on disk: it exists, is a PNG or JPEG (and, with `decode`, decodes), and every
 * box lies inside it.
 *
 * @param root The directory the image path is relative to.
 * @param record The record.
 * @param decode Decode the whole image rather than read its header.
 * @returns null when good, else the reason.
 *
 * @example
 * ```ts
 * import { checkRecordImage } from "./jsonl.ts";
 * const why = await checkRecordImage("/nonexistent", { image: "a.png", caption: "x", regions: [] });
 * if (!why?.includes("not found")) throw new Error("missing image");
 * ```
 */
export async function checkRecordImage(
  root: string,
  record: RegionRecord,
  decode = false,
): Promise<string | null> {
  const path = imagePath(root, record.image);
  let bytes: Uint8Array;
  try {
    bytes = decode ? await Deno.readFile(path) : await readHead(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return `image "${record.image}" not found at ${path}`;
    return `image "${record.image}" could not be read: ${(e as Error).message}`;
  }
  let width: number, height: number;
  try {
    ({ width, height } = decode ? await decodeImage(bytes) : imageSize(bytes));
  } catch (e) {
    return `image "${record.image}" could not be decoded: ${(e as Error).message}`;
  }
  return checkRecordBoxes(record, width, height);
}

/** The first 64 KiB of a file: enough for any PNG header and almost every JPEG's frame header. */
async function readHead(path: string): Promise<Uint8Array> {
  using f = await Deno.open(path, { read: true });
  const buf = new Uint8Array(65536);
  let n = 0;
  while (n < buf.length) {
    const got = await f.read(buf.subarray(n));
    if (got === null) break;
    n += got;
  }
  const head = buf.subarray(0, n);
  // A JPEG with a huge EXIF block may put its frame header later: fall back to the whole file.
  if (n === buf.length && head[0] === 0xff) {
    try {
      imageSize(head);
    } catch {
      return await Deno.readFile(path);
    }
  }
  return head;
}

/**
 * Reads a region-text JSONL file, checking each record and its image.
 *
 * @param file Path of the JSONL file.
 * @param options Strictness and image checks.
 * @returns The records, their lines, the image root and the bad records.
 * @throws {BadRecordError} In strict mode, at the first bad record.
 *
 * @example
 * ```ts
 * import { readRegionJsonl, writeRegionJsonl } from "./jsonl.ts";
 * const dir = await Deno.makeTempDir();
 * await writeRegionJsonl(`${dir}/d.jsonl`, [{ image: "gone.png", caption: "a cat", regions: [] }]);
 * const set = await readRegionJsonl(`${dir}/d.jsonl`);
 * if (set.records.length !== 0 || set.bad.count !== 1) throw new Error("missing image skipped");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readRegionJsonl(file: string, options: ReadJsonlOptions = {}): Promise<RegionFile> {
  const text = await Deno.readTextFile(file);
  const parsed = parseRegionJsonl(text, file, options);
  const root = dirname(file);
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
  return { file, root, records, lines, bad: parsed.bad };
}

/**
 * Formats records as region-text JSONL (keys in the order image, caption, captions, regions; box, text,
 * label, phrases; absent optional keys are left out).
 *
 * @param records The records.
 * @returns The file's text, one line a record, each ending in a newline.
 *
 * @example
 * ```ts
 * import { formatRegionJsonl } from "./jsonl.ts";
 * const s = formatRegionJsonl([{ image: "a.png", caption: "c", regions: [{ box: [0, 0, 1, 1], text: "t" }] }]);
 * if (s !== '{"image":"a.png","caption":"c","regions":[{"box":[0,0,1,1],"text":"t"}]}\n') throw new Error(s);
 * ```
 */
export function formatRegionJsonl(records: readonly RegionRecord[]): string {
  let out = "";
  for (const r of records) {
    const regions = r.regions.map(({ box, text, label, phrases }) => ({ box, text, label, phrases }));
    out += JSON.stringify({ image: r.image, caption: r.caption, captions: r.captions, regions }) + "\n";
  }
  return out;
}

/**
 * Writes records as a region-text JSONL file (to a temporary file, then renamed into place).
 *
 * @param file Path of the JSONL file.
 * @param records The records; image paths relative to the file's directory.
 *
 * @example
 * ```ts
 * import { writeRegionJsonl } from "./jsonl.ts";
 * const dir = await Deno.makeTempDir();
 * await writeRegionJsonl(`${dir}/d.jsonl`, [{ image: "a.png", caption: "c", regions: [] }]);
 * if (!(await Deno.readTextFile(`${dir}/d.jsonl`)).startsWith('{"image":"a.png"')) throw new Error("written");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeRegionJsonl(file: string, records: readonly RegionRecord[]): Promise<void> {
  const tmp = `${file}.tmp`;
  await Deno.writeTextFile(tmp, formatRegionJsonl(records));
  await Deno.rename(tmp, file);
}
