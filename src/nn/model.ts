/**
 * The CLOC model of `spec/model.md`, parts before wholes: attention, MLP, residual block, transformer, the
 * image tower, the text tower, the Prompter, and `Cloc`, which owns them all and computes the losses.
 * Parameter names are OpenCLIP's, so they are the checkpoint's names.
 *
 * Dimensions: B images, M region slots per image, S image side, p patch side, g = S/p, N = 1 + g*g image
 * tokens, W vision width, V text width, E embedding width, ctx text context, H heads, d = width/H.
 *
 * @module
 */

import type { Rng } from "../tensor/random.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { add, broadcastTo } from "../ops/binary.ts";
import { type ActivationName, sigmoid } from "../ops/unary.ts";
import { mean } from "../ops/reduce.ts";
import { reshape } from "../ops/reshape.ts";
import { linear, matmul } from "../ops/matmul.ts";
import { permute } from "../ops/permute.ts";
import { concat, slice } from "../ops/slice.ts";
import { embedding, gather } from "../ops/gather.ts";
import { roiAlign } from "../ops/roi_align.ts";
import { packedAttention, slotAttention } from "../ops/attention.ts";
import { l2Normalize } from "../ops/losses.ts";
import { type ClocConfig, validateConfig } from "./config.ts";
import { LayerNorm } from "./layer_norm.ts";
import { Linear } from "./linear.ts";
import { Module } from "./module.ts";

/** The config's MLP activation, as the matmul epilogue names it. */
function activation(name: ClocConfig["act"]): ActivationName {
  return name === "gelu" ? "gelu" : "quickGelu";
}

// ---------------------------------------------------------------------------------------------------------
// Attention, MLP, block

/** Multi-head self-attention with PyTorch's packed `in_proj` (rows q, k, v) and `out_proj`. */
export class Attention extends Module {
  /** `[3w, w]`, rows q, k, v. */
  readonly inProjWeight: Tensor;
  /** `[3w]`. */
  readonly inProjBias: Tensor;
  /** `[w, w]` and `[w]`. */
  readonly outProj: Linear;

  /**
   * Attention of `heads` heads over tokens of width `width`.
   * @param width The token width w.
   * @param heads Heads H (d = w / H).
   * @param rng Initialisation (std w^-1/2 for in_proj, `outStd` for out_proj).
   */
  constructor(readonly width: number, readonly heads: number, rng: Rng, outStd = width ** -0.5) {
    super();
    this.inProjWeight = this.param(
      "in_proj_weight",
      [3 * width, width],
      rng.normals(3 * width * width, width ** -0.5),
    );
    this.inProjBias = this.param("in_proj_bias", [3 * width], new Float32Array(3 * width));
    this.outProj = this.child("out_proj", new Linear(width, width, rng, { std: outStd }));
  }

  /**
   * Self-attention over `x [B, T, w]`, scores scaled by d^-1/2; `causal`: token i sees tokens j <= i only.
   * @returns `[B, T, w]`.
   */
  forward(x: Tensor, causal = false): Tensor {
    const qkv = linear(x, this.inProjWeight, this.inProjBias, { precision: this.precision }); // [B, T, 3w]
    return this.outProj.forward(packedAttention(qkv, this.heads, { causal }));
  }
}

/** `c_proj(act(c_fc(x)))`. */
export class Mlp extends Module {
  /** `[r*w, w]`. */
  readonly cFc: Linear;
  /** `[w, r*w]`. */
  readonly cProj: Linear;

  /**
   * An MLP `width → hidden → width`.
   * @param width w.
   * @param hidden r*w.
   * @param act The activation.
   * @param rng Initialisation.
   * @param projStd Std of `c_proj`'s weight.
   */
  constructor(
    width: number,
    hidden: number,
    readonly act: ActivationName,
    rng: Rng,
    projStd = hidden ** -0.5,
  ) {
    super();
    this.cFc = this.child("c_fc", new Linear(width, hidden, rng, { std: (2 * width) ** -0.5 }));
    this.cProj = this.child("c_proj", new Linear(hidden, width, rng, { std: projStd }));
  }

  /** `[..., w]` → `[..., w]`. */
  forward(x: Tensor): Tensor {
    return this.cProj.forward(this.cFc.forward(x, this.act)); // the activation in c_fc's epilogue
  }
}

