/**
 * Micro-benchmarks of the pieces of a CLOC training step, each next to the same work in tfjs-backend-webgpu
 * on the same adapter (the baseline of its group) where tfjs has it:
 *
 *   XDG_RUNTIME_DIR=/tmp deno bench -A bench/step_bench.ts
 *
 * Shapes are near the benchmark model's (cli/bench.ts `BENCH_CONFIG`: widths 64, 4 heads, B = 32, M = 4):
 * 544 image tokens [32, 17, 64], and about 2560 text tokens at most (the towers run each caption batch up
 * to its longest caption). Every iteration records its work and waits once for the GPU
 * (`gpu.sync()`, or a one-element readback for tfjs), which costs >= 10 ms in Deno: small ops repeat
 * within an iteration (the count is in the name) so that the wait stays small next to the work. For the
 * side-by-side numbers with checks, use `deno task bench`.
 *
 * @module
 */

import { requestGpu } from "../src/gpu/device.ts";
import { keep, setGpu, type Tensor, tensor, tidy } from "../src/tensor/tensor.ts";
import { backward } from "../src/tensor/autograd.ts";
import { Rng } from "../src/tensor/random.ts";
import { matmul } from "../src/ops/matmul.ts";
import { gelu, scale } from "../src/ops/unary.ts";
import { softmax } from "../src/ops/softmax.ts";
import { layerNorm } from "../src/ops/layer_norm.ts";
import { sum } from "../src/ops/reduce.ts";
import { Cloc } from "../src/nn/model.ts";
import { clocLosses } from "../src/nn/losses.ts";
import { BENCH_BATCH, BENCH_CONFIG, benchOptimizer, clocgpuStep, randomBatch } from "../cli/bench.ts";
import { initTfjsWebgpu, tf, TfjsCloc, tfjsSync } from "./_tfjs_cloc.ts";

const gpu = await requestGpu();
setGpu(gpu);
await initTfjsWebgpu();
const adapter = `${gpu.info.description || gpu.info.vendor}${gpu.isFallbackAdapter ? ", fallback" : ""}`;
console.error(`step_bench on ${adapter}`);

const rng = new Rng(3);
const randoms = (n: number) => Float32Array.from({ length: n }, () => rng.uniform() * 2 - 1);

/** A clocgpu tensor and a tfjs tensor holding the same random values. */
function pair(shape: number[], requiresGrad = false): [Tensor, tf.Tensor] {
  const data = randoms(shape.reduce((a, b) => a * b, 1));
  return [keep(tensor(data, shape, { requiresGrad })), tf.tensor(data, shape)];
}

/** Registers clocgpu's `ours` (repeated `reps` times, then a sync) against tfjs's `theirs` (the baseline). */
function sideBySide(
  group: string,
  reps: number,
  ours: () => void,
  theirs: (() => tf.Tensor) | null,
  options: { n?: number; warmup?: number } = {},
): void {
  Deno.bench({
    name: `clocgpu ${group} (x${reps} per iteration)`,
    group,
    ...options,
    fn: async () => {
      tidy(() => {
        for (let r = 0; r < reps; r++) ours();
      });
      await gpu.sync();
    },
  });
  if (theirs === null) return;
  Deno.bench({
    name: `tfjs-backend-webgpu ${group} (x${reps} per iteration)`,
    group,
    baseline: true,
    ...options,
    fn: async () => {
      const last = tf.tidy(() => {
        let out = theirs();
        for (let r = 1; r < reps; r++) out = theirs();
        return out;
      });
      await tfjsSync(last);
      last.dispose();
    },
  });
}

/** Clears the leaves' accumulated gradients, so repeated backward passes do not pile them up. */
function clearGrads(...xs: Tensor[]): void {
  for (const x of xs) {
    x.grad?.dispose();
    x.grad = null;
  }
}

