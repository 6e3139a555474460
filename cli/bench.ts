/**
 * `deno task bench`: clocgpu side by side with its peers, in one run on one adapter.
 *
 *   deno task bench [--quick] [--json] [--out bench/results] [--python /usr/bin/python3]
 *
 * What is measured (each figure next to the same work done by the peers):
 * - matmul GFLOP/s of square f32 products (256, 512, 1024, and 2048 without --quick) and of the transposed
 *   products the backward pass uses: clocgpu's `matmul` against `tf.matMul` of tfjs-backend-webgpu on the
 *   same adapter. Both results are compared with each other (and sampled entries with an f64 reference)
 *   before anything is timed.
 * - attention forward + backward, clocgpu's composed attention (matmul, softmax, matmul; no fused kernel
 *   yet) against the same composition in tfjs, checked against each other first.
 * - a CLOC training step of the benchmark model ({@link BENCH_CONFIG}, B = 32, M = 4): clocgpu, the tfjs
 *   peer (`bench/_tfjs_cloc.ts`) and a PyTorch CPU peer (`bench/_torch_cloc.py`, 2 threads), all from the
 *   same parameters and batch. Their losses at init are compared before timing.
 *
 * How: every timed iteration records its work and then waits once for the GPU (`gpu.sync()` for clocgpu,
 * a one-element readback for tfjs). A wait costs >= 10 ms in Deno, so small work is repeated within an
 * iteration to keep that cost small next to it; the best of a few iterations is kept. Training steps run
 * back to back with their losses kept on the GPU and one wait at the end.
 *
 * Prints a table (or, with --json, one JSON object on stdout), writes the JSON to
 * `<out>/<date>-<adapter>[-quick].json`, and logs progress with the adapter on stderr.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type Dispatch, type Gpu, requestGpu } from "../src/gpu/device.ts";
import { keep, setGpu, type Tensor, tensor, tidy, zeros } from "../src/tensor/tensor.ts";
import { backward } from "../src/tensor/autograd.ts";
import { Rng } from "../src/tensor/random.ts";
import { matmul, tuneMatmul } from "../src/ops/matmul.ts";
import { attention } from "../src/ops/attention.ts";
import { scale } from "../src/ops/unary.ts";
import { add } from "../src/ops/binary.ts";
import { softmax } from "../src/ops/softmax.ts";
import { maskedFill } from "../src/ops/where.ts";
import type { ClocConfig } from "../src/nn/config.ts";
import { PRESETS } from "../src/train/config.ts";
import { parityError } from "../src/train/parity.ts";
import { Cloc, type ClocBatch } from "../src/nn/model.ts";
import { clocLosses } from "../src/nn/losses.ts";
import { AdamW } from "../src/optim/adamw.ts";
import { serializeSafetensors } from "../src/io/safetensors.ts";
import { initTfjsWebgpu, tf, type TfjsAdapter, TfjsCloc, tfjsSync } from "../bench/_tfjs_cloc.ts";

// ---------------------------------------------------------------------------------------------------------
// Options

const USAGE = `deno task bench [options]
  --quick          about a minute on a software driver: fewer sizes, steps and repeats (default: off)
  --json           print one JSON object on stdout instead of the table (default: off)
  --out DIR        where the JSON is saved (default: bench/results)
  --python PATH    the Python with torch for the CPU peer (default: /usr/bin/python3)
  --help           this text`;

/** How much work each part does; `--quick` picks the small plan. */
interface Plan {
  matmulSizes: number[];
  /** n of the transposed (backward-pass) products. */
  transposedSize: number;
  attention: AttentionShape[];
  /** Best of this many timed iterations for kernels. */
  repeats: number;
  /** Untimed, then timed training steps of clocgpu (a round). */
  warmupSteps: number;
  steps: number;
  /** Timed training steps of the tfjs peer (a round, after one untimed step). */
  tfjsSteps: number;
  /** Rounds of timed steps, clocgpu's and tfjs's in turn; the best of each counts. */
  rounds: number;
  /** Timed training steps of the PyTorch peer (after one untimed step). */
  torchSteps: number;
}

/** One attention problem: q, k, v of `[b, h, t, d]`. */
interface AttentionShape {
  name: string;
  b: number;
  h: number;
  t: number;
  d: number;
  causal: boolean;
}

const VIT: AttentionShape = { name: "image tower", b: 32, h: 4, t: 17, d: 16, causal: false };
const TEXT: AttentionShape = { name: "text tower", b: 160, h: 4, t: 16, d: 16, causal: true };
const LONG: AttentionShape = { name: "long causal", b: 8, h: 4, t: 256, d: 64, causal: true };

const QUICK: Plan = {
  matmulSizes: [256, 512, 1024],
  transposedSize: 512,
  attention: [VIT, TEXT],
  repeats: 3,
  warmupSteps: 4,
  steps: 3,
  tfjsSteps: 1,
  rounds: 2,
  torchSteps: 3,
};
const FULL: Plan = {
  matmulSizes: [256, 512, 1024, 2048],
  transposedSize: 1024,
  attention: [VIT, TEXT, LONG],
  repeats: 3,
  warmupSteps: 4,
  steps: 10,
  tfjsSteps: 2,
  rounds: 3,
  torchSteps: 10,
};

// ---------------------------------------------------------------------------------------------------------
// The benchmark model, batch and step (also used by bench/step_bench.ts)

const PRESET = PRESETS["cpu-tiny"];

/**
 * The benchmark model: the model of `deno task train`'s default preset (`cpu-tiny`: image 32, patch 8,
 * widths 64, 2 layers, 4 heads, text context 32, embedding 64), with a vocabulary of 100 (the preset takes
 * its own from the tokenizer). Small enough for tfjs's step to stay within seconds on a software driver.
 *
 * @example
 * ```ts ignore
 * import { BENCH_CONFIG } from "./bench.ts";
 * console.log(BENCH_CONFIG.vision.width); // 64
 * ```
 */
export const BENCH_CONFIG: ClocConfig = {
  ...structuredClone(PRESET.model),
  text: { ...PRESET.model.text, vocab_size: 100, eot_token_id: 99 },
};

/**
 * The benchmark batch: the default preset's B images with M region slots each (32 and 4).
 *
 * @example
 * ```ts ignore
 * import { BENCH_BATCH } from "./bench.ts";
 * console.log(BENCH_BATCH.batchSize); // 32
 * ```
 */
export const BENCH_BATCH: { batchSize: number; maxRegions: number } = {
  batchSize: PRESET.batchSize,
  maxRegions: PRESET.maxRegions,
};