/** The pre-norm residual block: `x += attn(ln_1(x)); x += mlp(ln_2(x))`. */
export class ResidualBlock extends Module {
  /** Before attention. */
  readonly ln1: LayerNorm;
  /** Self-attention. */
  readonly attn: Attention;
  /** Before the MLP. */
  readonly ln2: LayerNorm;
  /** The MLP. */
  readonly mlp: Mlp;

  /** A block of width `width` with `heads` heads and an MLP of `mlpRatio * width`. */
  constructor(width: number, heads: number, mlpRatio: number, act: ActivationName, rng: Rng, depth = 1) {
    super();
    // OpenCLIP's init: residual projections shrink with depth.
    const projStd = width ** -0.5 * (2 * depth) ** -0.5;
    this.ln1 = this.child("ln_1", new LayerNorm(width));
    this.attn = this.child("attn", new Attention(width, heads, rng, projStd));
    this.ln2 = this.child("ln_2", new LayerNorm(width));
    this.mlp = this.child("mlp", new Mlp(width, mlpRatio * width, act, rng, projStd));
  }

  /** `x [B, T, w]` → `[B, T, w]`; `causal` as in {@link Attention.forward}. */
  forward(x: Tensor, causal = false): Tensor {
    const h = add(x, this.attn.forward(this.ln1.forward(x), causal));
    return add(h, this.mlp.forward(this.ln2.forward(h)));
  }
}

/** A stack of blocks named `resblocks.{i}`. */
export class Transformer extends Module {
  /** The blocks, in order. */
  readonly blocks: ResidualBlock[] = [];

  /** `layers` blocks of the given shape. */
  constructor(width: number, layers: number, heads: number, mlpRatio: number, act: ActivationName, rng: Rng) {
    super();
    for (let i = 0; i < layers; i++) {
      this.blocks.push(
        this.child(`resblocks.${i}`, new ResidualBlock(width, heads, mlpRatio, act, rng, layers)),
      );
    }
  }