// matmul: a square product, and the linear layers' shapes (tokens x width @ width x 4*width).
for (const n of [256, 512]) {
  const [a, ta] = pair([n, n]);
  const [b, tb] = pair([n, n]);
  sideBySide(`matmul ${n}x${n}x${n}`, n === 256 ? 16 : 4, () => matmul(a, b), () => tf.matMul(ta, tb));
}
{
  const [x, tx] = pair([2560, 64]);
  const [w, tw] = pair([256, 64]);
  sideBySide(
    "linear [2560, 64] -> 256 (x W^T)",
    8,
    () => matmul(x, w, { transposeB: true }),
    () => tf.matMul(tx, tw, false, true),
  );
}

// Attention forward + backward at the image tower's shape: [B, H, T, d] = [32, 4, 17, 16].
{
  const shape = [32, 4, 17, 16];
  const [q, tq] = pair(shape, true);
  const [k, tk] = pair(shape, true);
  const [v, tv] = pair(shape, true);
  const [dy, tdy] = pair(shape);
  const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
    tf.matMul(tf.softmax(tf.mul(tf.matMul(a, b, false, true), 16 ** -0.5)), c)
  );
  sideBySide("attention fwd+bwd [32, 4, 17, 16]", 8, () => {
    clearGrads(q, k, v);
    backward(matmul(softmax(scale(matmul(q, k, { transposeB: true }), 16 ** -0.5)), v), dy);
  }, () => grads([tq, tk, tv], tdy)[0]);
}

// Layer norm and GELU forward + backward over the text tokens: [160 * 16, 64].
{
  const [x, tx] = pair([2560, 64], true);
  const [g, tg] = pair([64], true);
  const [bias, tbias] = pair([64], true);
  const lnGrads = tf.grads((a: tf.Tensor, w: tf.Tensor, c: tf.Tensor) => {
    const { mean, variance } = tf.moments(a, -1, true);
    return tf.sum(tf.add(tf.mul(tf.mul(tf.sub(a, mean), tf.rsqrt(tf.add(variance, 1e-5))), w), c));
  });
  sideBySide("layer norm fwd+bwd [2560, 64]", 8, () => {
    clearGrads(x, g, bias);
    backward(sum(layerNorm(x, g, bias)));
  }, () => lnGrads([tx, tg, tbias])[0]);
  const geluGrad = tf.grad((a: tf.Tensor) =>
    tf.sum(tf.mul(tf.mul(a, 0.5), tf.add(1, tf.erf(tf.mul(a, Math.SQRT1_2)))))
  );
  sideBySide("gelu fwd+bwd [2560, 64]", 8, () => {
    clearGrads(x);
    backward(sum(gelu(x)));
  }, () => geluGrad(tx));
}

// The whole model: a forward pass with the losses, and a training step (AdamW included).
{
  const batch = randomBatch(BENCH_CONFIG, { ...BENCH_BATCH, seed: 1 });
  const model = new Cloc(BENCH_CONFIG, new Rng(0));
  const opt = benchOptimizer(model);
  const peer = new TfjsCloc(BENCH_CONFIG, await model.stateDict());
  const slow = { n: 3, warmup: 1 };
  sideBySide(
    "CLOC forward + losses, B=32 M=4",
    1,
    () => clocLosses(model.forward(batch), batch, model.logitScale, BENCH_CONFIG.loss),
    () => peer.losses(batch).loss,
    slow,
  );
  Deno.bench({
    name: "clocgpu CLOC training step, B=32 M=4",
    group: "CLOC training step, B=32 M=4",
    ...slow,
    fn: async () => {
      clocgpuStep(model, opt, batch, 1e-3).dispose();
      await gpu.sync();
    },
  });
  Deno.bench({
    name: "tfjs-backend-webgpu CLOC training step, B=32 M=4",
    group: "CLOC training step, B=32 M=4",
    baseline: true,
    ...slow,
    fn: async () => {
      const loss = peer.trainStep(batch, 1e-3);
      await tfjsSync(loss);
      loss.dispose();
    },
  });
}
