/**
 * What do a trained model's region embeddings know? For mosaic test scenes, each region embedding is compared
 * with the text embeddings of single words (the eight colours, the two sizes, the class names), and the
 * nearest word of each kind is checked against the object's true colour, size and class.
 *
 *   deno run -A tools/probe_regions.ts runs/x [--count 256]
 *
 * Size can be read from the box alone, colour needs the Prompter to look at the right pixels, and the class
 * needs the image tower to have learnt the glyphs' shapes: the three numbers tell which part is missing.
 * The class is also given by object size and by objects in the scene: a model that knows the digits but not
 * yet where a box points errs more on small objects and in crowded scenes. Monochrome runs have no colour line.
 */

import { parseArgs } from "node:util";
import { l2Normalize, noGrad, requestGpu, setGpu, tidy } from "../mod.ts";
import { loadModel } from "../src/io/checkpoint.ts";
import { tokenizerFromJson } from "../src/data/tokenizer.ts";
import { COLORS, MosaicDataset, type MosaicObject, SIZES } from "../src/data/mosaic.ts";
import { DIGIT_CLASSES } from "../src/data/glyphs.ts";
import { BatchMaker } from "../src/data/loader.ts";
import { EVAL_SEED } from "../src/eval/run.ts";

const { values: o, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { count: { type: "string", default: "256" } },
});
const dir = positionals[0];
if (!dir) {
  console.error("Usage: deno run -A tools/probe_regions.ts RUN_DIR [--count 256]");
  Deno.exit(2);
}

setGpu(await requestGpu());
const { model, metadata } = await loadModel(`${dir}/model.safetensors`);
const tokenizer = tokenizerFromJson(JSON.parse(metadata.tokenizer));
const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
const ctx = model.config.text.context_length, e = model.config.embed_dim, m = 4, b = 32;
const count = Number(o.count);
const { minObjects, maxObjects, smallSize, largeSize, grid, monochrome } = config;
const scenes = await MosaicDataset.open("digits", "test", count, {
  canvas: config.canvas ?? 64,
  seed: EVAL_SEED,
  ...{ minObjects, maxObjects, smallSize, largeSize, grid, monochrome },
});
const maker = new BatchMaker(scenes, tokenizer, {
  batchSize: b,
  imageSize: model.config.vision.image_size,
  contextLength: ctx,
  maxRegions: m,
  shuffle: false,
});

async function embedWords(words: readonly string[]): Promise<Float32Array> {
  const ids = new Int32Array(words.length * ctx);
  words.forEach((w, i) => tokenizer.encodeInto(w, ctx, ids, i * ctx));
  const t = noGrad(() => tidy(() => l2Normalize(model.text.features(ids, words.length))));
  const out = (await t.toArray()) as Float32Array;
  t.dispose();
  return out;
}

const kinds: Record<string, { words: readonly string[]; of: (o: MosaicObject) => string }> = {
  // Monochrome scenes have no colours to ask about.
  ...(monochrome ? {} : { colour: { words: COLORS.map((c) => c.name), of: (o) => o.color } }),
  size: { words: [...SIZES], of: (o) => o.size },
  class: { words: [...DIGIT_CLASSES], of: (o) => o.label },
};
const wordEmbeds = Object.fromEntries(
  await Promise.all(Object.entries(kinds).map(async ([k, v]) => [k, await embedWords(v.words)] as const)),
);
const right: Record<string, number> = Object.fromEntries(Object.keys(kinds).map((k) => [k, 0]));
let regions = 0;
// The class by object size and by the number of objects in the scene: a model that knows the digits but
// not where a box points errs more on small objects, and in scenes where it can pick the wrong one.
const classBy = new Map<string, { regions: number; right: number }>();
for (let step = 0; step < maker.stepsPerEpoch; step++) {
  const batch = maker.makeSync(0, step);
  const z = noGrad(() => tidy(() => l2Normalize(model.forward(batch).regionFeatures!)));
  const zs = (await z.toArray()) as Float32Array;
  z.dispose();
  for (let i = 0; i < b; i++) {
    const scene = scenes.get(batch.indices[i]);
    for (let s = 0; s < m; s++) {
      if (batch.regionValid[i * m + s] === 0) continue;
      // The loader draws region slots at random: find the object by its box.
      const box = batch.regionBoxes.subarray((i * m + s) * 4, (i * m + s) * 4 + 4);
      const c = scene.image.width;
      const object = scene.objects.find((ob) =>
        Math.abs(ob.box[0] / c - box[0]) < 0.02 && Math.abs(ob.box[1] / c - box[1]) < 0.02
      );
      if (!object) continue;
      regions++;
      for (const [kind, { words, of }] of Object.entries(kinds)) {
        let best = -1, bestScore = -Infinity;
        for (let w = 0; w < words.length; w++) {
          let score = 0;
          for (let k = 0; k < e; k++) score += zs[(i * m + s) * e + k] * wordEmbeds[kind][w * e + k];
          if (score > bestScore) [best, bestScore] = [w, score];
        }
        const ok = words[best] === of(object);
        if (ok) right[kind]++;
        if (kind === "class") {
          for (const key of [`${object.size} objects`, `scenes of ${scene.objects.length}`]) {
            const tally = classBy.get(key) ?? { regions: 0, right: 0 };
            classBy.set(key, { regions: tally.regions + 1, right: tally.right + (ok ? 1 : 0) });
          }
        }
      }
    }
  }
}
console.log(
  `${regions} regions of ${count} test scenes; nearest single word of each kind (chance in brackets):`,
);
for (const [kind, { words }] of Object.entries(kinds)) {
  console.log(
    `  ${kind.padEnd(7)} ${(100 * right[kind] / regions).toFixed(1)} %  (${
      (100 / words.length).toFixed(1)
    } %)`,
  );
}
console.log("  class by:");
for (const [key, { regions, right }] of [...classBy].sort()) {
  console.log(`    ${key.padEnd(18)} ${(100 * right / regions).toFixed(1)} %  (${regions} regions)`);
}
model.dispose();