/**
 * A random batch shaped like the mosaic data's: normal images, captions of 8-14 tokens and region
 * captions of 2-5 tokens (each ending in EOT, then padding), 1 to M valid boxes per image.
 *
 * @param config The model config (image size, context, vocabulary, EOT id).
 * @param options `batchSize`, `maxRegions` and the `seed`.
 * @returns A host batch.
 *
 * @example
 * ```ts ignore
 * import { BENCH_CONFIG, randomBatch } from "./bench.ts";
 * const batch = randomBatch(BENCH_CONFIG, { batchSize: 4, maxRegions: 2, seed: 1 });
 * console.log(batch.text.length); // 4 * 32 (B * ctx)
 * ```
 */
export function randomBatch(
  config: ClocConfig,
  options: { batchSize: number; maxRegions: number; seed?: number },
): ClocBatch {
  const { batchSize: b, maxRegions: m } = options;
  const rng = new Rng(options.seed ?? 1);
  const s = config.vision.image_size;
  const { context_length: ctx, vocab_size: vocab, eot_token_id: eot } = config.text;
  const caption = (out: Int32Array, at: number, words: number) => {
    const n = Math.min(words, ctx - 1);
    for (let i = 0; i < n; i++) {
      let id = rng.int(vocab - 1);
      if (id >= eot) id++; // any id but EOT
      out[at + i] = id;
    }
    out[at + n] = eot; // then padding (0) up to ctx
  };
  const text = new Int32Array(b * ctx);
  for (let i = 0; i < b; i++) caption(text, i * ctx, 7 + rng.int(7));
  const regionText = new Int32Array(b * m * ctx);
  for (let i = 0; i < b * m; i++) caption(regionText, i * ctx, 1 + rng.int(4));
  const regionBoxes = new Float32Array(b * m * 4);
  for (let i = 0; i < b * m; i++) {
    const x0 = rng.uniform() * 0.6, y0 = rng.uniform() * 0.6;
    regionBoxes.set([x0, y0, x0 + 0.1 + rng.uniform() * 0.3, y0 + 0.1 + rng.uniform() * 0.3], i * 4);
  }
  const regionValid = new Float32Array(b * m);
  for (let i = 0; i < b; i++) regionValid.fill(1, i * m, i * m + 1 + rng.int(m));
  return {
    batchSize: b,
    maxRegions: m,
    images: rng.normals(b * 3 * s * s),
    text,
    regionBoxes,
    regionText,
    regionValid,
  };
}

/**
 * Records one clocgpu training step, as a training loop writes it: forward, losses, backward and AdamW in
 * one `tidy` scope. Nothing is submitted yet (see {@link clocgpuStep}) and nothing is read back.
 *
 * @param model The model.
 * @param opt An AdamW over the model's parameters.
 * @param batch The host batch.
 * @param lr The learning rate.
 * @returns The step's loss (0-dim, on the GPU; the caller disposes it).
 *
 * @example
 * ```ts ignore
 * const loss = recordStep(model, opt, batch, 1e-3);
 * gpu.flush();
 * ```
 */
export function recordStep(model: Cloc, opt: AdamW, batch: ClocBatch, lr: number): Tensor {
  return tidy(() => {
    opt.zeroGrad();
    const out = model.forward(batch);
    const l = clocLosses(out, batch, model.logitScale, model.config.loss);
    backward(l.loss);
    opt.step(lr);
    opt.zeroGrad(); // now, not at the next step: the next step then gets the same pool buffers (see BufferPool)
    return l.loss;
  });
}

/**
 * One clocgpu training step: {@link recordStep}, then one submit.
 *
 * @param model The model.
 * @param opt An AdamW over the model's parameters.
 * @param batch The host batch.
 * @param lr The learning rate.
 * @returns The step's loss (0-dim, on the GPU; the caller disposes it).
 *
 * @example
 * ```ts ignore
 * const loss = clocgpuStep(model, opt, batch, 1e-3);
 * console.log(await loss.item());
 * ```
 */
export function clocgpuStep(model: Cloc, opt: AdamW, batch: ClocBatch, lr: number): Tensor {
  const loss = recordStep(model, opt, batch, lr);
  model.logitScale.gpu.flush();
  return loss;
}

/**
 * The AdamW of the spec (lr 1e-3, betas 0.9/0.98, eps 1e-6, decay 0.2 on 2+ dims) over a model, with
 * `logit_scale` clamped to [0, logit_scale_max].
 *
 * @param model The model.
 * @returns The optimizer.
 *
 * @example
 * ```ts ignore
 * const opt = benchOptimizer(model);
 * ```
 */
export function benchOptimizer(model: Cloc): AdamW {
  const params = model.namedParameters().map(([name, t]) => ({ name, tensor: t }));
  return new AdamW(params, { clamp: { logit_scale: [0, model.config.loss.logit_scale_max] } });
}

// ---------------------------------------------------------------------------------------------------------
// Results

/** The adapter, as WebGPU describes it. */
interface AdapterReport {
  description: string;
  vendor: string;
  architecture: string;
  device: string;
  fallback: boolean;
}

interface MatmulRow {
  n: number;
  /** `"A @ B"`, `"A^T @ B"` (the weight gradient's shape) or `"A @ B^T"` (the input gradient's). */
  op: string;
  ours_gflops: number;
  tfjs_gflops: number;
  /** ours / tfjs. */
  ratio: number;
  /** Max-abs difference between the two results over the max-abs value. */
  rel_diff: number;
}

interface AttentionRow {
  name: string;
  shape: [number, number, number, number];
  causal: boolean;
  /** Our `attention()` op, as the model calls it (fused where it pays on this adapter). */
  ours_ms: number;
  /** Our composition of matmul, softmax and maskedFill (the unfused path). */
  ours_unfused_ms: number;
  tfjs_ms: number;
  ratio: number;
  rel_diff: number;
}

