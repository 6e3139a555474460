import { assert, assertEquals } from "./_assert.ts";
import { assertClose, gpu } from "./_harness.ts";
import { Cloc } from "../src/nn/model.ts";
import { type ClocConfig, TINY_CONFIG } from "../src/nn/config.ts";
import { Rng } from "../src/tensor/random.ts";
import { noGrad, type Tensor, tensor, tidy } from "../src/tensor/tensor.ts";
import { reshape } from "../src/ops/reshape.ts";
import { l2Normalize } from "../src/ops/losses.ts";
import { saveModel } from "../src/io/checkpoint.ts";
import { type Dataset, openDataset, type Sample } from "../src/data/dataset.ts";
import { MOSAIC_WORDS, MosaicDataset } from "../src/data/mosaic.ts";
import { WordTokenizer } from "../src/data/tokenizer.ts";
import { encodePng, type RgbImage } from "../src/data/image.ts";
import { writeRegionJsonl } from "../src/data/jsonl.ts";
import { preprocess } from "../src/data/preprocess.ts";
import type { RegionRecord } from "../src/data/records.ts";
import { cropImage, embedDataset, type EvalReport, evaluate } from "../src/eval/evaluate.ts";
import { evalDataSpec, evaluateRun, openRun } from "../src/eval/run.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const METRIC_KEYS = [
  "i2t_r1",
  "i2t_r5",
  "t2i_r1",
  "t2i_r5",
  "region_macc",
  "region_acc",
  "r2t_r1",
  "r2t_r10",
  "t2r_r1",
  "t2r_r10",
  "grounding_acc50",
] as const;

const tokenizer = WordTokenizer.fromTexts(MOSAIC_WORDS, { vocabSize: 64 });
const roiConfig: ClocConfig = { ...TINY_CONFIG, prompter: { ...TINY_CONFIG.prompter, kind: "roialign" } };

/** Every metric a fraction in [0, 1], or null exactly where `nulls` says. */
function checkReport(report: EvalReport, nulls: readonly string[] = []): void {
  for (const key of METRIC_KEYS) {
    const v = report[key];
    if (nulls.includes(key)) assertEquals(v, null, key);
    else assert(typeof v === "number" && v >= 0 && v <= 1, `${key} = ${v} is not a fraction`);
  }
  assert(typeof report.adapter === "string" && report.adapter.length > 0, "adapter");
}

function randomImage(width: number, height: number, seed: number): RgbImage {
  const rng = new Rng(seed);
  return { width, height, data: Uint8Array.from({ length: width * height * 3 }, () => rng.int(256)) };
}

/** Three samples: non-square images, 2, 0 and 3 regions, one region without a label. */
function smallSet(): Dataset {
  const samples: Sample[] = [
    {
      image: randomImage(48, 32, 1),
      caption: "a small red seven above a large blue two",
      regions: [
        { box: [2, 3, 20, 30], text: "small red seven", label: "seven" },
        { box: [25.5, 0, 48, 17.2], text: "large blue two", label: "two" },
      ],
    },
    { image: randomImage(30, 40, 2), caption: "a white nine", regions: [] },
    {
      image: randomImage(40, 40, 3),
      caption: "a small green three and a large red seven",
      regions: [
        { box: [0, 0, 40, 40], text: "large red seven", label: "seven" },
        { box: [10, 12, 14, 19], text: "small green three" },
        { box: [30, 1, 39, 9], text: "small red seven", label: "seven" },
      ],
    },
  ];
  return { length: samples.length, get: (i) => samples[i] };
}

async function read(t: Tensor): Promise<Float32Array> {
  const v = await t.toArray() as Float32Array;
  t.dispose();
  return v;
}

