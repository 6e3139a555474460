import { assert, assertEquals } from "./_assert.ts";
import { assertClose, gpu } from "./_harness.ts";
import * as ops from "../mod.ts";
import { Cloc, type ClocBatch } from "../src/nn/model.ts";
import { TINY_CONFIG, validateConfig } from "../src/nn/config.ts";
import { F16_TOLERANCE, runParity } from "../src/train/parity.ts";
import { loadModel, saveModel } from "../src/io/checkpoint.ts";

const GOLDEN = new URL("../../shared/golden/", import.meta.url);
const OWN_BUNDLES = new URL("./golden/", import.meta.url);

async function bundles(): Promise<URL[]> {
  const found = [new URL("tiny.safetensors", GOLDEN)];
  try {
    for await (const entry of Deno.readDir(OWN_BUNDLES)) {
      if (entry.name.endsWith(".safetensors")) found.push(new URL(entry.name, OWN_BUNDLES));
    }
  } catch {
    // no bundles of our own yet
  }
  return found;
}

Deno.test("the model matches every PyTorch reference bundle to 1e-3 (forward, gradients, one AdamW step)", async () => {
  await gpu();
  for (const url of await bundles()) {
    const report = await runParity(await Deno.readFile(url), url.pathname);
    const failed = report.rows.filter((r) => !r.ok).map((r) => `${r.name} ${r.relError.toExponential(2)}`);
    assertEquals(failed, [], `${url.pathname}: tensors over ${report.tolerance}`);
    assert(report.rows.length > 50, `${url.pathname}: only ${report.rows.length} tensors compared`);
  }
});

Deno.test("with f16 storage the model matches every bundle within the documented looser tolerance", async () => {
  const device = await gpu();
  if (!device.hasF16) return; // the adapter offers no shader-f16: there is no f16 path to check
  for (const url of await bundles()) {
    const bytes = await Deno.readFile(url);
    const report = await runParity(bytes, url.pathname, F16_TOLERANCE, "f16");
    const failed = report.rows.filter((r) => !r.ok).map((r) => `${r.name} ${r.relError.toExponential(2)}`);
    assertEquals(failed, [], `${url.pathname}: tensors over the f16 tolerance`);
    // The f16 path really runs: its outputs are not the f32 ones.
    const loss = (r: typeof report) => r.rows.find((row) => row.name === "expect.loss")!.relError;
    assert(loss(report) > 1e-6, `${url.pathname}: f16 loss error ${loss(report)} is f32's`);
  }
});

function randomBatch(b: number, m: number, seed: number): ClocBatch {
  const rng = new ops.Rng(seed);
  const { image_size: s } = TINY_CONFIG.vision;
  const { context_length: ctx, vocab_size: vocab } = TINY_CONFIG.text;
  const boxes = new Float32Array(b * m * 4);
  for (let i = 0; i < b * m; i++) {
    const x0 = rng.uniform() * 0.5, y0 = rng.uniform() * 0.5;
    boxes.set([x0, y0, x0 + 0.1 + rng.uniform() * 0.4, y0 + 0.1 + rng.uniform() * 0.4], i * 4);
  }
  return {
    batchSize: b,
    maxRegions: m,
    images: rng.normals(b * 3 * s * s),
    text: Int32Array.from({ length: b * ctx }, () => rng.int(vocab)),
    regionBoxes: boxes,
    regionText: Int32Array.from({ length: b * m * ctx }, () => rng.int(vocab)),
    regionValid: Float32Array.from({ length: b * m }, (_, i) => (i % 3 === 2 ? 0 : 1)),
  };
}

Deno.test("the Prompter's cached image keys and values give the same outputs as the block over the full sequence", async () => {
  await gpu();
  const model = new Cloc({ ...TINY_CONFIG, prompter: { heads: 2, mlp_ratio: 4 } }, new ops.Rng(5));
  const batch = randomBatch(3, 2, 7);
  const [fast, full] = ops.tidy(() => {
    const tokens = model.visual.tokens(ops.tensor(batch.images, [3, 3, 32, 32])); // [B, N, W]
    const [b, n, w] = tokens.shape;
    const m = 2, p = 2;
    const prompts = ops.tensor(new ops.Rng(9).normals(b * m * p * w), [b, m, p, w]);
    const fast = model.prompter.promptBlock(prompts, model.prompter.imageKeysValues(tokens));
    // The spec's definition: block([prompts, T_img[b]]) for each slot, read at the prompt rows.
    const image = ops.broadcastTo(ops.reshape(tokens, [b, 1, n, w]), [b, m, n, w]);
    const seq = ops.reshape(ops.concat([prompts, image], 2), [b * m, p + n, w]);
    const out = model.prompter.block.forward(seq);
    const full = ops.reshape(ops.slice(out, 1, 0, p), [b, m, p, w]);
    return [fast, full];
  });
  assertClose("prompt outputs", await fast.toArray(), await full.toArray(), 1e-5);
  fast.dispose();
  full.dispose();
  model.dispose();
});