interface StepReport {
  config: ClocConfig;
  batch_size: number;
  max_regions: number;
  parameters: number;
  images_per_s: number;
  ms_per_step: number;
  /** The same step with `--precision f16` (f16 copies of the linear layers' operands); null without f16. */
  f16_images_per_s: number | null;
  /** JS time to record a step (the `tidy` scope); the rest of the wall time is the device's. */
  js_ms_per_step: number;
  /** Time inside `gpu.flush()` (the submit; blocks when the driver makes it wait for earlier work). */
  submit_ms_per_step: number;
  /** One forward pass and the losses, alone (submitted and waited for), for the forward/backward split. */
  forward_ms: number;
  submits: number;
  readbacks: number;
  dispatches: number;
  bind_groups: number;
  /** Live pool bytes (in use or free in the pool) after the timed steps. */
  gpu_bytes: number;
  /** Bytes of live tensors after the timed steps (parameters, gradients, AdamW moments). */
  gpu_bytes_in_use: number;
  /** Live pool bytes after the timed steps minus before them (0 when the pool has settled). */
  gpu_bytes_growth: number;
  /** Whether the bytes in use after the timed steps, their losses freed, equal those before them. */
  memory_flat: boolean;
  /** Microseconds per dispatch of a tiny kernel (a 64-element add), recorded 1000 in one submit. */
  tiny_dispatch_us: number;
  /**
   * Per kernel entry point: its dispatches in one step and their GPU time from timestamp queries over a
   * replay of the step (see `profileDispatches`), most time first; null without `timestamp-query`.
   */
  gpu_ms_by_kernel: Record<string, { dispatches: number; ms: number }> | null;
  /** The same for the matmuls by shape (`batch x [M x K] @ [K x N]`), with their GFLOP/s. */
  matmul_shapes: Record<string, { dispatches: number; ms: number; gflops?: number }> | null;
  /** Losses at init on the same parameters and batch. */
  loss0: {
    ours: Record<string, number>;
    tfjs: Record<string, number> | null;
    torch: Record<string, number> | null;
  };
  tfjs_images_per_s: number | null;
  tfjs_ms_per_step: number | null;
  tfjs_js_ms_per_step: number | null;
  /** Bytes of tfjs's live tensors after its timed steps, the counterpart of `gpu_bytes_in_use`. */
  tfjs_gpu_bytes: number | null;
  /** Kernel dispatches and submits of one tfjs step (counted through tfjs's internal methods). */
  tfjs_dispatches: number | null;
  tfjs_submits: number | null;
  ratio_vs_tfjs: number | null;
  torch_cpu_images_per_s: number | null;
  torch_cpu_ms_per_step: number | null;
  ratio_vs_torch: number | null;
  /** Why the PyTorch peer did not run, when it did not. */
  torch_note: string | null;
}

interface BenchReport {
  date: string;
  quick: boolean;
  deno: string;
  adapter: AdapterReport;
  tfjs_adapter: TfjsAdapter;
  matmul: MatmulRow[];
  matmul_transposed: MatmulRow[];
  attention: AttentionRow[];
  step: StepReport;
  seconds: number;
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

let adapterTag = "";

/** Progress on stderr, tagged with the adapter. */
function log(message: string): void {
  console.error(`[${adapterTag}] ${message}`);
}

/** The shortest of `repeats` runs of `fn`, in seconds. */
async function best(repeats: number, fn: () => Promise<void>): Promise<number> {
  let shortest = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    await fn();
    shortest = Math.min(shortest, (performance.now() - t0) / 1e3);
  }
  return shortest;
}

function uniforms(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.uniform() * 2 - 1);
}

// ---------------------------------------------------------------------------------------------------------
// matmul

/** Products per timed iteration: about 1 GFLOP, so the >= 10 ms wait stays small next to the work. */
function matmulReps(n: number): number {
  return Math.max(1, Math.round(2 ** 30 / (2 * n ** 3)));
}

/** One n x n product, ours and tfjs's, checked against each other (and an f64 reference), then timed. */
async function benchMatmul(
  gpu: Gpu,
  n: number,
  transA: boolean,
  transB: boolean,
  repeats: number,
): Promise<MatmulRow> {
  const op = transA ? "A^T @ B" : transB ? "A @ B^T" : "A @ B";
  const rng = new Rng(n + (transA ? 1 : 0) + (transB ? 2 : 0));
  const ha = uniforms(rng, n * n), hb = uniforms(rng, n * n);
  const a = keep(tensor(ha, [n, n])), b = keep(tensor(hb, [n, n]));
  const ta = tf.tensor2d(ha, [n, n]), tb = tf.tensor2d(hb, [n, n]);
  const options = { transposeA: transA, transposeB: transB };

  // Check (this also compiles both sides' pipelines).
  const ours = tidy(() => matmul(a, b, options));
  const got = await ours.toArray();
  ours.dispose();
  const theirs = tf.matMul(ta, tb, transA, transB);
  const want = await theirs.data();
  theirs.dispose();
  const diff = parityError(got, want);
  // Sampled entries against f64, so that a disagreement says which side is wrong.
  let refErr = 0;
  for (let s = 0; s < 64; s++) {
    const i = rng.int(n), j = rng.int(n);
    let sum = 0;
    for (let p = 0; p < n; p++) {
      sum += (transA ? ha[p * n + i] : ha[i * n + p]) * (transB ? hb[j * n + p] : hb[p * n + j]);
    }
    refErr = Math.max(refErr, Math.abs(got[i * n + j] - sum) / Math.max(1, Math.abs(sum)));
  }
  if (!(diff < 1e-4) || !(refErr < 1e-4)) {
    throw new Error(
      `matmul ${op} at n = ${n}: clocgpu and tfjs differ by ${diff} (relative), clocgpu vs f64 by ${refErr}`,
    );
  }

  const reps = matmulReps(n);
  const oursSeconds = await best(repeats, async () => {
    tidy(() => {
      for (let r = 0; r < reps; r++) matmul(a, b, options);
    });
    await gpu.sync();
  });
  const tfjsSeconds = await best(repeats, async () => {
    const last = tf.tidy(() => {
      let c = tf.matMul(ta, tb, transA, transB);
      for (let r = 1; r < reps; r++) c = tf.matMul(ta, tb, transA, transB);
      return c;
    });
    await tfjsSync(last);
    last.dispose();
  });
  a.dispose(), b.dispose(), ta.dispose(), tb.dispose();
  const flops = 2 * n ** 3 * reps;
  const row = {
    n,
    op,
    ours_gflops: flops / oursSeconds / 1e9,
    tfjs_gflops: flops / tfjsSeconds / 1e9,
    ratio: tfjsSeconds / oursSeconds,
    rel_diff: diff,
  };
  log(
    `matmul ${op} n=${n}: clocgpu ${row.ours_gflops.toFixed(2)} GFLOP/s, tfjs ${
      row.tfjs_gflops.toFixed(2)
    } GFLOP/s (x${row.ratio.toFixed(2)})`,
  );
  return row;
}

// ---------------------------------------------------------------------------------------------------------
// Attention

/** Forward + backward passes per timed iteration: about 0.3 GFLOP, between 1 and 20. */
function attentionReps(s: AttentionShape): number {
  const flops = 12 * s.b * s.h * s.t * s.t * s.d; // 2 products forward, 4 backward, 2 FLOPs per MAC
  return Math.min(20, Math.max(1, Math.round(3e8 / flops)));
}