  /** `x [B, T, w]` through every block; `causal` as in {@link Attention.forward}. */
  forward(x: Tensor, causal = false): Tensor {
    for (const block of this.blocks) x = block.forward(x, causal);
    return x;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The towers

/** The ViT image tower (`visual.*`). */
export class VisionTransformer extends Module {
  /** `[W, 3, p, p]`, used as a matmul over patch vectors. */
  readonly conv1: Tensor;
  /** `[W]`. */
  readonly classEmbedding: Tensor;
  /** `[N, W]`. */
  readonly positionalEmbedding: Tensor;
  /** After the embedding. */
  readonly lnPre: LayerNorm;
  /** The blocks. */
  readonly transformer: Transformer;
  /** Before the projection. */
  readonly lnPost: LayerNorm;
  /** `[W, E]`. */
  readonly proj: Tensor;

  /** The tower of `config.vision`. */
  constructor(readonly config: ClocConfig, rng: Rng) {
    super();
    const { image_size: size, patch_size: p, width: w, layers, heads, mlp_ratio } = config.vision;
    const g = size / p;
    const s = w ** -0.5;
    // The conv is PyTorch's default init: uniform in ±(fan_in)^-1/2.
    const fanIn = 3 * p * p;
    const convInit = Float32Array.from({ length: w * fanIn }, () => (rng.uniform() * 2 - 1) * fanIn ** -0.5);
    this.conv1 = this.param("conv1.weight", [w, 3, p, p], convInit);
    this.classEmbedding = this.param("class_embedding", [w], rng.normals(w, s));
    this.positionalEmbedding = this.param(
      "positional_embedding",
      [1 + g * g, w],
      rng.normals((1 + g * g) * w, s),
    );
    this.lnPre = this.child("ln_pre", new LayerNorm(w));
    this.transformer = this.child(
      "transformer",
      new Transformer(w, layers, heads, mlp_ratio, activation(config.act), rng),
    );
    this.lnPost = this.child("ln_post", new LayerNorm(w));
    this.proj = this.param("proj", [w, config.embed_dim], rng.normals(w * config.embed_dim, s));
  }

  /**
   * `images [B, 3, S, S]` → the last block's tokens `T_img [B, N, W]` (before `ln_post`).
   * Patches are taken in (channel, row, col) order, patches in row-major grid order.
   */
  tokens(images: Tensor): Tensor {
    const { image_size: size, patch_size: p, width: w } = this.config.vision;
    const g = size / p;
    const b = images.shape[0];
    const grid = reshape(images, [b, 3, g, p, g, p]);
    const patches = reshape(permute(grid, [0, 2, 4, 1, 3, 5]), [b, g * g, 3 * p * p]);
    const x = linear(patches, reshape(this.conv1, [w, 3 * p * p]), undefined, { precision: this.precision }); // [B, g*g, W]
    const cls = broadcastTo(reshape(this.classEmbedding, [1, 1, w]), [b, 1, w]);
    const tokens = add(concat([cls, x], 1), this.positionalEmbedding); // [B, N, W]
    return this.transformer.forward(this.lnPre.forward(tokens));
  }

  /** `T_img [B, N, W]` → `image_features [B, E]` from the class token. */
  features(tokens: Tensor): Tensor {
    const cls = reshape(slice(tokens, 1, 0, 1), [tokens.shape[0], this.config.vision.width]);
    return matmul(this.lnPost.forward(cls), this.proj);
  }
}

/** The text tower. Its parameters sit at the root of the name tree (OpenCLIP's layout). */
export class TextTransformer extends Module {
  /** `[vocab, V]`. */
  readonly tokenEmbedding: Tensor;
  /** `[ctx, V]`. */
  readonly positionalEmbedding: Tensor;
  /** The causal blocks. */
  readonly transformer: Transformer;
  /** After the blocks. */
  readonly lnFinal: LayerNorm;
  /** `[V, E]`. */
  readonly textProjection: Tensor;

  /** The tower of `config.text`. */
  constructor(readonly config: ClocConfig, rng: Rng) {
    super();
    const { vocab_size: vocab, context_length: ctx, width: w, layers, heads, mlp_ratio } = config.text;
    this.tokenEmbedding = this.param("token_embedding.weight", [vocab, w], rng.normals(vocab * w, 0.02));
    this.positionalEmbedding = this.param("positional_embedding", [ctx, w], rng.normals(ctx * w, 0.01));
    this.transformer = this.child(
      "transformer",
      new Transformer(w, layers, heads, mlp_ratio, activation(config.act), rng),
    );
    this.lnFinal = this.child("ln_final", new LayerNorm(w));
    this.textProjection = this.param(
      "text_projection",
      [w, config.embed_dim],
      rng.normals(w * config.embed_dim, w ** -0.5),
    );
  }

  /**
   * `tokens [n, ctx]` (host ids) → `text_features [n, E]`, pooled at the first EOT of each row (the last
   * position when a row has none). The pooled rows are found on the CPU, from the host tokens, so nothing
   * is read back.
   */
  features(tokens: Int32Array, n: number): Tensor {
    const { context_length: ctx, width: w, eot_token_id: eot } = this.config.text;
    if (tokens.length !== n * ctx) {
      throw new RangeError(`Text tokens: ${tokens.length} ids for ${n} captions of context ${ctx}`);
    }
    const pooled = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      let at = ctx - 1;
      for (let i = 0; i < ctx; i++) {
        if (tokens[r * ctx + i] === eot) {
          at = i;
          break;
        }
      }
      pooled[r] = at;
    }
    // Causal attention keeps every position after a row's EOT out of its pooled row, so running only the
    // first `len` positions (len = the last pooled position + 1) gives the same numbers for less work:
    // region captions of a few words need a few positions, not the whole context.
    const len = Math.max(...pooled, 0) + 1;
    const ids = new Int32Array(n * len);
    for (let r = 0; r < n; r++) {
      ids.set(tokens.subarray(r * ctx, r * ctx + len), r * len);
      pooled[r] += r * len;
    }
    const positions = len === ctx ? this.positionalEmbedding : slice(this.positionalEmbedding, 0, 0, len);
    const x = add(embedding(tensor(ids, [n, len], { dtype: "i32" }), this.tokenEmbedding), positions); // [n, len, V]
    const h = this.transformer.forward(x, true); // causal
    // Layer norm is per row, so pooling first gives the same numbers for len times less work.
    const rows = gather(reshape(h, [n * len, w]), 0, tensor(pooled, [n], { dtype: "i32" })); // [n, V]
    return matmul(this.lnFinal.forward(rows), this.textProjection);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The Prompter

/**
 * The DETR sine code of box corners: for each box (x0, y0, x1, y1) the two rows `corner(x0, y0)` and
 * `corner(x1, y1)` of width W (spec: "Box prompt"). Computed on the CPU from host boxes (no gradient flows
 * to boxes).
 *
 * @param boxes `[n, 4]` normalised boxes, row-major.
 * @param width W (even).
 * @returns `[n, 2, W]` row-major.
 *
 * @example
 * ```ts
 * import { boxSineCode } from "./model.ts";
 * const code = boxSineCode(new Float32Array([0, 0, 1, 1]), 4);
 * console.log(code.length); // 8
 * ```
 */
export function boxSineCode(boxes: Float32Array, width: number): Float32Array {
  const n = boxes.length / 4;
  const half = width / 2;
  const out = new Float32Array(n * 2 * width);
  const e = (v: number, k: number) => {
    const t = 10000 ** ((2 * Math.floor(k / 2)) / half);
    return k % 2 === 0 ? Math.sin((2 * Math.PI * v) / t) : Math.cos((2 * Math.PI * v) / t);
  };
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 2; c++) {
      const x = boxes[i * 4 + 2 * c], y = boxes[i * 4 + 2 * c + 1];
      const row = (i * 2 + c) * width;
      for (let k = 0; k < half; k++) {
        out[row + k] = e(x, k);
        out[row + half + k] = e(y, k);
      }
    }
  }
  return out;
}

/**
 * Keys and values of the image tokens for the Prompter's block, computed once per image: `[B, N, 2 W]`, per
 * token the keys (features 0 .. W - 1, head h at h d ..) then the values, as `in_proj`'s rows k, v give them.
 */
export type ImageKeysValues = Tensor;

/** The box head: `fc2(act(fc1(h)))`, `[..., W]` → `[..., 4]` (before the sigmoid). */
export class BoxHead extends Module {
  /** `[W, W]`. */
  readonly fc1: Linear;
  /** `[4, W]`. */
  readonly fc2: Linear;

