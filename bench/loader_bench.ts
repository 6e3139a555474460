/**
 * Loader throughput: batches a second for the default training shape (B = 32, M = 4, ctx 32) at S = 32
 * and S = 64, from the mosaic generator: in process (the cost of one batch on one core) and through the
 * Worker with prefetch (what the training loop waits for, off the main thread).
 *
 *   XDG_RUNTIME_DIR=/tmp deno bench -A bench/loader_bench.ts
 * @module
 */

import { BatchMaker, Loader } from "../src/data/loader.ts";
import { MOSAIC_WORDS, MosaicDataset } from "../src/data/mosaic.ts";
import { WordTokenizer } from "../src/data/tokenizer.ts";

const tok = WordTokenizer.fromTexts(MOSAIC_WORDS, { vocabSize: 64 });
const shape = { batchSize: 32, maxRegions: 4, contextLength: 32 };

for (const size of [32, 64]) {
  const set = await MosaicDataset.open("digits", "train", 60000, { canvas: size });
  const maker = new BatchMaker(set, tok, { ...shape, imageSize: size });
  let step = 0;
  Deno.bench({
    name: `BatchMaker.makeSync B=32 S=${size} M=4 (in process)`,
    group: `S=${size}`,
    baseline: true,
    fn: () => {
      maker.makeSync(0, step++ % maker.stepsPerEpoch);
    },
  });

  const loader = await Loader.open(
    { kind: "mosaic", set: "digits", split: "train", count: 60000, canvas: size },
    tok,
    { ...shape, imageSize: size, worker: true, prefetch: 4 },
  );
  await loader.next();
  Deno.bench({
    name: `Loader.next B=32 S=${size} M=4 (worker, prefetch 4)`,
    group: `S=${size}`,
    fn: async () => {
      await loader.next();
    },
  });
  // The worker would keep the process alive: stop it once the benchmarks are done.
  globalThis.addEventListener("beforeunload", () => loader.close());
}