/** `softmax(q k^T / sqrt(d) + mask) v` and its gradients: clocgpu's op and its composition against tfjs's. */
async function benchAttention(gpu: Gpu, s: AttentionShape, repeats: number): Promise<AttentionRow> {
  const shape = [s.b, s.h, s.t, s.d];
  const size = s.b * s.h * s.t * s.d;
  const rng = new Rng(s.t);
  const hq = uniforms(rng, size),
    hk = uniforms(rng, size),
    hv = uniforms(rng, size),
    hdy = uniforms(rng, size);
  const blocked = Float32Array.from({ length: s.t * s.t }, (_, i) => (i % s.t > Math.floor(i / s.t) ? 1 : 0));

  // clocgpu: the op the model uses (src/nn/model.ts, Attention.forward), and the same math composed.
  const [q, k, v, dy, mask] = keep([
    tensor(hq, shape, { requiresGrad: true }),
    tensor(hk, shape, { requiresGrad: true }),
    tensor(hv, shape, { requiresGrad: true }),
    tensor(hdy, shape),
    tensor(blocked, [s.t, s.t]),
  ]);
  const ours = () => {
    for (const x of [q, k, v]) x.grad?.dispose(), x.grad = null;
    const out = attention(q, k, v, { causal: s.causal });
    backward(out, dy);
    return out;
  };
  const unfused = () => {
    for (const x of [q, k, v]) x.grad?.dispose(), x.grad = null;
    let scores = scale(matmul(q, k, { transposeB: true }), s.d ** -0.5);
    if (s.causal) scores = maskedFill(scores, mask, -Infinity);
    const out = matmul(softmax(scores), v);
    backward(out, dy);
    return out;
  };

  // tfjs: the same composition, gradients by tf.grads.
  const [tq, tk, tv, tdy] = [hq, hk, hv, hdy].map((h) => tf.tensor(h, shape));
  const tmask = tf.tensor2d(blocked.map((x) => x * -1e9), [s.t, s.t]);
  const theirs = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => {
    let scores = tf.mul(tf.matMul(a, b, false, true), s.d ** -0.5);
    if (s.causal) scores = tf.add(scores, tmask);
    return tf.matMul(tf.softmax(scores), c);
  };
  const theirGrads = tf.grads(theirs);

  // Check the output and the three gradients.
  const oursOut = tidy(() => ours());
  const oursAll = [await oursOut.toArray(), ...(await Promise.all([q, k, v].map((x) => x.grad!.toArray())))];
  oursOut.dispose();
  const tfjsAll = await Promise.all(
    tf.tidy(() => [theirs(tq, tk, tv), ...theirGrads([tq, tk, tv], tdy)]).map(async (t) => {
      const data = await t.data();
      t.dispose();
      return data as Float32Array;
    }),
  );
  const diff = Math.max(...oursAll.map((o, i) => parityError(o, tfjsAll[i])));
  if (!(diff < 1e-4)) throw new Error(`attention ${s.name} [${shape}]: clocgpu and tfjs differ by ${diff}`);

  const reps = attentionReps(s);
  const oursSeconds = await best(repeats, async () => {
    tidy(() => {
      for (let r = 0; r < reps; r++) ours();
    });
    await gpu.sync();
  });
  const unfusedSeconds = await best(repeats, async () => {
    tidy(() => {
      for (let r = 0; r < reps; r++) unfused();
    });
    await gpu.sync();
  });
  const tfjsSeconds = await best(repeats, async () => {
    const last = tf.tidy(() => {
      let g: tf.Tensor[] = [];
      for (let r = 0; r < reps; r++) g = theirGrads([tq, tk, tv], tdy);
      return g[0];
    });
    await tfjsSync(last);
    last.dispose();
  });
  for (const x of [q, k, v]) x.grad?.dispose(), x.grad = null;
  for (const x of [q, k, v, dy, mask]) x.dispose();
  for (const x of [tq, tk, tv, tdy, tmask]) x.dispose();
  const row: AttentionRow = {
    name: s.name,
    shape: [s.b, s.h, s.t, s.d],
    causal: s.causal,
    ours_ms: (oursSeconds / reps) * 1e3,
    ours_unfused_ms: (unfusedSeconds / reps) * 1e3,
    tfjs_ms: (tfjsSeconds / reps) * 1e3,
    ratio: tfjsSeconds / oursSeconds,
    rel_diff: diff,
  };
  log(
    `attention fwd+bwd ${s.name} [${shape}]${s.causal ? " causal" : ""}: clocgpu ${
      row.ours_ms.toFixed(2)
    } ms (unfused ${row.ours_unfused_ms.toFixed(2)} ms), tfjs ${row.tfjs_ms.toFixed(2)} ms (x${
      row.ratio.toFixed(2)
    })`,
  );
  return row;
}

// ---------------------------------------------------------------------------------------------------------
// The training step

async function lossValues(l: Record<string, Tensor | tf.Tensor | null>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, t] of Object.entries(l)) {
    if (t === null) continue;
    out[name] = t instanceof tf.Tensor ? (await t.data())[0] : await (t as Tensor).item();
  }
  return out;
}

/** The bundle the PyTorch peer reads: the parameters, the batch as `input.*`, the config as metadata. */
function torchBundle(
  config: ClocConfig,
  values: Map<string, { shape: readonly number[]; data: Float32Array }>,
  batch: ClocBatch,
): Uint8Array {
  const { batchSize: b, maxRegions: m } = batch;
  const s = config.vision.image_size, ctx = config.text.context_length;
  const tensors: Record<string, { dtype: "F32" | "I32"; shape: readonly number[]; data: ArrayBufferView }> =
    {};
  for (const [name, { shape, data }] of values) tensors[name] = { dtype: "F32", shape, data };
  tensors["input.images"] = { dtype: "F32", shape: [b, 3, s, s], data: batch.images };
  tensors["input.text"] = { dtype: "I32", shape: [b, ctx], data: batch.text };
  tensors["input.region_boxes"] = { dtype: "F32", shape: [b, m, 4], data: batch.regionBoxes };
  tensors["input.region_text"] = { dtype: "I32", shape: [b, m, ctx], data: batch.regionText };
  tensors["input.region_valid"] = { dtype: "F32", shape: [b, m], data: batch.regionValid };
  return serializeSafetensors(tensors, { format: "pt", config: JSON.stringify(config) });
}

/**
 * Counts tfjs's kernel dispatches and submits while `fn` runs, through the WebGPU backend's internal
 * `recordAndSubmit` and `submitQueue` (tfjs-backend-webgpu 4.22); null when they are not there.
 */
async function countTfjsWork(
  fn: () => Promise<void>,
): Promise<{ dispatches: number; submits: number } | null> {
  type Internals = Record<"recordAndSubmit" | "submitQueue", (...args: unknown[]) => unknown>;
  const backend = tf.backend() as unknown as Internals;
  if (typeof backend.recordAndSubmit !== "function" || typeof backend.submitQueue !== "function") {
    await fn();
    return null;
  }
  const counts = { dispatches: 0, submits: 0 };
  const { recordAndSubmit, submitQueue } = backend;
  backend.recordAndSubmit = function (...args) {
    counts.dispatches++;
    return recordAndSubmit.apply(this, args);
  };
  backend.submitQueue = function (...args) {
    counts.submits++;
    return submitQueue.apply(this, args);
  };
  try {
    await fn();
  } finally {
    backend.recordAndSubmit = recordAndSubmit;
    backend.submitQueue = submitQueue;
  }
  return counts;
}

