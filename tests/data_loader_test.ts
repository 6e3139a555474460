import assert from "node:assert/strict";
import type { Dataset, MosaicSpec, Sample } from "../src/data/dataset.ts";
import { blankImage, encodePng } from "../src/data/image.ts";
import { writeRegionJsonl } from "../src/data/jsonl.ts";
import { advance, type Batch, BatchMaker, Loader } from "../src/data/loader.ts";
import { MOSAIC_WORDS, MosaicDataset } from "../src/data/mosaic.ts";
import { CLIP_MEAN, CLIP_STD } from "../src/data/preprocess.ts";
import { BadRecordError } from "../src/data/records.ts";
import { WordTokenizer } from "../src/data/tokenizer.ts";

const tok = WordTokenizer.fromTexts(MOSAIC_WORDS, { vocabSize: 64 });
const spec: MosaicSpec = { kind: "mosaic", set: "digits", split: "test", count: 40, seed: 3, canvas: 32 };
const small = { batchSize: 8, imageSize: 32, contextLength: 24, maxRegions: 4, seed: 9 };

/** An in-memory data set whose sample i has i % 7 regions, each a distinct text and box. */
function countingDataset(n: number): Dataset {
  return {
    length: n,
    get(i: number): Sample {
      const image = blankImage(16, 8);
      image.data[0] = i; // the first byte marks the sample
      const regions = Array.from({ length: i % 7 }, (_, r) => ({
        box: [r, 0, r + 2, 4 + (r % 4)] as [number, number, number, number],
        text: `${["small", "large"][r % 2]} ${MOSAIC_WORDS[r]}`,
      }));
      return { image, caption: `a small red ${["zero", "one"][i % 2]}`, regions };
    },
  };
}

function sameBatch(a: Batch, b: Batch, what: string): void {
  for (const k of ["images", "text", "regionBoxes", "regionText", "regionValid", "indices"] as const) {
    assert.deepEqual(a[k], b[k], `${what}: ${k}`);
  }
  assert.equal(a.epoch, b.epoch);
  assert.equal(a.step, b.step);
}

Deno.test("BatchMaker.makeSync() gives the spec bundles' shapes: [B,3,S,S], [B,ctx], [B,M,4], [B,M,ctx], [B,M]", async () => {
  const set = await MosaicDataset.open("digits", "test", 40, { seed: 3, canvas: 32 });
  const maker = new BatchMaker(set, tok, small);
  const b = maker.makeSync(0, 0);
  assert.equal(b.images.length, 8 * 3 * 32 * 32);
  assert.equal(b.text.length, 8 * 24);
  assert.equal(b.regionBoxes.length, 8 * 4 * 4);
  assert.equal(b.regionText.length, 8 * 4 * 24);
  assert.equal(b.regionValid.length, 8 * 4);
  assert.equal(b.indices.length, 8);
  assert.equal(maker.stepsPerEpoch, 5);
  // Row r holds sample indices[r]: its caption tokens, its normalised regions, the black canvas normalised.
  for (let r = 0; r < 8; r++) {
    const scene = set.get(b.indices[r]);
    assert.deepEqual(b.text.subarray(r * 24, (r + 1) * 24), tok.encode(scene.caption, 24));
    const valid = b.regionValid.subarray(r * 4, r * 4 + 4);
    assert.equal(valid.reduce((a, v) => a + v, 0), Math.min(4, scene.regions.length));
    const wanted = new Set(scene.regions.map((g) => `${g.text}|${g.box.map((v) => v / 32).join()}`));
    for (let m = 0; m < 4; m++) {
      const slot = r * 4 + m;
      const box = [...b.regionBoxes.subarray(slot * 4, slot * 4 + 4)];
      const text = tok.decode(b.regionText.subarray(slot * 24, (slot + 1) * 24));
      if (valid[m]) {
        assert.ok(
          wanted.has(`${text}|${box.join()}`),
          `row ${r} slot ${m}: "${text}" ${box} is a region of the scene`,
        );
      } else {
        assert.deepEqual(box, [0, 0, 1, 1]);
        assert.deepEqual(b.regionText.subarray(slot * 24, (slot + 1) * 24), tok.encode("", 24));
      }
    }
  }
  const black = (0 - CLIP_MEAN[2]) / CLIP_STD[2];
  const corner = b.images[2 * 32 * 32]; // row 0, channel 2, pixel (0, 0): black canvas unless a glyph sits there
  assert.ok(Math.abs(corner - black) < 1e-6 || corner > black);
});