Deno.test("embedDataset() matches the model run on each image and region alone, with batches padding regions", async () => {
  await gpu();
  const e = TINY_CONFIG.embed_dim, s = TINY_CONFIG.vision.image_size, ctx = TINY_CONFIG.text.context_length;
  const set = smallSet();
  for (const [config, mode] of [[TINY_CONFIG, "cloc"], [roiConfig, "cloc"], [TINY_CONFIG, "clip"]] as const) {
    const name = `${config.prompter.kind ?? "block"}/${mode}`;
    const model = new Cloc(config, new Rng(3));
    const x = await embedDataset(model, set, tokenizer, { batchSize: 2, mode });
    assertEquals(x.regionImage, [0, 0, 2, 2, 2], name);
    assertEquals(x.regionClasses, ["seven", "two", "seven", "small green three", "seven"], name);
    let r = 0;
    for (let i = 0; i < set.length; i++) {
      const sample = set.get(i) as Sample;
      const pre = preprocess(sample.image, sample.regions.map((g) => g.box), s);
      const image = await read(
        noGrad(() =>
          tidy(() => model.visual.features(model.visual.tokens(tensor(pre.pixels, [1, 3, s, s]))))
        ),
      );
      assertClose(`${name} image ${i}`, x.images.subarray(i * e, (i + 1) * e), image, 1e-4);
      for (const [k, region] of sample.regions.entries()) {
        const ids = tokenizer.encode(region.text, ctx);
        const box = Float32Array.from(pre.boxes[k]);
        assertClose(`${name} gt box ${r}`, x.gtBoxes.subarray(r * 4, r * 4 + 4), box, 1e-6);
        const [text, emb, pred] = await Promise.all(
          noGrad(() =>
            tidy(() => {
              const text = model.text.features(ids, 1);
              if (mode === "clip") {
                const crop = preprocess(cropImage(sample.image, region.box), [], s).pixels;
                return [text, model.visual.features(model.visual.tokens(tensor(crop, [1, 3, s, s])))];
              }
              const tokens = model.visual.tokens(tensor(pre.pixels, [1, 3, s, s]));
              const kv = model.prompter.imageKeysValues(tokens);
              const emb = model.prompter.regions(tokens, kv, box, 1, 1);
              return [text, emb, model.prompter.predictBoxes(kv, reshape(l2Normalize(text), [1, 1, e]))];
            })
          ).map(read),
        );
        assertClose(`${name} region text ${r}`, x.regionTexts.subarray(r * e, (r + 1) * e), text, 1e-4);
        assertClose(`${name} region ${r}`, x.regions.subarray(r * e, (r + 1) * e), emb, 1e-4);
        if (pred) {
          assertClose(`${name} predicted box ${r}`, x.predBoxes!.subarray(r * 4, r * 4 + 4), pred, 1e-4);
        }
        r++;
      }
    }
    assertEquals(x.predBoxes === null, mode === "clip", name);
    model.dispose();
  }
});

Deno.test("evaluate() on mosaic scenes reports every key as a fraction, for the Prompter, RoIAlign and CLIP", async () => {
  await gpu();
  const scenes = await MosaicDataset.open("digits", "test", 6, { canvas: 48, seed: 5 });
  const regions = Array.from({ length: 6 }, (_, i) => scenes.get(i).regions.length).reduce((a, b) => a + b);
  for (
    const [config, mode, method] of [
      [TINY_CONFIG, "cloc", "prompter"],
      [roiConfig, "cloc", "roialign"],
      [TINY_CONFIG, "clip", "crop"],
    ] as const
  ) {
    const model = new Cloc(config, new Rng(1));
    const report = await evaluate(model, scenes, tokenizer, { batchSize: 4, mode });
    checkReport(report, mode === "clip" ? ["grounding_acc50"] : []);
    assertEquals([report.n_images, report.n_regions, report.mode, report.region_method], [
      6,
      regions,
      mode,
      method,
    ]);
    assert(report.n_classes >= 1 && report.n_classes <= 10, `n_classes ${report.n_classes}`);
    assertEquals(report.region_unmatched, 0);
    model.dispose();
  }
});

Deno.test("evaluate() takes given class names, counts regions outside them, and refuses a foreign tokenizer", async () => {
  await gpu();
  const model = new Cloc(TINY_CONFIG, new Rng(2));
  const report = await evaluate(model, smallSet(), tokenizer, { classNames: ["seven", "two", "nine"] });
  assertEquals([report.n_classes, report.region_unmatched, report.n_regions], [3, 1, 5]);
  checkReport(report);
  const other = WordTokenizer.fromTexts(["a cat"]);
  let message = "";
  await evaluate(model, smallSet(), other).catch((e) => (message = e.message));
  assert(message.includes("tokenizer") && message.includes("eot_token_id 63"), message);
  message = "";
  await evaluate(model, { length: 0, get: () => ({}) as Sample }, tokenizer).catch((
    e,
  ) => (message = e.message));
  assert(message.includes("empty"), message);
  model.dispose();
});

