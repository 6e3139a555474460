import { roiAlign } from "../src/ops/roi_align.ts";
import { noGrad, tensor, tidy } from "../src/tensor/tensor.ts";
import { backward } from "../src/tensor/autograd.ts";
import { Rng } from "../src/tensor/random.ts";
import { mean, sum } from "../src/ops/reduce.ts";
import { reshape } from "../src/ops/reshape.ts";
import { slice } from "../src/ops/slice.ts";
import { matmul } from "../src/ops/matmul.ts";
import { Cloc, type ClocBatch } from "../src/nn/model.ts";
import { type ClocConfig, TINY_CONFIG, validateConfig } from "../src/nn/config.ts";
import { clocLosses } from "../src/nn/losses.ts";
import { assert } from "./_assert.ts";
import { assertClose, checkOp, gpu, type Host } from "./_harness.ts";

/**
 * torchvision's roi_align(aligned=True) with a fixed sampling ratio, in f64, written the direct way (four
 * taps per sample) so that it checks the kernels' factorised weights independently.
 */
function roiAlignHost(features: Host, boxes: Host, p: number, s: number): Host {
  const [b, h, w, c] = features.shape;
  const m = boxes.shape[1];
  const f = features.data;
  const at = (n: number, y: number, x: number, k: number) => f[((n * h + y) * w + x) * c + k];
  const bilinear = (n: number, y: number, x: number, k: number) => {
    if (y < -1 || y > h || x < -1 || x > w) return 0;
    y = Math.max(y, 0);
    x = Math.max(x, 0);
    let yLo = Math.floor(y), xLo = Math.floor(x), yHi: number, xHi: number;
    if (yLo >= h - 1) {
      yLo = yHi = h - 1;
      y = yLo;
    } else yHi = yLo + 1;
    if (xLo >= w - 1) {
      xLo = xHi = w - 1;
      x = xLo;
    } else xHi = xLo + 1;
    const ly = y - yLo, lx = x - xLo, hy = 1 - ly, hx = 1 - lx;
    return hy * hx * at(n, yLo, xLo, k) + hy * lx * at(n, yLo, xHi, k) + ly * hx * at(n, yHi, xLo, k) +
      ly * lx * at(n, yHi, xHi, k);
  };
  const out = new Float64Array(b * m * p * p * c);
  for (let r = 0; r < b * m; r++) {
    const n = Math.floor(r / m);
    const [x0, y0, x1, y1] = boxes.data.slice(r * 4, r * 4 + 4);
    const sx = x0 * w - 0.5, sy = y0 * h - 0.5;
    const binW = (x1 - x0) * w / p, binH = (y1 - y0) * h / p;
    for (let ph = 0; ph < p; ph++) {
      for (let pw = 0; pw < p; pw++) {
        for (let k = 0; k < c; k++) {
          let acc = 0;
          for (let iy = 0; iy < s; iy++) {
            const y = sy + ph * binH + (iy + 0.5) * binH / s;
            for (let ix = 0; ix < s; ix++) {
              const x = sx + pw * binW + (ix + 0.5) * binW / s;
              acc += bilinear(n, y, x, k);
            }
          }
          out[((r * p + ph) * p + pw) * c + k] = acc / (s * s);
        }
      }
    }
  }
  return { data: out, shape: [b, m, p, p, c] };
}

Deno.test("roiAlign() matches the f64 reference and its gradient, boxes inside, across and outside the map", async () => {
  // Boxes: inside, tiny, touching the right/bottom edges, partly outside, wholly outside, inverted.
  const boxes = [
    [0.1, 0.2, 0.7, 0.9],
    [0.43, 0.51, 0.47, 0.55],
    [0.5, 0.6, 1, 1],
    [-0.3, -0.2, 0.4, 1.3],
    [1.6, 1.7, 2.1, 2.2],
    [0.8, 0.7, 0.3, 0.2],
  ].flat();
  for (const [p, s] of [[2, 2], [3, 1], [1, 3]]) {
    await checkOp({
      name: `roiAlign P=${p} S=${s}`,
      inputs: [{ shape: [2, 5, 4, 3] }, { shape: [2, 3, 4], data: boxes, noGrad: true }],
      gpu: (f, b) => roiAlign(f, b, { outputSize: p, samplingRatio: s }),
      cpu: (f, b) => roiAlignHost(f, b, p, s),
      gradTol: 1e-4,
    });
  }
});