Deno.test("BatchMaker: an epoch visits every sample once, in a seeded order that changes by epoch", () => {
  const maker = new BatchMaker(countingDataset(23), tok, { ...small, batchSize: 5, dropLast: false });
  assert.equal(maker.stepsPerEpoch, 5);
  for (const epoch of [0, 1]) {
    const seen = [];
    for (let s = 0; s < 5; s++) seen.push(...maker.makeSync(epoch, s).indices);
    assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 23 }, (_, i) => i));
  }
  assert.notDeepEqual(maker.indices(0, 0), maker.indices(1, 0));
  assert.equal(maker.makeSync(0, 4).batchSize, 3, "the last short batch with dropLast off");
  const other = new BatchMaker(countingDataset(23), tok, { ...small, batchSize: 5, seed: 10 });
  assert.notDeepEqual(other.indices(0, 0), maker.indices(0, 0));
  const plain = new BatchMaker(countingDataset(23), tok, { ...small, batchSize: 5, shuffle: false });
  assert.deepEqual([...plain.indices(3, 1)], [5, 6, 7, 8, 9]);
});

Deno.test("BatchMaker draws up to M region slots per image anew each epoch, always from the image's regions", () => {
  const set = countingDataset(14);
  const maker = new BatchMaker(set, tok, { ...small, batchSize: 14, shuffle: false, maxRegions: 3 });
  const draws = new Set<string>();
  for (let epoch = 0; epoch < 6; epoch++) {
    const b = maker.makeSync(epoch, 0);
    const row = 6; // sample 6 has 6 regions, more than M = 3
    assert.deepEqual([...b.regionValid.subarray(row * 3, row * 3 + 3)], [1, 1, 1]);
    const texts = Array.from(
      { length: 3 },
      (_, m) => tok.decode(b.regionText.subarray((row * 3 + m) * 24, (row * 3 + m + 1) * 24)),
    );
    const all = set.get(6) as Sample;
    for (const t of texts) {
      assert.ok(all.regions.some((r) => r.text === t), `"${t}" is one of sample 6's regions`);
    }
    assert.equal(new Set(texts).size, 3, "no region twice");
    draws.add(texts.join("|"));
    // Sample 0 has no regions: all slots empty.
    assert.deepEqual([...b.regionValid.subarray(0, 3)], [0, 0, 0]);
  }
  assert.ok(draws.size >= 3, `the draw changes across epochs: ${[...draws]}`);
});