Deno.test("evaluateRun() works on a region-text JSONL written in the documented format and saves eval.json", async () => {
  await gpu();
  const dir = await Deno.makeTempDir();
  try {
    const scenes = await MosaicDataset.open("fashion", "test", 2, { canvas: 40 });
    const records: RegionRecord[] = [];
    for (let i = 0; i < 2; i++) {
      const s = scenes.get(i);
      await Deno.writeFile(`${dir}/scene${i}.png`, encodePng(s.image));
      records.push({ image: `scene${i}.png`, caption: s.caption, regions: s.regions });
    }
    await Deno.writeFile(`${dir}/wide.png`, encodePng(randomImage(50, 20, 4)));
    records.push({
      image: "wide.png",
      caption: "a large purple bag",
      regions: [{ box: [5, 2, 30, 19], text: "large purple bag" }], // no label: its class is its text
    });
    records.push({ image: "wide.png", caption: "nothing here", regions: [] });
    await writeRegionJsonl(`${dir}/data.jsonl`, records);
    const { dataset, bad } = await openDataset({ kind: "jsonl", path: `${dir}/data.jsonl` });
    assertEquals(bad?.count, 0);

    const model = new Cloc(TINY_CONFIG, new Rng(4));
    const lines: string[] = [];
    const { report, markdown } = await evaluateRun(model, tokenizer, { mode: "cloc" }, dir, {
      data: `${dir}/data.jsonl`,
      batchSize: 3,
      log: (m) => lines.push(m),
    });
    const regions = records.reduce((a, r) => a + r.regions.length, 0);
    assertEquals([report.n_images, report.n_regions], [dataset.length, regions]);
    checkReport(report);
    const saved = JSON.parse(await Deno.readTextFile(`${dir}/eval.json`));
    for (const key of [...METRIC_KEYS, "adapter", "n_images", "n_regions"]) {
      assert(key in saved, `eval.json lacks ${key}`);
    }
    assertEquals(await Deno.readTextFile(`${dir}/eval.md`), markdown);
    assert(lines.some((l) => l.includes("data.jsonl")), lines.join("\n"));
    model.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openRun() and evalDataSpec() say what is missing or wrong", async () => {
  await gpu();
  const dir = await Deno.makeTempDir();
  const errorOf = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error("expected an error");
  };
  try {
    let m = await errorOf(openRun(`${dir}/missing`));
    assert(m.includes("Checkpoint not found") && m.includes("missing"), m);
    m = await errorOf(openRun(dir));
    assert(m.includes("no model.safetensors"), m);
    const model = new Cloc(TINY_CONFIG, new Rng(0));
    await saveModel(`${dir}/model.safetensors`, model); // no tokenizer in the metadata
    m = await errorOf(openRun(dir));
    assert(m.includes('no "tokenizer"'), m);
    await saveModel(`${dir}/model.safetensors`, model, { tokenizer: JSON.stringify(tokenizer.toJSON()) });
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ mode: "clip", data: "mosaic:fashion" }));
    const run = await openRun(`${dir}/model.safetensors`);
    assertEquals([run.dir, run.info?.mode, run.info?.data, run.tokenizer.eotId], [
      dir,
      "clip",
      "mosaic:fashion",
      63,
    ]);
    run.model.dispose();
    model.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const spec = evalDataSpec("mosaic:digits", { count: 7, canvas: 32 });
  assertEquals([spec.kind, (spec as { split: string }).split, (spec as { count: number }).count], [
    "mosaic",
    "test",
    7,
  ]);
  assertEquals(evalDataSpec("x/instances_val.json").kind, "coco");
  for (const bad of ["mosaic:letters", "data.csv"]) {
    let m = "";
    try {
      evalDataSpec(bad);
    } catch (e) {
      m = (e as Error).message;
    }
    assert(m.includes(bad.replace("mosaic:", "")), m);
  }
});

Deno.test("deno task eval --json prints exactly one JSON object on stdout", async () => {
  await gpu();
  const dir = await Deno.makeTempDir();
  try {
    const model = new Cloc(TINY_CONFIG, new Rng(0));
    await saveModel(`${dir}/model.safetensors`, model, { tokenizer: JSON.stringify(tokenizer.toJSON()) });
    model.dispose();
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({ mode: "cloc", data: "mosaic:digits", canvas: 32 }),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cli/eval.ts", "--ckpt", dir, "--json", "--count", "5", "--batch-size", "5"],
      cwd: ROOT,
      env: { XDG_RUNTIME_DIR: "/tmp" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout), stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    assertEquals(stdout.trim().split("\n").length, 1, stdout);
    const report = JSON.parse(stdout);
    checkReport(report);
    assertEquals(report.n_images, 5);
    assert(stderr.includes("evaluating"), stderr);
    assert((await Deno.stat(`${dir}/eval.md`)).isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