Deno.test("roiAlign() handles a 1 x 1 map, one channel, odd sizes and a map larger than the bins", async () => {
  await checkOp({
    name: "roiAlign 1x1 map",
    inputs: [{ shape: [1, 1, 1, 1] }, {
      shape: [1, 2, 4],
      data: [0, 0, 1, 1, 0.2, 0.1, 0.6, 0.9],
      noGrad: true,
    }],
    gpu: (f, b) => roiAlign(f, b),
    cpu: (f, b) => roiAlignHost(f, b, 2, 2),
    gradTol: 1e-4,
  });
  await checkOp({
    name: "roiAlign 3 images, 7x9 map, 5 channels",
    inputs: [
      { shape: [3, 7, 9, 5] },
      {
        shape: [3, 1, 4],
        data: [0.05, 0.1, 0.95, 0.3, 0.33, 0.25, 0.61, 0.77, 0, 0, 1, 1],
        noGrad: true,
      },
    ],
    gpu: (f, b) => roiAlign(f, b, { outputSize: 3, samplingRatio: 2 }),
    cpu: (f, b) => roiAlignHost(f, b, 3, 2),
    gradTol: 1e-4,
  });
});

Deno.test("roiAlign() with no boxes gives an empty output and a zero gradient", async () => {
  await checkOp({
    name: "roiAlign M=0",
    inputs: [{ shape: [2, 3, 3, 2] }, { shape: [2, 0, 4], data: [], noGrad: true }],
    gpu: (f, b) => roiAlign(f, b),
    cpu: (f, b) => roiAlignHost(f, b, 2, 2),
  });
});

Deno.test("roiAlign() gradient of overlapping boxes sums every box's share, identically on every run", async () => {
  await gpu();
  const data = Float32Array.from({ length: 4 * 4 * 2 }, (_, i) => Math.sin(i));
  const boxes = [0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.3, 0.2, 0.6, 0.8];
  const run = async () => {
    const f = tensor(data, [1, 4, 4, 2], { requiresGrad: true });
    tidy(() => backward(sum(roiAlign(f, tensor(boxes, [1, 3, 4]), { outputSize: 2, samplingRatio: 3 }))));
    const grad = await f.grad!.toArray();
    f.grad!.dispose();
    f.dispose();
    return grad;
  };
  const a = await run(), b = await run();
  assertClose("repeat run", a, b, 0);
  // d sum(out) / d f: each of the 3 boxes spreads a total weight of P*P = 4 per channel over the map.
  let total = 0;
  for (let i = 0; i < a.length; i += 2) total += a[i];
  assertClose("total weight per channel", [total], [12], 1e-5);
});

