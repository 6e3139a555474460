/**
 * Writing data sets to disk (region-text JSONL + PNG images + a preview sheet) and checking data files,
 * the work behind `deno task data`.
 * @module
 */

import { readCoco } from "./coco.ts";
import type { Dataset, Sample } from "./dataset.ts";
import { encodePng } from "./image.ts";
import { readRegionJsonl } from "./jsonl.ts";
import { writeRegionJsonl } from "./jsonl.ts";
import { renderPreview } from "./preview.ts";
import type { BadRecords, RegionRecord } from "./records.ts";

/** Options of {@link writeDataset}. */
export interface WriteOptions {
  /** Samples drawn on `preview.png` (0 for no preview). @default 16 */
  preview?: number;
  /** Called after each chunk of images with the number written so far. */
  onProgress?: (written: number, total: number) => void;
}

/**
 * Writes every sample of a data set as `DIR/<index>.png` (zero-padded to at least 6 digits), the records as
 * `DIR/data.jsonl` (image paths relative to it), and `DIR/preview.png`, a sheet of the first samples with
 * their boxes and captions.
 *
 * @param dir The output directory (created if missing).
 * @param dataset The samples.
 * @param options Preview size, progress callback.
 * @returns The records written.
 *
 * @example
 * ```ts
 * import { MosaicDataset } from "./mosaic.ts";
 * import { writeDataset } from "./write.ts";
 * const dir = await Deno.makeTempDir();
 * const records = await writeDataset(dir, await MosaicDataset.open("digits", "test", 3), { preview: 2 });
 * if (records[2].image !== "000002.png") throw new Error(records[2].image);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeDataset(
  dir: string,
  dataset: Dataset,
  options: WriteOptions = {},
): Promise<RegionRecord[]> {
  await Deno.mkdir(dir, { recursive: true });
  const n = dataset.length;
  const width = Math.max(6, String(Math.max(0, n - 1)).length);
  const records: RegionRecord[] = [];
  const previewCount = Math.min(n, options.preview ?? 16);
  const previews: Sample[] = [];
  const chunk = 256;
  for (let start = 0; start < n; start += chunk) {
    const writes: Promise<void>[] = [];
    for (let i = start; i < Math.min(n, start + chunk); i++) {
      const s = await dataset.get(i);
      if (i < previewCount) previews.push(s);
      const name = `${String(i).padStart(width, "0")}.png`;
      writes.push(Deno.writeFile(`${dir}/${name}`, encodePng(s.image)));
      records.push({
        image: name,
        caption: s.caption,
        regions: s.regions.map((r) => ({
          box: [...r.box],
          text: r.text,
          ...(r.label !== undefined ? { label: r.label } : {}),
        })),
      });
    }
    await Promise.all(writes);
    options.onProgress?.(records.length, n);
  }
  await writeRegionJsonl(`${dir}/data.jsonl`, records);
  if (previewCount > 0) await Deno.writeFile(`${dir}/preview.png`, encodePng(renderPreview(previews)));
  return records;
}

/**
 * Reads a region-text JSONL file or a COCO `instances_*.json` (told apart by the name's ending) with full
 * image decoding, to find every bad record.
 *
 * @param file The data file.
 * @param options `strict`: throw at the first bad record.
 * @returns How many records are good, and the bad ones.
 *
 * @example
 * ```ts
 * import { checkDataFile } from "./write.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/d.jsonl`, "{not json\n");
 * const { good, bad } = await checkDataFile(`${dir}/d.jsonl`);
 * if (good !== 0 || bad.count !== 1) throw new Error("one malformed line");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkDataFile(
  file: string,
  options: { strict?: boolean } = {},
): Promise<{ good: number; bad: BadRecords }> {
  const read = file.endsWith(".json")
    ? await readCoco(file, { strict: options.strict, images: "decode" })
    : await readRegionJsonl(file, { strict: options.strict, images: "decode" });
  return { good: read.records.length, bad: read.bad };
}
