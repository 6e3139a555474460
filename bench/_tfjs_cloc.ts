/**
 * The peer for `deno task bench`: the CLOC model of `spec/model.md` written with ordinary TensorFlow.js ops
 * (`@tensorflow/tfjs-core` on `@tensorflow/tfjs-backend-webgpu`), the way a tfjs user would write it, and
 * trained with `tf.variableGrads` and an AdamW made of tf ops.
 *
 * It is a benchmark peer, not a second implementation to maintain: it follows the spec closely enough that
 * its losses at init match clocgpu's on the same parameters and batch (the bench checks this before timing
 * anything), and otherwise takes the plain route:
 * - The Prompter runs its block over the full sequence `[prompt tokens, image tokens]` for every prompt
 *   (B*M sequences of 2 + N tokens, and again of 1 + N for the text prompts). clocgpu computes the image
 *   tokens' keys and values once per image instead; the numbers are the same, the work is not.
 * - Masks are additive `-1e9` (the usual tfjs idiom; `exp` underflows to exactly 0 as with `-inf`).
 * - Like clocgpu, the text tower runs only the positions up to the batch's longest caption (its EOT): the
 *   causal mask makes the rest irrelevant, it is one line of host code, and it keeps the two towers' work
 *   equal so that the ratio measures the runtimes, not that trick.
 * - The box prompts' sine code is host data (no gradient reaches the boxes), made by clocgpu's own
 *   `boxSineCode`, as clocgpu makes it.
 *
 * tfjs-backend-webgpu 4.22 runs in Deno 2.9 as it is: Deno provides `navigator.gpu`, and the backend asks
 * it for its own adapter and device (the same adapter as clocgpu's on a one-adapter machine; the bench
 * logs both). No shim is needed.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-webgpu";
// tfjs-core's Node bundle (what Deno loads) registers no gradients: they live in its ESM files, whose
// extensionless imports Deno cannot resolve. The union package's bundle registers all of them; a tfjs user
// training a model imports it anyway.
import "@tensorflow/tfjs";
import type { ClocConfig } from "../src/nn/config.ts";
import { boxSineCode, type ClocBatch } from "../src/nn/model.ts";
import type { HostTensor } from "../src/nn/module.ts";

export { tf };

/** What tfjs-backend-webgpu knows about its adapter (its `AdapterInfo` keeps vendor and architecture). */
export interface TfjsAdapter {
  /** The adapter's vendor as tfjs saw it. */
  vendor: string;
  /** The adapter's architecture as tfjs saw it. */
  architecture: string;
}

/**
 * Selects tfjs's WebGPU backend and waits for it.
 *
 * @returns The adapter the backend got.
 * @throws {Error} When the backend cannot be set (no WebGPU adapter).
 *
 * @example
 * ```ts ignore
 * const adapter = await initTfjsWebgpu();
 * console.log(adapter.vendor);
 * ```
 */
export async function initTfjsWebgpu(): Promise<TfjsAdapter> {
  if (!(await tf.setBackend("webgpu"))) {
    throw new Error(`tfjs: could not set the "webgpu" backend (navigator.gpu is ${typeof navigator.gpu})`);
  }
  await tf.ready();
  const info = (tf.backend() as unknown as { adapterInfo?: { vendor?: string; architecture?: string } })
    .adapterInfo;
  return { vendor: String(info?.vendor ?? ""), architecture: String(info?.architecture ?? "") };
}

/**
 * Waits until tfjs has run everything queued so far, through a one-element readback of `t` (tfjs's public
 * sync: it submits the pending commands and maps a staging buffer, >= 10 ms in Deno, like clocgpu's sync).
 *
 * @param t Any tensor computed last; it is not disposed.
 * @returns When the GPU is done.
 *
 * @example
 * ```ts ignore
 * await tfjsSync(tf.matMul(a, b));
 * ```
 */
export async function tfjsSync(t: tf.Tensor): Promise<void> {
  const one = tf.tidy(() => tf.slice(tf.reshape(t, [-1]), [0], [1]));
  await one.data();
  one.dispose();
}