Deno.test("100 CLOC training steps: one submit each, no readback, no new bind group and no new memory once warm", async () => {
  const device = await gpu();
  const model = new Cloc(TINY_CONFIG, new ops.Rng(2));
  const opt = new ops.AdamW(model.namedParameters().map(([name, tensor]) => ({ name, tensor })));
  const batch = randomBatch(2, 2, 3);
  const created: number[] = [];
  let warm = device.memory;
  for (let i = 0; i < 100; i++) {
    if (i === 3) warm = device.memory;
    device.resetCounters();
    ops.tidy(() => {
      const out = model.forward(batch);
      ops.backward(ops.clocLosses(out, batch, model.logitScale, model.config.loss).loss);
      opt.step(1e-3);
      opt.zeroGrad(); // before the next step, as the trainer does
    });
    device.flush();
    created.push(device.counters.bindGroups);
    assertEquals([device.counters.submits, device.counters.readbacks], [1, 0], `step ${i + 1}`);
  }
  await device.sync();
  assert(created[0] > 50, `the first step builds its bind groups: ${created.slice(0, 5)}`);
  assertEquals(created.slice(3).filter((n) => n > 0), [], "bind groups built after the third step");
  const end = device.memory;
  assertEquals(
    [end.liveBytes, end.inUseBytes],
    [warm.liveBytes, warm.inUseBytes],
    "GPU memory after 100 steps",
  );
  opt.dispose();
  model.dispose();
});

Deno.test("a saved model loads back with bit-identical parameters and the same outputs", async () => {
  await gpu();
  const dir = await Deno.makeTempDir();
  const model = new Cloc(TINY_CONFIG, new ops.Rng(1));
  await saveModel(`${dir}/model.safetensors`, model, { note: "round trip" });
  const { model: loaded, metadata } = await loadModel(`${dir}/model.safetensors`);
  assertEquals(metadata.note, "round trip");
  const before = await model.stateDict(), after = await loaded.stateDict();
  assertEquals([...after.keys()], [...before.keys()]);
  for (const [name, t] of before) {
    const a = new Uint32Array(t.data.buffer), b = new Uint32Array(after.get(name)!.data.buffer);
    assert(a.length === b.length && a.every((v, i) => v === b[i]), `${name} differs after the round trip`);
  }
  model.dispose();
  loaded.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loading refuses a checkpoint with a missing, extra or wrongly shaped tensor, naming each", async () => {
  await gpu();
  const model = new Cloc(TINY_CONFIG, new ops.Rng(1));
  const values = await model.stateDict();
  values.delete("visual.proj");
  values.set("visual.extra", { shape: [1], data: new Float32Array(1) });
  values.set("ln_final.weight", { shape: [31], data: new Float32Array(31) });
  let message = "";
  try {
    model.loadParameters(values, { source: "bad.safetensors" });
  } catch (e) {
    message = (e as Error).message;
  }
  for (
    const part of [
      "bad.safetensors",
      `missing "visual.proj"`,
      `unexpected "visual.extra"`,
      `"ln_final.weight" has shape [31]`,
    ]
  ) {
    assert(message.includes(part), `"${part}" not in: ${message}`);
  }
  model.dispose();
});

Deno.test("validateConfig() says what to change for a config that cannot work", () => {
  const bad = {
    ...TINY_CONFIG,
    vision: { ...TINY_CONFIG.vision, patch_size: 5, heads: 3 },
    text: { ...TINY_CONFIG.text, eot_token_id: 64 },
  };
  let message = "";
  try {
    validateConfig(bad);
  } catch (e) {
    message = (e as Error).message;
  }
  assert(message.includes("vision.image_size 32 is not divisible by vision.patch_size 5"), message);
  assert(message.includes("vision.width 32 is not divisible by vision.heads 3"), message);
  assert(message.includes("text.eot_token_id 64"), message);
});