interface TorchResult {
  loss0: Record<string, number>;
  ms_per_step: number;
  images_per_s: number;
  torch: string;
  threads: number;
}

/** Runs `bench/_torch_cloc.py`; returns null and a reason when Python or torch is missing or it fails. */
async function runTorch(
  python: string,
  bundle: Uint8Array,
  steps: number,
): Promise<{ result: TorchResult | null; note: string | null }> {
  try {
    const probe = await new Deno.Command(python, {
      args: ["-c", "import torch"],
      stdout: "null",
      stderr: "piped",
    })
      .output();
    if (!probe.success) {
      const why = new TextDecoder().decode(probe.stderr).trim().split("\n").at(-1);
      return { result: null, note: `${python} has no torch (${why}): apt-get install -y python3-torch` };
    }
  } catch (e) {
    return { result: null, note: `cannot run ${python}: ${(e as Error).message}` };
  }
  const file = await Deno.makeTempFile({ suffix: ".safetensors" });
  try {
    await Deno.writeFile(file, bundle);
    const script = new URL("../bench/_torch_cloc.py", import.meta.url).pathname;
    const out = await new Deno.Command(python, {
      args: [script, file, "--steps", String(steps), "--warmup", "1", "--threads", "2"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
      return { result: null, note: `bench/_torch_cloc.py failed (exit ${out.code}): ${err}` };
    }
    return { result: JSON.parse(new TextDecoder().decode(out.stdout)) as TorchResult, note: null };
  } finally {
    await Deno.remove(file);
  }
}

/**
 * A GPU profile of one step from timestamp queries: the recorded dispatches are replayed in step order on
 * the same buffers (so data-dependent kernels see the step's data), each in its own compute pass with
 * `timestampWrites`; returns each dispatch's time in ms. The `Gpu` runtime has no
 * profiling hook yet, so this rebuilds pipelines and bind groups the way `src/gpu/device.ts` does (inputs
 * read-only, then outputs, then one uniform). The replay reruns AdamW and the in-place kernels: call it
 * only when the model's numbers no longer matter. Null when the device has no `timestamp-query`.
 */
async function profileDispatches(gpu: Gpu, recorded: Dispatch[]): Promise<number[] | null> {
  if (!gpu.hasTimestamps) return null;
  await gpu.sync();
  const device = gpu.device;
  const pipelines = new Map<string, GPUComputePipeline>();
  const pipelineFor = (d: Dispatch) => {
    const key = `${d.kernel.file}:${d.kernel.entry}:${JSON.stringify(d.kernel.constants ?? {})}:` +
      `${d.inputs.length}/${d.outputs.length}/${!!d.params}`;
    let pipeline = pipelines.get(key);
    if (pipeline === undefined) {
      const entries: GPUBindGroupLayoutEntry[] = [];
      for (let i = 0; i < d.inputs.length + d.outputs.length; i++) {
        const type: GPUBufferBindingType = i < d.inputs.length ? "read-only-storage" : "storage";
        entries.push({ binding: i, visibility: GPUShaderStage.COMPUTE, buffer: { type } });
      }
      if (d.params) entries.push({ binding: entries.length, visibility: GPUShaderStage.COMPUTE, buffer: {} });
      const layout = device.createPipelineLayout({
        bindGroupLayouts: [device.createBindGroupLayout({ entries })],
      });
      pipeline = device.createComputePipeline({
        layout,
        compute: {
          module: device.createShaderModule({ code: d.kernel.code }),
          entryPoint: d.kernel.entry,
          constants: d.kernel.constants,
        },
      });
      pipelines.set(key, pipeline);
    }
    return pipeline;
  };

  const times: number[] = [];
  const CHUNK = 1024; // 2 queries a dispatch; a query set holds at most 4096
  for (let start = 0; start < recorded.length; start += CHUNK) {
    const chunk = recorded.slice(start, start + CHUNK);
    const querySet = device.createQuerySet({ type: "timestamp", count: 2 * chunk.length });
    const resolved = device.createBuffer({
      size: 16 * chunk.length,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const staging = device.createBuffer({
      size: 16 * chunk.length,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const uniforms: GPUBuffer[] = [];
    const encoder = device.createCommandEncoder();
    chunk.forEach((d, i) => {
      const pipeline = pipelineFor(d);
      const entries: GPUBindGroupEntry[] = [...d.inputs, ...d.outputs].map((buffer, binding) => ({
        binding,
        resource: { buffer },
      }));
      if (d.params) {
        const uniform = device.createBuffer({
          size: d.params.byteLength,
          usage: GPUBufferUsage.UNIFORM,
          mappedAtCreation: true,
        });
        new Uint32Array(uniform.getMappedRange()).set(d.params);
        uniform.unmap();
        uniforms.push(uniform);
        entries.push({ binding: entries.length, resource: { buffer: uniform } });
      }
      const pass = encoder.beginComputePass({
        timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
      });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
      const [x, y = 1, z = 1] = d.workgroups;
      pass.dispatchWorkgroups(x, y, z);
      pass.end();
    });
    encoder.resolveQuerySet(querySet, 0, 2 * chunk.length, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, staging, 0, 16 * chunk.length);
    device.queue.submit([encoder.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const stamps = new BigUint64Array(staging.getMappedRange().slice(0));
    staging.unmap();
    for (let i = 0; i < chunk.length; i++) times.push(Number(stamps[2 * i + 1] - stamps[2 * i]) / 1e6); // ns → ms
    for (const b of [resolved, staging, ...uniforms]) b.destroy();
    querySet.destroy();
  }
  return times;
}

/** Sums per-dispatch times by a key, most time first; `flops` adds a GFLOP/s figure. */
function sumBy(
  recorded: Dispatch[],
  times: number[],
  key: (d: Dispatch) => string | null,
  flops?: (d: Dispatch) => number,
): Record<string, { dispatches: number; ms: number; gflops?: number }> {
  const totals = new Map<string, { dispatches: number; ms: number; flops: number }>();
  recorded.forEach((d, i) => {
    const k = key(d);
    if (k === null) return;
    const t = totals.get(k) ?? { dispatches: 0, ms: 0, flops: 0 };
    t.dispatches++;
    t.ms += times[i];
    t.flops += flops?.(d) ?? 0;
    totals.set(k, t);
  });
  return Object.fromEntries(
    [...totals].sort((a, b) => b[1].ms - a[1].ms).map(([k, { dispatches, ms, flops: f }]) => [
      k,
      flops ? { dispatches, ms, gflops: f / (ms * 1e6) } : { dispatches, ms },
    ]),
  );
}

/** `batch x [M x K] @ [K x N]` of a recorded matmul dispatch (its uniform starts with M, N, K). */
function matmulLabel(d: Dispatch): string | null {
  if (!d.kernel.entry.startsWith("matmul_forward") || !d.params) return null;
  const [m, n, k] = d.params;
  const c = d.kernel.constants ?? {};
  return `${matmulBatch(d)} x [${m}x${k}]${c.TRANS_A ? " (A^T)" : ""} @ [${k}x${n}]${
    c.TRANS_B ? " (B^T)" : ""
  }`;
}

function matmulFlops(d: Dispatch): number {
  const [m, n, k] = d.params!;
  return 2 * m * n * k * matmulBatch(d);
}

/** Products in a matmul dispatch: grid z counts batch x split-K chunks (params[17] is the split count). */
function matmulBatch(d: Dispatch): number {
  return (d.workgroups[2] ?? 1) / Math.max(1, d.params![17] ?? 1);
}

/** Relative difference of two loss records, over every key of `a`. */
function lossDiff(a: Record<string, number>, b: Record<string, number>): number {
  return Math.max(...Object.keys(a).map((k) => Math.abs(a[k] - b[k]) / Math.max(1e-6, Math.abs(a[k]))));
}

async function benchStep(gpu: Gpu, plan: Plan, python: string): Promise<StepReport> {
  const config = BENCH_CONFIG;
  const model = new Cloc(config, new Rng(0));
  const opt = benchOptimizer(model);
  const batch = randomBatch(config, { ...BENCH_BATCH, seed: 1 });
  const lr = 1e-3;

  // Losses at init, then the same parameters for both peers.
  const init = tidy(() => {
    const l = clocLosses(model.forward(batch), batch, model.logitScale, config.loss);
    return { loss: l.loss, clip: l.clip, cloc: l.cloc, ground: l.ground };
  });
  const loss0 = await lossValues(init);
  for (const t of Object.values(init)) t?.dispose();
  const values = await model.stateDict();
  log(`step: ${model.parameterCount()} parameters, loss at init ${loss0.loss.toFixed(5)}`);

  // The fixed cost of a dispatch on this adapter: 1000 tiny adds in one submit.
  const tiny = keep(tensor(new Float32Array(64), [64]));
  const tinyOnce = async () => {
    tidy(() => {
      for (let i = 0; i < 1000; i++) add(tiny, tiny);
    });
    await gpu.sync();
  };
  await tinyOnce();
  const tinyDispatch = (await best(2, tinyOnce)) / 1000;
  tiny.dispose();

  // Forward alone: its share of the step.
  const forwardOnce = async () => {
    tidy(() => clocLosses(model.forward(batch), batch, model.logitScale, config.loss).loss);
    await gpu.sync();
  };
  await forwardOnce();
  const forwardSeconds = await best(2, forwardOnce);

  // The timed steps' losses go into one GPU buffer, made before the warm-up so that the warm-up settles the
  // pool with it in place (a loss tensor kept per step would hold a pool buffer each and shift the next
  // step's buffers and bind groups).
  const history = zeros([plan.steps]);

  // Which kernels one step dispatches: the instance's dispatch, wrapped for one step, keeps each one.
  const recorded: Dispatch[] = [];
  const dispatch = gpu.dispatch;
  gpu.dispatch = (d) => {
    recorded.push(d);
    dispatch.call(gpu, d);
  };
  clocgpuStep(model, opt, batch, lr).dispose();
  gpu.dispatch = dispatch;
  for (let i = 1; i < plan.warmupSteps; i++) clocgpuStep(model, opt, batch, lr).dispose();
  await gpu.sync();

  // tfjs peer: same parameters, same batch.
  const peer = new TfjsCloc(config, values);
  const tfjsInit = tf.tidy(() => {
    const l = peer.losses(batch);
    return [l.loss, l.clip, l.cloc, l.ground];
  });
  const tfjsLoss0 = await lossValues({
    loss: tfjsInit[0],
    clip: tfjsInit[1],
    cloc: tfjsInit[2],
    ground: tfjsInit[3],
  });
  tf.dispose(tfjsInit);
  const tfjsDiff = lossDiff(loss0, tfjsLoss0);
  if (!(tfjsDiff < 1e-3)) {
    throw new Error(
      `The tfjs peer's losses at init differ from clocgpu's by ${tfjsDiff} (relative): ` +
        `${JSON.stringify(tfjsLoss0)} vs ${JSON.stringify(loss0)}; the comparison would be meaningless`,
    );
  }
  // The untimed first step, counted. The sync's one-element slice is one more dispatch (taken off below);
  // its submit also carries the step's last commands, so the submits are the step's.
  const tfjsCounts = await countTfjsWork(async () => {
    const first = peer.trainStep(batch, lr);
    await tfjsSync(first);
    first.dispose();
  });
  if (tfjsCounts) tfjsCounts.dispatches -= 1;
  // Timed, in rounds that take clocgpu (f32, then f16 where the adapter has it) and tfjs in turn, the best
  // round of each counting: the load of a shared machine drifts over seconds, and this way it weighs on all
  // alike. A round is steps back to back with one wait at the end (clocgpu's losses copied into `history`).
  const timeOurs = async () => {
    let record = 0, submit = 0;
    const t0 = performance.now();
    for (let i = 0; i < plan.steps; i++) {
      const t1 = performance.now();
      const loss = recordStep(model, opt, batch, lr);
      gpu.copy(loss.buffer, 0, history.buffer, 4 * i, 4);
      loss.dispose();
      const t2 = performance.now();
      gpu.flush();
      submit += performance.now() - t2;
      record += t2 - t1;
    }
    await gpu.sync();
    return { seconds: (performance.now() - t0) / 1e3 / plan.steps, record, submit };
  };
  const timeTfjs = async () => {
    let js = 0;
    let last: tf.Scalar | null = null;
    const t0 = performance.now();
    for (let i = 0; i < plan.tfjsSteps; i++) {
      last?.dispose();
      const t1 = performance.now();
      last = peer.trainStep(batch, lr);
      js += performance.now() - t1;
    }
    await tfjsSync(last!);
    last!.dispose();
    return { seconds: (performance.now() - t0) / 1e3 / plan.tfjsSteps, js };
  };
  const before = gpu.memory;
  gpu.resetCounters();
  let ours = await timeOurs();
  const counters = { ...gpu.counters };
  const after = gpu.memory;
  let f16Seconds = Infinity;
  let tfjs = { seconds: Infinity, js: 0 };
  for (let round = 0; round < plan.rounds; round++) {
    if (round > 0) {
      const again = await timeOurs();
      if (again.seconds < ours.seconds) ours = again;
    }
    if (gpu.hasF16) {
      model.setPrecision("f16");
      if (round === 0) {
        for (let i = 0; i < plan.warmupSteps; i++) recordStep(model, opt, batch, lr).dispose();
      }
      f16Seconds = Math.min(f16Seconds, (await timeOurs()).seconds);
      model.setPrecision("f32");
    }
    const t = await timeTfjs();
    if (t.seconds < tfjs.seconds) tfjs = t;
  }
  const { seconds, record: recordMs, submit: submitMs } = ours;
  const tfjsSeconds = tfjs.seconds, tfjsJsMs = tfjs.js;
  const f16Images = gpu.hasF16 ? BENCH_BATCH.batchSize / f16Seconds : null;
  if (f16Images !== null) log(`step clocgpu --precision f16: ${f16Images.toFixed(1)} images/s`);
  const trained = [...await history.toArray()]; // after the timing: a readback
  history.dispose();
  if (!trained.every(Number.isFinite)) throw new Error(`clocgpu: non-finite losses while timing: ${trained}`);
  const per = (x: number) => x / plan.steps;
  log(
    `step clocgpu: ${(seconds * 1e3).toFixed(1)} ms/step (${
      (BENCH_BATCH.batchSize / seconds).toFixed(1)
    } images/s, best of ${plan.rounds} rounds of ${plan.steps}), ` +
      `JS ${per(recordMs).toFixed(1)} ms + submit ${per(submitMs).toFixed(1)} ms, ${
        per(counters.dispatches)
      } dispatches, ` +
      `${per(counters.submits)} submits, ${per(counters.readbacks)} readbacks; loss ${
        trained.at(-1)?.toFixed(4)
      }`,
  );

  // Where the GPU time goes: a timestamped replay of the recorded step. It reruns AdamW on the model, so it
  // comes after everything measured on the model.
  const times = await profileDispatches(gpu, recorded);
  const byKernel = times && sumBy(recorded, times, (d) => d.kernel.entry);
  const matmulShapes = times && sumBy(recorded, times, matmulLabel, matmulFlops);
  if (times && byKernel && matmulShapes) {
    const top = (r: Record<string, { dispatches: number; ms: number }>, n: number) =>
      Object.entries(r).slice(0, n).map(([k, v]) => `${k}: ${v.ms.toFixed(0)} ms (${v.dispatches})`).join(
        ", ",
      );
    log(
      `step clocgpu, GPU time by kernel (timestamps over one replayed step, ${
        times.reduce((a, b) => a + b, 0).toFixed(0)
      } ms in all): ${top(byKernel, 8)}`,
    );
    log(`step clocgpu, slowest matmul shapes: ${top(matmulShapes, 5)}`);
  }

  // In use, not allocated: tfjs's buffer manager still holds the kernel benchmarks' freed buffers.
  const tfjsBytes = (tf.memory() as { numBytesInGPU?: number }).numBytesInGPU ?? null;
  peer.dispose();
  log(
    `step tfjs: ${(tfjsSeconds * 1e3).toFixed(1)} ms/step (${
      (BENCH_BATCH.batchSize / tfjsSeconds).toFixed(1)
    } images/s), ` +
      `JS ${(tfjsJsMs / plan.tfjsSteps).toFixed(1)} ms; loss at init differs from clocgpu's by ${
        tfjsDiff.toExponential(1)
      }`,
  );

  // PyTorch CPU peer.
  const torch = await runTorch(python, torchBundle(config, values, batch), plan.torchSteps);
  if (torch.result) {
    const d = lossDiff(loss0, torch.result.loss0);
    if (!(d < 1e-3)) {
      torch.note = `its losses at init differ from clocgpu's by ${d}: ${JSON.stringify(torch.result.loss0)}`;
      torch.result = null;
    } else {
      log(
        `step torch ${torch.result.torch} CPU x${torch.result.threads}: ${
          torch.result.ms_per_step.toFixed(1)
        } ms/step ` +
          `(${torch.result.images_per_s.toFixed(1)} images/s); loss at init differs by ${d.toExponential(1)}`,
      );
    }
  }
  if (torch.note) log(`step torch: not measured: ${torch.note}`);

  const images = BENCH_BATCH.batchSize / seconds;
  const tfjsImages = BENCH_BATCH.batchSize / tfjsSeconds;
  const report: StepReport = {
    config,
    batch_size: BENCH_BATCH.batchSize,
    max_regions: BENCH_BATCH.maxRegions,
    parameters: model.parameterCount(),
    images_per_s: images,
    ms_per_step: seconds * 1e3,
    f16_images_per_s: f16Images,
    js_ms_per_step: per(recordMs),
    submit_ms_per_step: per(submitMs),
    forward_ms: forwardSeconds * 1e3,
    submits: per(counters.submits),
    readbacks: per(counters.readbacks),
    dispatches: per(counters.dispatches),
    bind_groups: per(counters.bindGroups),
    gpu_bytes: after.liveBytes,
    gpu_bytes_in_use: after.inUseBytes,
    gpu_bytes_growth: after.liveBytes - before.liveBytes,
    memory_flat: after.inUseBytes === before.inUseBytes,
    tiny_dispatch_us: tinyDispatch * 1e6,
    gpu_ms_by_kernel: byKernel,
    matmul_shapes: matmulShapes,
    loss0: { ours: loss0, tfjs: tfjsLoss0, torch: torch.result?.loss0 ?? null },
    tfjs_images_per_s: tfjsImages,
    tfjs_ms_per_step: tfjsSeconds * 1e3,
    tfjs_js_ms_per_step: tfjsJsMs / plan.tfjsSteps,
    tfjs_gpu_bytes: tfjsBytes,
    tfjs_dispatches: tfjsCounts?.dispatches ?? null,
    tfjs_submits: tfjsCounts?.submits ?? null,
    ratio_vs_tfjs: images / tfjsImages,
    torch_cpu_images_per_s: torch.result?.images_per_s ?? null,
    torch_cpu_ms_per_step: torch.result?.ms_per_step ?? null,
    ratio_vs_torch: torch.result ? images / torch.result.images_per_s : null,
    torch_note: torch.note,
  };
  opt.dispose();
  model.dispose();
  return report;
}

// ---------------------------------------------------------------------------------------------------------
// Printing

function table(r: BenchReport): string {
  const f = (x: number | null, digits = 2) => (x === null ? "-" : x.toFixed(digits));
  const pad = (s: string, n: number) => s.padStart(n);
  const lines = [
    `clocgpu bench${r.quick ? " (--quick)" : ""}, ${r.date}, Deno ${r.deno}`,
    `adapter: ${r.adapter.description} (vendor ${r.adapter.vendor}, architecture "${r.adapter.architecture}", ` +
    `${r.adapter.fallback ? "fallback/software" : "hardware"}); tfjs got vendor ${r.tfjs_adapter.vendor}`,
    "",
    "matmul f32 (GFLOP/s)      n    clocgpu     tfjs   ratio",
  ];
  for (const m of [...r.matmul, ...r.matmul_transposed]) {
    lines.push(
      `  ${m.op.padEnd(20)}${pad(String(m.n), 7)}${pad(f(m.ours_gflops), 11)}${pad(f(m.tfjs_gflops), 9)}${
        pad(f(m.ratio), 7)
      }x`,
    );
  }
  lines.push("", "attention fwd+bwd (ms)     [B, H, T, d]        clocgpu  unfused     tfjs   ratio");
  for (const a of r.attention) {
    lines.push(
      `  ${(a.name + (a.causal ? ", causal" : "")).padEnd(24)} ${`[${a.shape.join(", ")}]`.padEnd(18)}${
        pad(f(a.ours_ms), 9)
      }${pad(f(a.ours_unfused_ms), 9)}${pad(f(a.tfjs_ms), 9)}${pad(f(a.ratio), 7)}x`,
    );
  }
  const s = r.step;
  const c = s.config;
  const row = (name: string, images: number | null, ms: number | null, js: number | null, ratio: string) =>
    `  ${name.padEnd(16)}${pad(f(images, 1), 9)}${pad(f(ms, 1), 10)}${pad(f(js, 1), 12)}${ratio}`;
  const mib = (bytes: number | null) => (bytes === null ? "-" : `${(bytes / 2 ** 20).toFixed(1)} MiB`);
  lines.push(
    "",
    `training step: CLOC, image ${c.vision.image_size}/${c.vision.patch_size}, widths ${c.vision.width}/${c.text.width}, ` +
      `layers ${c.vision.layers}/${c.text.layers}, ctx ${c.text.context_length}, B ${s.batch_size}, M ${s.max_regions}, ` +
      `${s.parameters} parameters`,
    `                  images/s   ms/step  JS ms/step`,
    row("clocgpu", s.images_per_s, s.ms_per_step, s.js_ms_per_step, ""),
    row("clocgpu f16", s.f16_images_per_s, null, null, "   (--precision f16)"),
    row(
      "tfjs (webgpu)",
      s.tfjs_images_per_s,
      s.tfjs_ms_per_step,
      s.tfjs_js_ms_per_step,
      `   clocgpu x${f(s.ratio_vs_tfjs)}`,
    ),
    row(
      "torch CPU x2",
      s.torch_cpu_images_per_s,
      s.torch_cpu_ms_per_step,
      null,
      `   clocgpu x${f(s.ratio_vs_torch)}`,
    ) +
      (s.torch_note ? `  (${s.torch_note})` : ""),
    `  clocgpu per step: ${s.submits} submits, ${s.readbacks} readbacks, ${s.dispatches} dispatches, ` +
      `${s.bind_groups} new bind groups; GPU memory ${mib(s.gpu_bytes_in_use)} in use, ${mib(s.gpu_bytes)} ` +
      `pooled (${s.memory_flat ? "flat" : "NOT flat"})`,
    `    where the time goes: JS records the step in ${f(s.js_ms_per_step, 1)} ms, submit waits ` +
      `${f(s.submit_ms_per_step, 1)} ms, forward alone takes ${
        f(s.forward_ms, 1)
      } ms; a tiny dispatch costs ` +
      `${f(s.tiny_dispatch_us, 0)} us here (x ${s.dispatches} = ${
        f((s.tiny_dispatch_us * s.dispatches) / 1e3, 0)
      } ms)`,
    `    GPU time by kernel (timestamps, one step replayed): ${
      s.gpu_ms_by_kernel === null ? "no timestamp-query on this device" : Object.entries(s.gpu_ms_by_kernel)
        .slice(0, 6).map(([k, v]) => `${k} ${v.ms.toFixed(0)} ms/${v.dispatches}`).join(", ")
    }`,
    `  tfjs per step: ${s.tfjs_submits ?? "-"} submits, ${s.tfjs_dispatches ?? "-"} dispatches, ` +
      `GPU memory ${mib(s.tfjs_gpu_bytes)} in use`,
    `  loss at init: clocgpu ${f(s.loss0.ours.loss, 6)}, tfjs ${f(s.loss0.tfjs?.loss ?? null, 6)}, ` +
      `torch ${f(s.loss0.torch?.loss ?? null, 6)} (same parameters and batch)`,
    "",
    `${r.seconds.toFixed(0)} s in all`,
  );
  return lines.join("\n");
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "adapter";
}

// ---------------------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      out: { type: "string", default: "bench/results" },
      python: { type: "string", default: "/usr/bin/python3" },
      help: { type: "boolean", default: false },
    },
  });
  if (args.help) {
    console.log(USAGE);
    return;
  }
  const plan = args.quick ? QUICK : FULL;
  const started = performance.now();

  const gpu = await requestGpu();
  setGpu(gpu);
  await tuneMatmul(gpu); // tile sizes for this adapter (about a second)
  const info = gpu.info;
  const adapter: AdapterReport = {
    description: info.description,
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    fallback: gpu.isFallbackAdapter,
  };
  adapterTag = `${info.description || info.vendor}${gpu.isFallbackAdapter ? ", fallback" : ""}`;
  const tfjsAdapter = await initTfjsWebgpu();
  log(
    `clocgpu adapter ${JSON.stringify(adapter)}; tfjs-backend-webgpu adapter ${JSON.stringify(tfjsAdapter)}`,
  );
  if (tfjsAdapter.vendor !== info.vendor) {
    log(
      `warning: tfjs got another adapter (vendor ${tfjsAdapter.vendor}): the comparison is not like for like`,
    );
  }

  const matmulRows: MatmulRow[] = [];
  for (const n of plan.matmulSizes) {
    matmulRows.push(await benchMatmul(gpu, n, false, false, n >= 2048 ? 2 : plan.repeats));
  }
  const transposed: MatmulRow[] = [];
  for (const [ta, tb] of [[true, false], [false, true]]) {
    transposed.push(await benchMatmul(gpu, plan.transposedSize, ta, tb, plan.repeats));
  }
  const attention: AttentionRow[] = [];
  for (const s of plan.attention) attention.push(await benchAttention(gpu, s, plan.repeats));
  gpu.trim(); // the kernels' buffers are not the step's: start it from an empty pool
  const step = await benchStep(gpu, plan, args.python);

  const date = new Date().toISOString().slice(0, 10);
  const report: BenchReport = {
    date,
    quick: args.quick,
    deno: Deno.version.deno,
    adapter,
    tfjs_adapter: tfjsAdapter,
    matmul: matmulRows,
    matmul_transposed: transposed,
    attention,
    step,
    seconds: (performance.now() - started) / 1e3,
  };
  const json = JSON.stringify(report, null, 2);
  await Deno.mkdir(args.out, { recursive: true });
  const file = `${args.out}/${date}-${slug(info.description || info.vendor)}${
    args.quick ? "-quick" : ""
  }.json`;
  await Deno.writeTextFile(file, json + "\n");
  log(`saved ${file}`);
  console.log(args.json ? JSON.stringify(report) : table(report));
  gpu.destroy();
}

if (import.meta.main) await main();