Deno.test("BatchMaker says every caption and region phrase at one detail level a batch, every level over steps", () => {
  // Sample i's caption and region have 1 + i % 4 levels; a batch level u in [0, 1) says levels[floor(u * n)].
  const levels = ["zero", "one", "two", "three"];
  const dataset: Dataset = {
    length: 64,
    get(i: number): Sample {
      const phrases = levels.slice(0, 1 + (i % 4));
      const regions = [{ box: [0, 0, 4, 4] as [number, number, number, number], text: "red", phrases }];
      return { image: blankImage(8, 8), caption: "a red", captions: phrases, regions };
    },
  };
  const maker = new BatchMaker(dataset, tok, { ...small, maxRegions: 1 });
  const seen = new Set<number>();
  for (let step = 0; step < maker.stepsPerEpoch; step++) {
    const b = maker.makeSync(0, step);
    // Each region narrows u to [k/n, (k+1)/n); one level for the batch means the intervals overlap.
    let lo = 0, hi = 1;
    b.indices.forEach((index, row) => {
      const k = levels.indexOf(tok.decode(b.regionText.subarray(row * 24, (row + 1) * 24)));
      const n = 1 + (index % 4);
      assert(k >= 0 && k < n, `step ${step} row ${row}: phrase ${k} of ${n}`);
      assert.equal(
        tok.decode(b.text.subarray(row * 24, (row + 1) * 24)),
        levels[k],
        "the caption at the same level",
      );
      lo = Math.max(lo, k / n);
      hi = Math.min(hi, (k + 1) / n);
    });
    assert(lo < hi, `step ${step}: the regions' phrases do not share one detail level`);
    seen.add(Math.floor(lo * 4));
  }
  assert.equal(seen.size, 4, `every level appears over ${maker.stepsPerEpoch} steps: ${[...seen]}`);
});

Deno.test("BatchMaker: the same seed gives the same bytes", async () => {
  const set = await MosaicDataset.open("digits", "test", 40, { seed: 3, canvas: 32 });
  const a = new BatchMaker(set, tok, small), b = new BatchMaker(set, tok, small);
  sameBatch(a.makeSync(2, 3), b.makeSync(2, 3), "epoch 2 step 3");
  sameBatch(await a.make(1, 1), b.makeSync(1, 1), "async and sync paths");
});

Deno.test("BatchMaker resizes with padding when the data's size differs from the model's", () => {
  const maker = new BatchMaker(countingDataset(8), tok, {
    ...small,
    imageSize: 32,
    shuffle: false,
    mean: [0, 0, 0],
    std: [1, 1, 1],
  });
  const b = maker.makeSync(0, 0);
  // Sample 1: a 16x8 image (scale 2), region 0's box [0, 0, 2, 4] → [0, 0, 4/32, 8/32].
  const row1 = 1 * 4;
  const boxes = Array.from(
    { length: 4 },
    (_, m) => [...b.regionBoxes.subarray((row1 + m) * 4, (row1 + m) * 4 + 4)],
  );
  assert.deepEqual(boxes[0], [0, 0, 4 / 32, 8 / 32]);
  // Rows 16..31 of the 32 px input are padding (the 16x8 image scales to 32x16).
  assert.equal(b.images[1 * 3 * 1024 + 20 * 32 + 5], 0);
});

Deno.test("Loader resumed from a saved state returns the same batches, across an epoch boundary", async () => {
  const opts = { ...small, worker: false };
  const loader = await Loader.open(spec, tok, opts);
  assert.equal(loader.stepsPerEpoch, 5);
  const batches: Batch[] = [];
  let saved = loader.state;
  for (let i = 0; i < 8; i++) {
    if (i === 3) saved = loader.state;
    batches.push(await loader.next());
  }
  loader.close();
  assert.deepEqual(saved, { seed: 9, epoch: 0, step: 3 });
  assert.equal(batches[5].epoch, 1);
  assert.equal(batches[5].step, 0);
  const resumed = await Loader.open(spec, tok, { ...opts, resume: JSON.parse(JSON.stringify(saved)) });
  for (let i = 3; i < 8; i++) sameBatch(await resumed.next(), batches[i], `batch ${i}`);
  resumed.close();
  await assert.rejects(
    Loader.open(spec, tok, { ...opts, resume: { seed: 1, epoch: 0, step: 0 } }),
    /seed 1 but the loader's seed is 9/,
  );
  await assert.rejects(
    Loader.open(spec, tok, { ...opts, resume: { seed: 9, epoch: 0, step: 5 } }),
    /outside an epoch of 5 steps/,
  );
  assert.deepEqual(advance({ seed: 9, epoch: 0, step: 4 }, 5), { seed: 9, epoch: 1, step: 0 });
});

