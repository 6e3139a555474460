/**
 * The region-text record (one image with its caption and its boxed region captions), shared by the
 * JSONL and COCO readers and the mosaic writer, and the bad-record reports of both readers.
 * @module
 */

/**
 * One region of an image: a box in pixels of the image and its text.
 *
 * @example
 * ```ts
 * import type { Region } from "./records.ts";
 * const r: Region = { box: [2, 3, 20, 30], text: "small red seven", label: "seven" };
 * if (r.box[2] <= r.box[0]) throw new Error("x1 > x0");
 * ```
 */
export interface Region {
  /** `[x0, y0, x1, y1]` in pixels of the image: x0 < x1 <= width, y0 < y1 <= height. */
  box: [number, number, number, number];
  /** The region's caption. */
  text: string;
  /** An optional class name. */
  label?: string;
  /**
   * Optional captions of the same region from the coarsest to the finest (`["seven", "red seven",
   * "small red seven"]`). A loader then draws one detail level a batch and gives every region of the batch
   * its phrase at that level, so a bare "seven" is never the contrastive negative of a "red seven" region.
   */
  phrases?: string[];
}

/**
 * One line of a region-text JSONL file: an image path (relative to the file), the image caption and the
 * regions.
 *
 * @example
 * ```ts
 * import type { RegionRecord } from "./records.ts";
 * const rec: RegionRecord = { image: "000001.png", caption: "a small red seven", regions: [] };
 * if (rec.regions.length !== 0) throw new Error("no regions");
 * ```
 */
export interface RegionRecord {
  /** Path of the image, relative to the data file's directory (JSONL) or the image directory (COCO). */
  image: string;
  /** The image caption. */
  caption: string;
  /** Optional: the caption at each detail level, coarsest first (see `Sample.captions`). */
  captions?: string[];
  /** Boxed region captions; may be empty. */
  regions: Region[];
}

/**
 * A record that was skipped, with where it came from and why.
 *
 * @example
 * ```ts
 * import { type BadRecord, formatBadRecord } from "./records.ts";
 * const bad: BadRecord = { file: "data.jsonl", line: 3, reason: "empty caption" };
 * if (formatBadRecord(bad) !== "data.jsonl:3: empty caption") throw new Error("format");
 * ```
 */
export interface BadRecord {
  /** The data file (JSONL or COCO JSON) the record came from. */
  file: string;
  /** 1-based line of the JSONL file, or 1-based index in COCO's `images` array. */
  line: number;
  /** What is wrong, with the values found and wanted. */
  reason: string;
}

/**
 * Formats a bad record as `file:line: reason`.
 *
 * @param bad The record.
 * @returns The message.
 *
 * @example
 * ```ts
 * import { formatBadRecord } from "./records.ts";
 * const s = formatBadRecord({ file: "a.jsonl", line: 1, reason: "malformed JSON" });
 * if (!s.startsWith("a.jsonl:1:")) throw new Error("file and line first");
 * ```
 */
export function formatBadRecord(bad: BadRecord): string {
  return `${bad.file}:${bad.line}: ${bad.reason}`;
}

/**
 * Thrown by readers and loaders in strict mode at the first bad record (and by a data set when an
 * image fails to load), so callers can catch it and read `file`, `line` and `reason`.
 *
 * @example
 * ```ts
 * import { BadRecordError } from "./records.ts";
 * const e = new BadRecordError({ file: "d.jsonl", line: 2, reason: "empty caption" });
 * if (e.message !== "d.jsonl:2: empty caption" || e.line !== 2) throw new Error("fields");
 * ```
 */
export class BadRecordError extends Error {
  /** The data file. */
  readonly file: string;
  /** The 1-based line (JSONL) or image index (COCO). */
  readonly line: number;
  /** What is wrong. */
  readonly reason: string;

  /**
   * Makes the error of one bad record; its message is `file:line: reason`.
   *
   * @param bad Where and why.
   */
  constructor(bad: BadRecord) {
    super(formatBadRecord(bad));
    this.name = "BadRecordError";
    this.file = bad.file;
    this.line = bad.line;
    this.reason = bad.reason;
  }

  /** The plain record of this error. */
  toRecord(): BadRecord {
    return { file: this.file, line: this.line, reason: this.reason };
  }
}

/**
 * Collects bad records under a policy: skip (count them, the default) or strict (throw at the first).
 *
 * @example
 * ```ts
 * import { BadRecords } from "./records.ts";
 * const bad = new BadRecords(false);
 * bad.add({ file: "a.jsonl", line: 4, reason: "empty caption" });
 * if (bad.count !== 1 || !bad.summary().includes("1 bad record")) throw new Error("counted");
 * ```
 */
export class BadRecords {
  /** The skipped records, in the order found. */
  readonly list: BadRecord[] = [];

  /**
   * Makes an empty collection.
   *
   * @param strict Throw a {@link BadRecordError} at the first bad record.
   */
  constructor(readonly strict = false) {}

  /** How many records were skipped. */
  get count(): number {
    return this.list.length;
  }

  /**
   * Records a bad record, or throws it in strict mode.
   *
   * @param bad Where and why.
   */
  add(bad: BadRecord): void {
    if (this.strict) throw new BadRecordError(bad);
    this.list.push(bad);
  }

  /**
   * A one-paragraph report: the count and the first few messages.
   *
   * @param max How many messages to show.
   * @returns The report, or `"no bad records"`.
   */
  summary(max = 5): string {
    if (this.list.length === 0) return "no bad records";
    const head = this.list.slice(0, max).map((b) => "  " + formatBadRecord(b)).join("\n");
    const more = this.list.length > max ? `\n  ... and ${this.list.length - max} more` : "";
    return `skipped ${this.list.length} bad record${this.list.length === 1 ? "" : "s"}:\n${head}${more}`;
  }
}