/** The loss and its parts, as 0-dim tensors. */
export interface TfjsLosses {
  /** `loss_clip + lambda * (loss_cloc + loss_ground)`. */
  loss: tf.Scalar;
  /** `loss_clip`. */
  clip: tf.Scalar;
  /** `loss_cloc`. */
  cloc: tf.Scalar;
  /** `loss_ground`. */
  ground: tf.Scalar;
}

/** AdamW settings (spec "Optimizer step"). */
export interface TfjsAdamWOptions {
  /** `[beta1, beta2]`. @default {[0.9, 0.98]} */
  betas?: [number, number];
  /** @default {1e-6} */
  eps?: number;
  /** Decoupled decay of parameters with 2 or more dims. @default {0.2} */
  weightDecay?: number;
}

const MASKED = -1e9;
// nn.MultiheadAttention's packed projection: `<p>.in_proj_weight [3w, w]`, `<p>.in_proj_bias [3w]`.
const IN_PROJ = { weight: ".in_proj_weight", bias: ".in_proj_bias" };

/**
 * CLOC in TensorFlow.js (see the module doc): the forward pass and losses of `spec/model.md` and an AdamW
 * training step.
 *
 * @example One training step from clocgpu's initial parameters
 * ```ts ignore
 * await initTfjsWebgpu();
 * const peer = new TfjsCloc(config, await model.stateDict());
 * const loss = peer.trainStep(batch, 1e-3);
 * console.log(await loss.data());
 * ```
 */
export class TfjsCloc {
  /** The parameters by their OpenCLIP names. */
  readonly params: Map<string, tf.Variable> = new Map();
  readonly #m = new Map<string, tf.Variable>();
  readonly #v = new Map<string, tf.Variable>();
  readonly #adam: Required<TfjsAdamWOptions>;
  #t = 0;