Deno.test("roiAlign() rejects a boxes tensor that does not match the features, naming both shapes", async () => {
  await gpu();
  const messages: string[] = [];
  for (
    const [fs, bs] of [
      [[2, 3, 3, 4], [3, 1, 4]],
      [[2, 3, 3, 4], [2, 1, 5]],
      [[3, 3, 4], [3, 1, 4]],
    ]
  ) {
    try {
      tidy(() =>
        roiAlign(
          tensor(new Float32Array(fs.reduce((x, y) => x * y)), fs),
          tensor(new Float32Array(bs.reduce((x, y) => x * y)), bs),
        )
      );
      messages.push("no error");
    } catch (e) {
      messages.push((e as Error).message);
    }
  }
  for (const [i, msg] of messages.entries()) {
    if (!msg.startsWith("roiAlign:")) throw new Error(`case ${i}: ${msg}`);
  }
  if (!messages[0].includes("[3, 1, 4]") || !messages[0].includes("[2, 3, 3, 4]")) {
    throw new Error(messages[0]);
  }
  if (!messages[2].includes("[B, H, W, C]")) throw new Error(messages[2]);
  let badBins = "";
  try {
    tidy(() =>
      roiAlign(tensor(new Float32Array(4), [1, 2, 2, 1]), tensor([0, 0, 1, 1], [1, 1, 4]), { outputSize: 9 })
    );
  } catch (e) {
    badBins = (e as Error).message;
  }
  if (!badBins.includes("outputSize") || !badBins.includes("9")) throw new Error(badBins);
});

Deno.test("a Cloc with prompter.kind roialign pools patch tokens and trains them through the region loss", async () => {
  await gpu();
  const config: ClocConfig = { ...TINY_CONFIG, prompter: { ...TINY_CONFIG.prompter, kind: "roialign" } };
  const model = new Cloc(config, new Rng(2));
  const { image_size: s } = config.vision, { context_length: ctx, vocab_size: vocab } = config.text;
  const b = 2, m = 2, rng = new Rng(3);
  const batch: ClocBatch = {
    batchSize: b,
    maxRegions: m,
    images: rng.normals(b * 3 * s * s),
    text: Int32Array.from({ length: b * ctx }, () => rng.int(vocab)),
    regionBoxes: Float32Array.from([0.1, 0.1, 0.5, 0.6, 0.4, 0.3, 0.9, 0.9, 0, 0, 1, 1, 0.2, 0.5, 0.4, 0.7]),
    regionText: Int32Array.from({ length: b * m * ctx }, () => rng.int(vocab)),
    regionValid: Float32Array.from([1, 1, 1, 0]),
  };
  const [loss, direct, region] = tidy(() => {
    const out = model.forward(batch);
    const losses = clocLosses(out, batch, model.logitScale, config.loss);
    backward(losses.loss);
    // The same embedding by hand: RoIAlign over T_img[:, 1:] as a [B, g, g, W] map, mean, ln_post, proj.
    const tokens = noGrad(() => model.visual.tokens(tensor(batch.images, [b, 3, s, s])));
    const g = s / config.vision.patch_size, w = config.vision.width;
    const map = reshape(slice(tokens, 1, 1), [b, g, g, w]);
    const pooled = mean(roiAlign(map, tensor(batch.regionBoxes, [b, m, 4])), [2, 3]);
    const direct = noGrad(() => matmul(model.prompter.lnPost.forward(pooled), model.prompter.proj));
    return [losses.loss, direct, out.regionFeatures!];
  });
  const value = await loss.item();
  assert(Number.isFinite(value), `loss ${value}`);
  assertClose("roialign region features", await region.toArray(), await direct.toArray(), 1e-5);
  const grads = new Map(model.namedParameters().map(([n, t]) => [n, t.grad]));
  assert(
    grads.get("prompter.proj") !== null && grads.get("prompter.ln_post.weight") !== null,
    "head gets grads",
  );
  assert(
    grads.get("visual.transformer.resblocks.1.mlp.c_proj.weight") !== null,
    "the image tower gets grads",
  );
  assert(grads.get("prompter.corner_embed") === null, "the box prompt is unused with RoIAlign");
  for (const t of [loss, direct, region]) t.dispose();
  for (const g of grads.values()) g?.dispose();
  model.dispose();
  let message = "";
  try {
    validateConfig({ ...TINY_CONFIG, prompter: { heads: 1, mlp_ratio: 4, kind: "pool" as "block" } });
  } catch (e) {
    message = (e as Error).message;
  }
  assert(message.includes('prompter.kind must be "block" or "roialign", got "pool"'), message);
});