function isFiniteNumber(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

function fmtBox(box: unknown): string {
  return Array.isArray(box) ? `[${box.map((v) => JSON.stringify(v)).join(", ")}]` : JSON.stringify(box);
}

/**
 * Checks a box: four finite numbers with x0 < x1 and y0 < y1, inside the image when its size is known.
 *
 * @param box The value found.
 * @param width Image width in pixels, or undefined when unknown.
 * @param height Image height in pixels, or undefined when unknown.
 * @returns null when the box is good, else the reason.
 *
 * @example
 * ```ts
 * import { checkBox } from "./records.ts";
 * if (checkBox([0, 0, 10, 10], 8, 8) === null) throw new Error("outside an 8x8 image");
 * if (checkBox([0, 0, 8, 8], 8, 8) !== null) throw new Error("fills the image exactly");
 * ```
 */
export function checkBox(box: unknown, width?: number, height?: number): string | null {
  if (!Array.isArray(box) || box.length !== 4 || !box.every(isFiniteNumber)) {
    return `box must be 4 finite numbers [x0, y0, x1, y1]: got ${fmtBox(box)}`;
  }
  const [x0, y0, x1, y1] = box as number[];
  if (!(x0 < x1) || !(y0 < y1)) return `box ${fmtBox(box)} is empty or inverted: wanted x0 < x1 and y0 < y1`;
  if (width !== undefined && height !== undefined && (x0 < 0 || y0 < 0 || x1 > width || y1 > height)) {
    return `box ${fmtBox(box)} lies outside the ${width}x${height} image`;
  }
  return null;
}

/**
 * Checks the shape of a parsed JSONL value and returns it as a record (image size not checked here).
 *
 * @param value The parsed JSON value of one line.
 * @returns The record, or the reason it is bad as `{reason}`.
 *
 * @example
 * ```ts
 * import { parseRecord } from "./records.ts";
 * const r = parseRecord({ image: "a.png", caption: "", regions: [] });
 * if (!("reason" in r) || !r.reason.includes("empty caption")) throw new Error("empty caption");
 * ```
 */
export function parseRecord(value: unknown): RegionRecord | { reason: string } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { reason: `record must be a JSON object: got ${JSON.stringify(value)?.slice(0, 40)}` };
  }
  const v = value as Record<string, unknown>;
  if (typeof v.image !== "string" || v.image === "") {
    return { reason: `"image" must be a non-empty path string: got ${JSON.stringify(v.image)}` };
  }
  if (typeof v.caption !== "string") {
    return { reason: `"caption" must be a string: got ${JSON.stringify(v.caption)}` };
  }
  if (v.caption.trim() === "") return { reason: `empty caption for image "${v.image}"` };
  const regionsIn = v.regions ?? [];
  if (!Array.isArray(regionsIn)) {
    return { reason: `"regions" must be an array: got ${JSON.stringify(regionsIn)}` };
  }
  const regions: Region[] = [];
  for (let i = 0; i < regionsIn.length; i++) {
    const r = regionsIn[i] as Record<string, unknown>;
    if (typeof r !== "object" || r === null) {
      return { reason: `region ${i} must be an object: got ${JSON.stringify(r)}` };
    }
    const why = checkBox(r.box);
    if (why) return { reason: `region ${i}: ${why}` };
    if (typeof r.text !== "string") {
      return { reason: `region ${i}: "text" must be a string: got ${JSON.stringify(r.text)}` };
    }
    if (r.text.trim() === "") return { reason: `region ${i}: empty text` };
    if (r.label !== undefined && typeof r.label !== "string") {
      return { reason: `region ${i}: "label" must be a string when present: got ${JSON.stringify(r.label)}` };
    }
    const phrases = textList(r.phrases);
    if (typeof phrases === "string") return { reason: `region ${i}: "phrases" ${phrases}` };
    const region: Region = { box: (r.box as number[]).slice() as Region["box"], text: r.text };
    if (r.label !== undefined) region.label = r.label as string;
    if (phrases) region.phrases = phrases;
    regions.push(region);
  }
  const captions = textList(v.captions);
  if (typeof captions === "string") return { reason: `"captions" ${captions}` };
  return { image: v.image, caption: v.caption, ...(captions ? { captions } : {}), regions };
}

/** An optional list of non-empty strings: the list, undefined when absent, or what is wrong with it. */
function textList(value: unknown): string[] | undefined | string {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) {
    return `must be a non-empty array of strings when present: got ${JSON.stringify(value)?.slice(0, 60)}`;
  }
  const bad = value.findIndex((t) => typeof t !== "string" || t.trim() === "");
  if (bad >= 0) return `entry ${bad} must be a non-empty string: got ${JSON.stringify(value[bad])}`;
  return value.slice();
}

/**
 * Checks every region box of a record against the image size.
 *
 * @param record The record.
 * @param width Image width in pixels.
 * @param height Image height in pixels.
 * @returns null when all boxes lie in the image, else the reason.
 *
 * @example
 * ```ts
 * import { checkRecordBoxes } from "./records.ts";
 * const rec = { image: "a.png", caption: "x", regions: [{ box: [0, 0, 9, 4] as [number, number, number, number], text: "y" }] };
 * if (checkRecordBoxes(rec, 8, 8) === null) throw new Error("x1 = 9 > 8");
 * ```
 */
export function checkRecordBoxes(record: RegionRecord, width: number, height: number): string | null {
  for (let i = 0; i < record.regions.length; i++) {
    const why = checkBox(record.regions[i].box, width, height);
    if (why) return `region ${i}: ${why} ("${record.image}")`;
  }
  return null;
}