  /**
   * Makes the model's variables from host values (for example clocgpu's `model.stateDict()`, so both
   * start from the same point).
   *
   * @param config The model config.
   * @param values Every parameter by name.
   * @param adam AdamW settings.
   */
  constructor(readonly config: ClocConfig, values: Map<string, HostTensor>, adam: TfjsAdamWOptions = {}) {
    for (const [name, { shape, data }] of values) {
      this.params.set(name, tf.variable(tf.tensor(data, [...shape], "float32")));
      this.#m.set(name, tf.variable(tf.zeros([...shape])));
      this.#v.set(name, tf.variable(tf.zeros([...shape])));
    }
    this.#adam = {
      betas: adam.betas ?? [0.9, 0.98],
      eps: adam.eps ?? 1e-6,
      weightDecay: adam.weightDecay ?? 0.2,
    };
  }

  #p(name: string): tf.Variable {
    const v = this.params.get(name);
    if (v === undefined) throw new Error(`TfjsCloc: no parameter "${name}" in the values given`);
    return v;
  }

  // -------------------------------------------------------------------------------------------------------
  // Layers

  /** `x [..., in] @ W^T + b` with PyTorch's `[out, in]` weight `<prefix>.weight` and bias `<prefix>.bias`. */
  #linear(x: tf.Tensor, prefix: string, names = { weight: ".weight", bias: ".bias" }): tf.Tensor {
    const w = this.#p(prefix + names.weight);
    const lead = x.shape.slice(0, -1);
    const y = tf.matMul(tf.reshape(x, [-1, x.shape[x.rank - 1]]), w, false, true);
    return tf.reshape(tf.add(y, this.#p(prefix + names.bias)), [...lead, w.shape[0]]);
  }

  #layerNorm(x: tf.Tensor, prefix: string): tf.Tensor {
    const { mean, variance } = tf.moments(x, -1, true);
    const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5)));
    return tf.add(tf.mul(normed, this.#p(`${prefix}.weight`)), this.#p(`${prefix}.bias`));
  }

  #act(x: tf.Tensor): tf.Tensor {
    if (this.config.act === "quick_gelu") return tf.mul(x, tf.sigmoid(tf.mul(x, 1.702)));
    return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))); // exact gelu
  }

  /** Multi-head self-attention over `x [n, T, w]`; `mask [T, T]` is added to the scores. */
  #attention(x: tf.Tensor, prefix: string, heads: number, mask?: tf.Tensor): tf.Tensor {
    const [n, t, w] = x.shape;
    const d = w / heads;
    const qkv = tf.reshape(this.#linear(x, prefix, IN_PROJ), [n, t, 3, heads, d]);
    const [q, k, v] = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4])); // each [n, H, T, d]
    let scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d)); // [n, H, T, T]
    if (mask) scores = tf.add(scores, mask);
    const out = tf.matMul(tf.softmax(scores), v); // [n, H, T, d]
    const merged = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [n, t, w]);
    return this.#linear(merged, `${prefix}.out_proj`);
  }

  #block(x: tf.Tensor, prefix: string, heads: number, mask?: tf.Tensor): tf.Tensor {
    const h = tf.add(x, this.#attention(this.#layerNorm(x, `${prefix}.ln_1`), `${prefix}.attn`, heads, mask));
    const mlp = this.#linear(
      this.#act(this.#linear(this.#layerNorm(h, `${prefix}.ln_2`), `${prefix}.mlp.c_fc`)),
      `${prefix}.mlp.c_proj`,
    );
    return tf.add(h, mlp);
  }

  // -------------------------------------------------------------------------------------------------------
  // Towers

  /** `images [B, 3, S, S]` → `T_img [B, N, W]`. */
  #imageTokens(images: tf.Tensor): tf.Tensor {
    const { image_size: s, patch_size: p, width: w, layers, heads } = this.config.vision;
    const g = s / p, b = images.shape[0];
    const grid = tf.transpose(tf.reshape(images, [b, 3, g, p, g, p]), [0, 2, 4, 1, 3, 5]);
    const patches = tf.reshape(grid, [b, g * g, 3 * p * p]);
    const conv = tf.reshape(this.#p("visual.conv1.weight"), [w, 3 * p * p]);
    const x = tf.reshape(tf.matMul(tf.reshape(patches, [-1, 3 * p * p]), conv, false, true), [b, g * g, w]);
    const cls = tf.tile(tf.reshape(this.#p("visual.class_embedding"), [1, 1, w]), [b, 1, 1]);
    let h = tf.add(tf.concat([cls, x], 1), this.#p("visual.positional_embedding"));
    h = this.#layerNorm(h, "visual.ln_pre");
    for (let i = 0; i < layers; i++) h = this.#block(h, `visual.transformer.resblocks.${i}`, heads);
    return h;
  }

  /** `T_img` → `image_features [B, E]` from the class token. */
  #imageFeatures(tokens: tf.Tensor): tf.Tensor {
    const [b, , w] = tokens.shape;
    const cls = tf.reshape(tf.slice(tokens, [0, 0, 0], [b, 1, w]), [b, w]);
    return tf.matMul(this.#layerNorm(cls, "visual.ln_post"), this.#p("visual.proj"));
  }

  /** Host ids `[n, ctx]` → `text_features [n, E]`, pooled at each row's first EOT. */
  #textFeatures(tokens: Int32Array, n: number): tf.Tensor {
    const { context_length: ctx, width: w, layers, heads, eot_token_id: eot } = this.config.text;
    const pooled = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      const at = tokens.subarray(r * ctx, (r + 1) * ctx).indexOf(eot);
      pooled[r] = at < 0 ? ctx - 1 : at;
    }
    const len = Math.max(...pooled) + 1; // positions past the last EOT cannot reach a pooled row
    const ids = new Int32Array(n * len);
    for (let r = 0; r < n; r++) {
      ids.set(tokens.subarray(r * ctx, r * ctx + len), r * len);
      pooled[r] += r * len;
    }
    const mask = tf.tensor2d(
      Float32Array.from({ length: len * len }, (_, i) => (i % len > Math.floor(i / len) ? MASKED : 0)),
      [len, len],
    );
    const positions = tf.slice(this.#p("positional_embedding"), [0, 0], [len, w]);
    let h = tf.add(
      tf.gather(this.#p("token_embedding.weight"), tf.tensor2d(ids, [n, len], "int32")),
      positions,
    );
    for (let i = 0; i < layers; i++) h = this.#block(h, `transformer.resblocks.${i}`, heads, mask);
    const rows = tf.gather(tf.reshape(h, [n * len, w]), tf.tensor1d(pooled, "int32"));
    return tf.matMul(this.#layerNorm(rows, "ln_final"), this.#p("text_projection"));
  }

  // -------------------------------------------------------------------------------------------------------
  // The Prompter, over the full sequence of every prompt

  /** `T_img [B, N, W]` repeated for each of the M slots: `[B*M, N, W]`. */
  #imagePerSlot(tokens: tf.Tensor, m: number): tf.Tensor {
    const [b, n, w] = tokens.shape;
    return tf.reshape(tf.tile(tf.reshape(tokens, [b, 1, n, w]), [1, m, 1, 1]), [b * m, n, w]);
  }

  /** `block([prompts, T_img])` read at the P prompt positions: `prompts [B*M, P, W]` → `[B*M, P, W]`. */
  #prompterBlock(prompts: tf.Tensor, image: tf.Tensor): tf.Tensor {
    const [bm, p, w] = prompts.shape;
    const out = this.#block(tf.concat([prompts, image], 1), "prompter.block", this.config.prompter.heads);
    return tf.slice(out, [0, 0, 0], [bm, p, w]);
  }

  #regionFeatures(image: tf.Tensor, boxes: Float32Array, bm: number): tf.Tensor {
    const w = this.config.vision.width;
    const code = tf.tensor3d(boxSineCode(boxes, w), [bm, 2, w]);
    const prompts = tf.add(code, this.#p("prompter.corner_embed"));
    const out = tf.mean(this.#prompterBlock(prompts, image), 1); // [B*M, W]
    return tf.matMul(this.#layerNorm(out, "prompter.ln_post"), this.#p("prompter.proj"));
  }

  #predictBoxes(image: tf.Tensor, regionTextEmbeds: tf.Tensor): tf.Tensor {
    const w = this.config.vision.width, bm = regionTextEmbeds.shape[0];
    const prompt = tf.reshape(this.#linear(regionTextEmbeds, "prompter.text_in"), [bm, 1, w]);
    const out = tf.reshape(this.#prompterBlock(prompt, image), [bm, w]);
    const h = this.#layerNorm(out, "prompter.ln_post");
    const box = this.#linear(this.#act(this.#linear(h, "prompter.box_head.fc1")), "prompter.box_head.fc2");
    return tf.sigmoid(box);
  }

  // -------------------------------------------------------------------------------------------------------
  // Losses and the step

  /**
   * The forward pass and every loss of spec "Losses" on a host batch. Call inside `tf.tidy`.
   *
   * @param batch The batch (host arrays).
   * @returns The loss and its parts.
   */
  losses(batch: ClocBatch): TfjsLosses {
    const { batchSize: b, maxRegions: m } = batch;
    const s = this.config.vision.image_size;
    const tokens = this.#imageTokens(tf.tensor4d(batch.images, [b, 3, s, s]));
    const image = l2Normalize(this.#imageFeatures(tokens));
    const text = l2Normalize(this.#textFeatures(batch.text, b));
    const regionTextEmbeds = l2Normalize(this.#textFeatures(batch.regionText, b * m)); // [B*M, E]
    const perSlot = this.#imagePerSlot(tokens, m);
    const regions = this.#regionFeatures(perSlot, batch.regionBoxes, b * m); // [B*M, E]
    const boxes = this.#predictBoxes(perSlot, regionTextEmbeds); // [B*M, 4]

    const { logit_scale_max: max, region_weight: weight, text_filter_threshold: threshold } =
      this.config.loss;
    const scale = tf.exp(tf.minimum(this.#p("logit_scale"), max));
    const clip = symmetricCrossEntropy(tf.mul(tf.matMul(image, text, false, true), scale));

    // Valid slots in row-major order, found on the host.
    const rows: number[] = [];
    let imagesWithRegions = 0;
    for (let i = 0; i < b; i++) {
      let any = false;
      for (let k = 0; k < m; k++) {
        if (batch.regionValid[i * m + k] !== 0) rows.push(i * m + k), any = true;
      }
      if (any) imagesWithRegions++;
    }
    if (rows.length === 0) {
      const zero = tf.scalar(0);
      return { loss: clip as tf.Scalar, clip: clip as tf.Scalar, cloc: zero, ground: zero };
    }
    const index = tf.tensor1d(rows, "int32");
    const z = l2Normalize(tf.gather(regions, index));
    const y = tf.gather(regionTextEmbeds, index);
    // The text filter: off-diagonal pairs with near-identical captions leave both denominators.
    const logits = tf.mul(tf.matMul(z, y, false, true), scale);
    const cloc = symmetricCrossEntropy(tf.add(logits, tf.mul(filterMask(y, threshold), MASKED)));
    const target = tf.gather(tf.tensor2d(batch.regionBoxes, [b * m, 4]), index);
    const ground = tf.mean(tf.square(tf.sub(tf.gather(boxes, index), target)));
    const lambda = weight * imagesWithRegions / b;
    const loss = tf.add(clip, tf.mul(tf.add(cloc, ground), lambda));
    return {
      loss: loss as tf.Scalar,
      clip: clip as tf.Scalar,
      cloc: cloc as tf.Scalar,
      ground: ground as tf.Scalar,
    };
  }

  /**
   * One training step: gradients by `tf.variableGrads`, then AdamW (decoupled decay on parameters with
   * 2+ dims, bias correction, `logit_scale` clamped to [0, logit_scale_max]). Nothing is read back.
   *
   * @param batch The batch (host arrays).
   * @param lr The learning rate.
   * @returns The loss before the update (the caller disposes it).
   */
  trainStep(batch: ClocBatch, lr: number): tf.Scalar {
    return tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => this.losses(batch).loss);
      this.#adamw(grads, lr);
      return value;
    });
  }

  #adamw(grads: tf.NamedTensorMap, lr: number): void {
    const [b1, b2] = this.#adam.betas;
    const t = ++this.#t;
    const stepSize = lr / (1 - b1 ** t);
    const correction2 = 1 / (1 - b2 ** t);
    for (const [name, p] of this.params) {
      const g = grads[p.name];
      if (g === undefined) continue;
      const m = this.#m.get(name)!, v = this.#v.get(name)!;
      m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
      v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)));
      const decayed = p.rank >= 2 ? tf.mul(p, 1 - lr * this.#adam.weightDecay) : p;
      const update = tf.div(tf.mul(m, stepSize), tf.add(tf.sqrt(tf.mul(v, correction2)), this.#adam.eps));
      let next = tf.sub(decayed, update);
      if (name === "logit_scale") next = tf.clipByValue(next, 0, this.config.loss.logit_scale_max);
      p.assign(next);
    }
  }

  /**
   * Frees every variable.
   *
   * @example
   * ```ts ignore
   * peer.dispose();
   * ```
   */
  dispose(): void {
    for (const map of [this.params, this.#m, this.#v]) for (const v of map.values()) v.dispose();
  }
}

/**
 * `1` where an off-diagonal pair of `y [R, E]` has `y y^T > threshold`, else 0, with no gradient (the spec
 * computes S without one). tfjs has no stop-gradient and its comparisons have no gradient rule, so the
 * whole mask is one `customGrad` node whose gradient is zero.
 */
function filterMask(y: tf.Tensor, threshold: number): tf.Tensor {
  const r = y.shape[0];
  const f = tf.customGrad((...inputs) => {
    const x = inputs[0] as tf.Tensor; // the one input (customGrad also passes a save function)
    const similar = tf.cast(tf.greater(tf.matMul(x, x, false, true), threshold), "float32");
    return { value: tf.mul(similar, tf.sub(1, tf.eye(r))), gradFunc: () => tf.zerosLike(x) };
  });
  return f(y);
}

/** `x / max(||x||, 1e-12)` along the last axis. */
function l2Normalize(x: tf.Tensor): tf.Tensor {
  return tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x), -1, true)), 1e-12));
}

/** `(CE(L) + CE(L^T)) / 2` with targets on the diagonal; `CE(L) = mean(logsumexp(L) - diag(L))`. */
function symmetricCrossEntropy(logits: tf.Tensor): tf.Tensor {
  const eye = tf.eye(logits.shape[0]);
  const ce = (l: tf.Tensor) => tf.mean(tf.sub(tf.logSumExp(l, 1), tf.sum(tf.mul(l, eye), 1)));
  return tf.mul(tf.add(ce(logits), ce(tf.transpose(logits))), 0.5);
}