  /**
   * A box head of width `width`.
   * @param width W.
   * @param act The activation between the layers.
   * @param rng Initialisation.
   */
  constructor(width: number, readonly act: ActivationName, rng: Rng) {
    super();
    this.fc1 = this.child("fc1", new Linear(width, width, rng));
    this.fc2 = this.child("fc2", new Linear(width, 4, rng));
  }

  /** `h [..., W]` → `[..., 4]`. */
  forward(h: Tensor): Tensor {
    return this.fc2.forward(this.fc1.forward(h, this.act));
  }
}

/**
 * The Prompter (`prompter.*`): one block over `[prompt tokens, image tokens]` whose outputs are read at the
 * prompt positions only. Since the image tokens' keys and values do not depend on the prompt, they are
 * computed once per image ({@link Prompter.imageKeysValues}) and every prompt of that image attends to them:
 * the spec's numbers at a fraction of the work (the image tokens' own outputs are never computed).
 */
export class Prompter extends Module {
  /** `[2, W]`: row 0 top-left, row 1 bottom-right. */
  readonly cornerEmbed: Tensor;
  /** The text-prompt adapter `E → W`. */
  readonly textIn: Linear;
  /** The one block. */
  readonly block: ResidualBlock;
  /** After the block. */
  readonly lnPost: LayerNorm;
  /** `[W, E]`. */
  readonly proj: Tensor;
  /** Regresses a box from a text prompt's output. */
  readonly boxHead: BoxHead;

  /** The Prompter of `config.prompter`, of the vision width. */
  constructor(readonly config: ClocConfig, rng: Rng) {
    super();
    const w = config.vision.width, e = config.embed_dim;
    const act = activation(config.act);
    this.cornerEmbed = this.param("corner_embed", [2, w], rng.normals(2 * w, 0.02));
    this.textIn = this.child("text_in", new Linear(e, w, rng));
    this.block = this.child(
      "block",
      new ResidualBlock(w, config.prompter.heads, config.prompter.mlp_ratio, act, rng),
    );
    this.lnPost = this.child("ln_post", new LayerNorm(w));
    this.proj = this.param("proj", [w, e], rng.normals(w * e, w ** -0.5));
    this.boxHead = this.child("box_head", new BoxHead(w, act, rng));
  }