Deno.test("Loader in a Worker with prefetch gives the in-process batches, and resumes", async () => {
  const inProcess = await Loader.open(spec, tok, { ...small, worker: false });
  const worker = await Loader.open(spec, tok, { ...small, worker: true, prefetch: 2 });
  try {
    for (let i = 0; i < 7; i++) sameBatch(await worker.next(), await inProcess.next(), `batch ${i}`);
    const saved = worker.state;
    const expected = await inProcess.next();
    worker.close();
    const resumed = await Loader.open(spec, tok, { ...small, worker: true, resume: saved });
    try {
      sameBatch(await resumed.next(), expected, "resumed in a worker");
    } finally {
      resumed.close();
    }
  } finally {
    worker.close();
    inProcess.close();
  }
  await assert.rejects(worker.next(), /after close/);
});

Deno.test("Loader skips an image that fails to load, reports file and line, and strict mode stops", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const records = Array.from({ length: 6 }, (_, i) => ({
      image: `${i}.png`,
      caption: `a small red ${MOSAIC_WORDS[i]}`,
      regions: [{ box: [0, 0, 4, 4] as [number, number, number, number], text: "small red seven" }],
    }));
    for (const r of records) await Deno.writeFile(`${dir}/${r.image}`, encodePng(blankImage(8, 8)));
    await writeRegionJsonl(`${dir}/d.jsonl`, records);
    const jsonl = { kind: "jsonl", path: `${dir}/d.jsonl` } as const;
    const opts = { batchSize: 6, imageSize: 8, contextLength: 8, shuffle: false };
    // Lose an image after the file was checked: it fails while loading, not while reading.
    const loader = await Loader.open(jsonl, tok, { ...opts, worker: true });
    await Deno.remove(`${dir}/2.png`);
    const b = await loader.next();
    loader.close();
    assert.deepEqual([...b.indices], [0, 1, 3, 3, 4, 5], "index 2 replaced by its neighbour");
    assert.equal(loader.bad.length, 1);
    assert.equal(loader.bad[0].line, 3);
    assert.match(loader.report(), /skipped 1 bad record:\n {2}.*d\.jsonl:3: image "2\.png" not found/);
    // Read-time problems are in the same report.
    const reread = await Loader.open(jsonl, tok, { ...opts, batchSize: 5, worker: false });
    assert.equal(reread.length, 5);
    assert.match(reread.report(), /d\.jsonl:3: image "2\.png" not found/);
    reread.close();
    // Strict: the first failure rejects next() with a BadRecordError.
    const strict = await Loader.open(jsonl, tok, { ...opts, batchSize: 5, worker: true, strict: true });
    await Deno.remove(`${dir}/4.png`);
    const err = await strict.next().then(() => null, (e) => e);
    strict.close();
    assert.ok(err instanceof BadRecordError, String(err));
    assert.equal(err.line, 5);
    await assert.rejects(
      Loader.open({ kind: "jsonl", path: `${dir}/d.jsonl`, strict: true }, tok, { ...opts, worker: true }),
      (e: Error) => e instanceof BadRecordError && /d\.jsonl:3:/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("BatchMaker refuses a data set smaller than a batch and makeSync() on an asynchronous data set", () => {
  assert.throws(
    () => new BatchMaker(countingDataset(3), tok, { batchSize: 4 }),
    /3 samples, fewer than one batch of 4/,
  );
  const asyncSet: Dataset = { length: 4, get: (i) => Promise.resolve(countingDataset(4).get(i) as Sample) };
  assert.throws(
    () => new BatchMaker(asyncSet, tok, { batchSize: 2 }).makeSync(0, 0),
    /loads samples asynchronously: use make\(\)/,
  );
  assert.throws(
    () => new BatchMaker(countingDataset(4), tok, { batchSize: 2, contextLength: 1 }),
    /contextLength must be >= 2/,
  );
});
