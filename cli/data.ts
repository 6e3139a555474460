/**
 * `deno task data`: writes a mosaic data set (region-text JSONL, PNG images, a preview sheet), or checks a
 * JSONL / COCO data file for bad records.
 *
 *   deno task data --set digits --split train --count 10000 --seed 0 --out data/digits-train
 *   deno task data --check data/mine.jsonl [--strict]
 * @module
 */

import { parseArgs } from "node:util";
import { MosaicDataset } from "../src/data/mosaic.ts";
import { checkDataFile, writeDataset } from "../src/data/write.ts";

// Options: name, default, meaning.
const OPTIONS = {
  set: { type: "string", default: "digits", help: "glyph source: digits (MNIST) or fashion (Fashion-MNIST)" },
  split: { type: "string", default: "train", help: "source images: train or test" },
  count: { type: "string", default: "1000", help: "number of scenes" },
  seed: { type: "string", default: "0", help: "scene seed: scene i depends only on (seed, i)" },
  out: { type: "string", default: "", shown: "data/<set>-<split>", help: "output directory" },
  canvas: { type: "string", default: "64", help: "canvas side in pixels" },
  "max-objects": { type: "string", default: "4", help: "most objects a scene (1 to 8)" },
  preview: { type: "string", default: "16", help: "scenes on preview.png (0 for none)" },
  check: { type: "string", default: "", help: "instead: check a .jsonl or COCO instances .json file" },
  strict: { type: "boolean", default: false, help: "with --check: stop at the first bad record" },
  help: { type: "boolean", default: false, help: "show this help" },
} as const;

function usage(): string {
  const lines = Object.entries(OPTIONS).map(([name, o]) => {
    const shown = "shown" in o ? o.shown : o.default === "" ? "none" : o.default;
    const def = o.type === "boolean" ? "" : ` (default: ${shown})`;
    return `  --${name.padEnd(12)} ${o.help}${def}`;
  });
  return `Usage: deno task data [options]\n\nWrites DIR/data.jsonl, DIR/<index>.png and DIR/preview.png.\n\n${
    lines.join("\n")
  }`;
}

function int(name: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new RangeError(`--${name}: wanted an integer >= ${min}, got "${value}"`);
  }
  return n;
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: Object.fromEntries(
      Object.entries(OPTIONS).map(([k, o]) => [k, { type: o.type, default: o.default }]),
    ),
    strict: true,
  }) as { values: Record<string, string | boolean> };
  if (values.help) {
    console.log(usage());
    return 0;
  }

  if (values.check) {
    const file = values.check as string;
    const { good, bad } = await checkDataFile(file, { strict: values.strict as boolean });
    console.log(`${file}: ${good} good records`);
    console.log(bad.summary(20));
    return bad.count === 0 ? 0 : 1;
  }

  const set = values.set as string, split = values.split as string;
  if (set !== "digits" && set !== "fashion") {
    throw new TypeError(`--set: wanted digits or fashion, got "${set}"`);
  }
  if (split !== "train" && split !== "test") {
    throw new TypeError(`--split: wanted train or test, got "${split}"`);
  }
  const count = int("count", values.count as string, 1);
  const out = (values.out as string) || `data/${set}-${split}`;
  const t0 = performance.now();
  const dataset = await MosaicDataset.open(set, split, count, {
    seed: int("seed", values.seed as string, -(2 ** 31)),
    canvas: int("canvas", values.canvas as string, 8),
    maxObjects: int("max-objects", values["max-objects"] as string, 1),
  });
  let last = 0;
  await writeDataset(out, dataset, {
    preview: int("preview", values.preview as string, 0),
    onProgress: (done, total) => {
      if (done - last >= 5000 || done === total) {
        console.log(`  ${done}/${total} scenes`);
        last = done;
      }
    },
  });
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`wrote ${count} ${set} ${split} scenes to ${out}/data.jsonl (+ images, preview.png) in ${s} s`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(2);
  }
}