  /** `T_img [B, N, W]` → the block's keys and values of the image tokens, `[B, N, 2W]`. */
  imageKeysValues(tokens: Tensor): ImageKeysValues {
    const w = this.config.vision.width;
    const attn = this.block.attn;
    const kvWeight = slice(attn.inProjWeight, 0, w, 3 * w); // rows k, v of in_proj
    const kvBias = slice(attn.inProjBias, 0, w, 3 * w);
    return linear(this.block.ln1.forward(tokens), kvWeight, kvBias, { precision: this.precision });
  }

  /**
   * The block's output at the prompt positions: `prompts [B, M, P, W]`, each slot's P prompt tokens
   * attending to themselves and to their image's tokens. Exactly the spec's `block([prompts, T_img])[:P]`.
   * @returns `[B, M, P, W]`.
   */
  promptBlock(prompts: Tensor, kv: ImageKeysValues): Tensor {
    const attn = this.block.attn;
    const qkv = linear(this.block.ln1.forward(prompts), attn.inProjWeight, attn.inProjBias, {
      precision: this.precision,
    }); // [B, M, P, 3W]
    // Each slot's prompt rows attend to themselves, then to their image's rows (read in place for every slot).
    const mixed = slotAttention(qkv, kv, this.config.prompter.heads); // [B, M, P, W]
    const h = add(prompts, attn.outProj.forward(mixed));
    return add(h, this.block.mlp.forward(this.block.ln2.forward(h)));
  }

  /**
   * Region embeddings of boxes: `boxes` host `[B, M, 4]` (normalised) → `region_features [B, M, E]`.
   */
  regionFeatures(kv: ImageKeysValues, boxes: Float32Array, b: number, m: number): Tensor {
    const w = this.config.vision.width;
    const code = tensor(boxSineCode(boxes, w), [b, m, 2, w]);
    const prompts = add(code, this.cornerEmbed); // each corner type added once
    const out = mean(this.promptBlock(prompts, kv), 2); // [B, M, W]: the mean of the two prompt outputs
    return matmul(this.lnPost.forward(out), this.proj);
  }

  /**
   * The RoIAlign ablation (`prompter.kind: "roialign"`): the patch tokens of `T_img` as a `[B, g, g, W]` map,
   * RoIAlign-pooled inside each box (2 x 2 bins of 2 x 2 bilinear samples; the mean over the bins, which is
   * the mean of a regular 4 x 4 grid of samples), then `prompter.ln_post` and `@ prompter.proj`.
   * `boxes` host `[B, M, 4]` (normalised) → `region_features [B, M, E]`.
   */
  roiAlignFeatures(tokens: Tensor, boxes: Float32Array, b: number, m: number): Tensor {
    const { image_size: s, patch_size: p, width: w } = this.config.vision;
    const g = s / p;
    const grid = reshape(slice(tokens, 1, 1), [b, g, g, w]); // patches in row-major grid order
    const pooled = roiAlign(grid, tensor(boxes, [b, m, 4]), { outputSize: 2, samplingRatio: 2 }); // [B, M, 2, 2, W]
    return matmul(this.lnPost.forward(mean(pooled, [2, 3])), this.proj);
  }

  /**
   * Region embeddings by `prompter.kind`: {@link Prompter.regionFeatures} for `"block"` (the default),
   * {@link Prompter.roiAlignFeatures} for `"roialign"`. `tokens` is `T_img [B, N, W]`, `kv` its keys and
   * values; `boxes` host `[B, M, 4]` → `region_features [B, M, E]`.
   */
  regions(tokens: Tensor, kv: ImageKeysValues, boxes: Float32Array, b: number, m: number): Tensor {
    return this.config.prompter.kind === "roialign"
      ? this.roiAlignFeatures(tokens, boxes, b, m)
      : this.regionFeatures(kv, boxes, b, m);
  }

  /** Boxes from text prompts: `regionTextEmbeds [B, M, E]` (L2-normalised) → `pred_boxes [B, M, 4]`. */
  predictBoxes(kv: ImageKeysValues, regionTextEmbeds: Tensor): Tensor {
    const [b, m] = regionTextEmbeds.shape;
    const w = this.config.vision.width;
    const prompt = reshape(this.textIn.forward(regionTextEmbeds), [b, m, 1, w]);
    const out = reshape(this.promptBlock(prompt, kv), [b, m, w]);
    return sigmoid(this.boxHead.forward(this.lnPost.forward(out)));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Cloc

/** One batch on the CPU, in the shapes of the spec's reference bundles. */
export interface ClocBatch {
  /** B. */
  batchSize: number;
  /** M region slots per image. */
  maxRegions: number;
  /** `[B, 3, S, S]`, normalised. */
  images: Float32Array;
  /** `[B, ctx]` caption ids. */
  text: Int32Array;
  /** `[B, M, 4]` normalised (x0, y0, x1, y1). */
  regionBoxes: Float32Array;
  /** `[B, M, ctx]` region caption ids. */
  regionText: Int32Array;
  /** `[B, M]`, 1 for a real box, 0 for an empty slot. */
  regionValid: Float32Array;
}

/** What {@link Cloc.forward} computes. */
export interface ClocOutputs {
  /** `[B, E]`, unnormalised. */
  imageFeatures: Tensor;
  /** `[B, E]`, unnormalised. */
  textFeatures: Tensor;
  /** `[B, M, E]`, unnormalised; null in CLIP mode. */
  regionFeatures: Tensor | null;
  /** `[B, M, E]`, L2-normalised; null in CLIP mode. */
  regionTextEmbeds: Tensor | null;
  /** `[B, M, 4]`; null in CLIP mode. */
  predBoxes: Tensor | null;
}

/**
 * CLIP plus the Prompter. With `mode: "clip"` the Prompter is still owned (so checkpoints have one layout)
 * but unused and untrained.
 *
 * @example Build the spec's tiny model
 * ```ts
 * import { Cloc, requestGpu, Rng, setGpu, TINY_CONFIG } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const model = new Cloc(TINY_CONFIG, new Rng(0));
 * console.log(model.parameterCount());
 * ```
 */
export class Cloc extends Module {
  /** The image tower. */
  readonly visual: VisionTransformer;
  /** The text tower (parameters at the root). */
  readonly text: TextTransformer;
  /** The Prompter. */
  readonly prompter: Prompter;
  /** `[]`, ln(1/0.07) at init. */
  readonly logitScale: Tensor;

  /** A freshly initialised model (OpenCLIP's initialisation). */
  constructor(readonly config: ClocConfig, rng: Rng) {
    super();
    validateConfig(config);
    this.visual = this.child("visual", new VisionTransformer(config, rng));
    this.text = this.child("", new TextTransformer(config, rng));
    this.prompter = this.child("prompter", new Prompter(config, rng));
    this.logitScale = this.param("logit_scale", [], new Float32Array([Math.log(1 / 0.07)]));
  }

  /**
   * The forward pass on a host batch.
   * @param batch See {@link ClocBatch}.
   * @param mode "cloc" (default) also computes the region embeddings and boxes; "clip" only the towers.
   */
  forward(batch: ClocBatch, mode: "cloc" | "clip" = "cloc"): ClocOutputs {
    const { batchSize: b, maxRegions: m } = batch;
    const { image_size: s } = this.config.vision;
    const images = tensor(batch.images, [b, 3, s, s]);
    const tokens = this.visual.tokens(images); // [B, N, W]
    const imageFeatures = this.visual.features(tokens);
    if (mode === "clip") {
      return {
        imageFeatures,
        textFeatures: this.text.features(batch.text, b),
        regionFeatures: null,
        regionTextEmbeds: null,
        predBoxes: null,
      };
    }
    // Captions and region captions go through the text tower separately: region captions are short, and
    // each call runs only as many positions as its longest caption needs.
    const textFeatures = this.text.features(batch.text, b);
    const e = this.config.embed_dim;
    const regionTextEmbeds = reshape(l2Normalize(this.text.features(batch.regionText, b * m)), [b, m, e]);
    const kv = this.prompter.imageKeysValues(tokens);
    const regionFeatures = this.prompter.regions(tokens, kv, batch.regionBoxes, b, m);
    const predBoxes = this.prompter.predictBoxes(kv, regionTextEmbeds);
    return { imageFeatures, textFeatures, regionFeatures, regionTextEmbeds, predBoxes };
  }
}
