/**
 * `attention`: fused scaled dot-product attention, `softmax(scale q k^T) v` per batch item, optionally
 * causal, without ever storing the `[Tq, Tk]` scores (FlashAttention style). One dispatch forward, which
 * saves the log-sum-exp `lse` of every query row; two backward, one over query rows (`dq`) and one over key
 * rows (`dk`, `dv`), which recompute the probabilities from `lse`. Kernels: `shaders/attention.wgsl`.
 *
 * Tiny problems pack many batch items into each workgroup of 64 threads, one row per thread (512 items of
 * 2 queries and 19 keys run as 16 workgroups), instead of one under-filled matmul tile per item.
 *
 * @module
 */

import code from "../../shaders/attention.wgsl" with { type: "text" };
import { type Gpu, params } from "../gpu/device.ts";
import { empty, formatShape, type Tensor, tensor } from "../tensor/tensor.ts";
import { expectF32, gradNode, grid1d } from "./_op.ts";
import { isCpuAdapter } from "./_autotune.ts";
import { matmul } from "./matmul.ts";
import { permute } from "./permute.ts";
import { reshape } from "./reshape.ts";
import { concat, slice } from "./slice.ts";
import { broadcastTo } from "./binary.ts";
import { softmax } from "./softmax.ts";
import { scale as scaleOp } from "./unary.ts";
import { maskedFill } from "./where.ts";

/** Options for {@link attention}. */
export interface AttentionOptions {
  /**
   * Let query i see only the keys j <= i (top-left aligned when Tq != Tk, as PyTorch's `is_causal`).
   * @default {false}
   */
  causal?: boolean;
  /**
   * The factor on the scores `q . k`.
   * @default {d ** -0.5}
   */
  scale?: number;
  /**
   * `"fused"` runs the kernels of `shaders/attention.wgsl`; `"composed"` the ops `matmul`, `softmax`,
   * `matmul`; `"auto"` picks the faster for the adapter and the shapes (see {@link attention}).
   * @default {"auto"}
   */
  implementation?: "auto" | "fused" | "composed";
}

// Must match attention.wgsl: threads per workgroup, the register arrays' size, and the (lse, delta) slots.
const WG = 64;
const MAX_D = 128;
const STAT = 256;
// Staged rows per item and tile: at least MIN_TILE (so that many items per workgroup still stream keys in
// useful chunks), at most MAX_TILE.
const MIN_TILE = 4;
const MAX_TILE = 64;
// Stage the other side's rows only when at least this many rows of an item read them. Measured on
// llvmpipe: with 1 or 2 query rows per item, reading keys straight from storage runs the forward 2.5x faster.
const MIN_SHARING = 4;
// On a CPU rasteriser, "auto" composes when d * Tk reaches this. Measured on llvmpipe (forward + backward,
// fused / composed wall time; the composition rides the register-tiled matmul): 0.7-0.8 for the default
// model's shapes (d = 16, Tk = 5..19), 1.0 at d = 16, Tk = 50 and at d = 32, Tk = 14, 1.3 at d = 32,
// Tk = 67 (2 queries), 1.8 at d = 32, Tk = 32, 3 at d = 64, Tk = 64 and 197. Each key costs the fused
// kernels per-invocation reads of its d floats that llvmpipe cannot share between the rows that use it.
const CPU_FUSED_LIMIT = 1024;

/** Four-float slots in each of the kernel's two staged tiles: what workgroup memory holds, up to 32 KiB. */
function tileSlots(gpu: Gpu): number {
  // TODO: 32 KiB per 64-thread workgroup may cost occupancy on a real GPU; measured only on llvmpipe, where
  // bigger tiles mean fewer barriers.
  const bytes = Math.min(gpu.limits.maxComputeWorkgroupStorageSize, 32768);
  return Math.floor((bytes - 8 * STAT) / 32);
}

/**
 * How one kernel covers `batch` items of `rows` rows each, streaming `other` rows per item (see the WGSL):
 * `items` per workgroup, `rows` per item and workgroup in `blocks` blocks, `tile` streamed rows at a time,
 * staged through workgroup memory when `stage`.
 */
interface Launch {
  rows: number;
  items: number;
  tile: number;
  blocks: number;
  stage: boolean;
  workgroups: [number, number];
}

/** The launch for rows of `d4` vec4 slots, with `slots` slots in each staged tile. */
function launch(
  rows: number,
  other: number,
  batch: number,
  d4: number,
  slots: number,
  maxPerDim: number,
): Launch {
  const blocks = Math.max(1, Math.ceil(rows / WG));
  const r = Math.max(1, Math.ceil(rows / blocks));
  // Staging a row costs a write, a barrier and a read per row that uses it: it pays only when shared.
  const stage = r >= MIN_SHARING;
  let items = Math.max(1, Math.min(Math.floor(WG / r), batch));
  let tile = Math.max(1, other);
  if (stage) {
    items = Math.max(1, Math.min(items, Math.floor(slots / (MIN_TILE * d4)), STAT / MIN_TILE));
    tile = Math.max(1, Math.min(MAX_TILE, Math.floor(slots / (items * d4)), Math.floor(STAT / items), other));
  }
  const workgroups = grid1d(blocks * Math.ceil(batch / items), 1, maxPerDim);
  return { rows: r, items, tile, blocks, stage, workgroups };
}

/** Whether the fused kernels run rows of width `d` over `tk` keys (else the ops compose them). */
function fusedFits(gpu: Gpu, d: number, tk: number, options: AttentionOptions): boolean {
  const implementation = options.implementation ?? "auto";
  const cpuPrefersComposed = isCpuAdapter(gpu) && d * tk >= CPU_FUSED_LIMIT;
  return d <= MAX_D && implementation !== "composed" && !(implementation === "auto" && cpuPrefersComposed);
}

/** The composition the kernels replace: matmul, mask, softmax, matmul. */
function composed(q: Tensor, k: Tensor, v: Tensor, causal: boolean, factor: number): Tensor {
  let scores = matmul(scaleOp(q, factor), k, { transposeB: true }); // [..., Tq, Tk]
  if (causal) {
    const [tq, tk] = scores.shape.slice(-2);
    const mask = new Float32Array(tq * tk);
    for (let i = 0; i < tq; i++) mask.fill(1, i * tk + Math.min(i + 1, tk), (i + 1) * tk);
    scores = maskedFill(scores, tensor(mask, [tq, tk]), -Infinity);
  }
  return matmul(softmax(scores), v);
}

/**
 * Scaled dot-product attention, fused: `y = softmax(scale q k^T) v` over the last two axes, for every
 * batch item of the leading dims, in one dispatch.
 *
 * The forward saves `lse`, the log-sum-exp of each query row's scores; the backward reads it with `q`,
 * `k`, `v` and the output `y`: keep them alive until `backward()`, as a `tidy` around the whole step does.
 * The backward writes every gradient row once from one thread (no atomics), so it is deterministic.
 *
 * Heads wider than 128 run the composed ops (`matmul`, `softmax`, `matmul`) instead, and so do rows of
 * many long keys (d * Tk >= 1024) on a CPU rasteriser (llvmpipe, SwiftShader, WARP, any fallback
 * adapter), where the register-tiled matmul beats the fused kernels' per-invocation reads;
 * `implementation` forces either.
 *
 * @param q Queries, f32 `[..., Tq, d]`.
 * @param k Keys, f32 `[..., Tk, d]`, with `q`'s leading dims (no broadcasting: materialise it first).
 * @param v Values, f32 of `k`'s shape.
 * @param options `causal` (key j visible to query i iff j <= i), `scale` (default `d ** -0.5`) and
 * `implementation` (default `"auto"`).
 * @returns `y`, f32 `[..., Tq, d]`. A query with no visible key (Tk = 0) gets zeros.
 * @throws {RangeError} When the shapes do not fit together.
 *
 * @example Two queries over three keys
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { attention } from "./attention.ts";
 * setGpu(await requestGpu());
 * const q = tensor([1, 0, 0, 1], [1, 2, 2]);
 * const k = tensor([1, 0, 0, 1, 1, 1], [1, 3, 2]);
 * const v = tensor([1, 0, 0, 1, 1, 1], [1, 3, 2]);
 * const y = await attention(q, k, v).toArray(); // [1, 2, 2]: [0.802, 0.599, 0.599, 0.802]
 * if (Math.abs(y[0] - 0.8022) > 1e-3) throw new Error(`unexpected ${y}`);
 * ```
 * @example Causal self-attention over heads
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { attention } from "./attention.ts";
 * setGpu(await requestGpu());
 * const x = tensor([1, 2, 3, 4, 5, 6], [1, 1, 3, 2]); // [B, H, T, d]
 * const y = await attention(x, x, x, { causal: true }).toArray();
 * if (y[0] !== 1 || y[1] !== 2) throw new Error("the first query sees only the first key");
 * ```
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  expectF32("attention", q, k, v);
  if (q.rank < 2 || k.rank < 2) {
    throw new RangeError(
      `attention: expected q [..., Tq, d] and k [..., Tk, d] of rank >= 2, got q ${
        formatShape(q.shape)
      } and k ${formatShape(k.shape)}`,
    );
  }
  const [tq, d] = q.shape.slice(-2);
  const tk = k.shape[k.rank - 2];
  const lead = q.shape.slice(0, -2);
  const want = formatShape([...lead, tk, d]);
  if (formatShape(k.shape) !== want) {
    throw new RangeError(
      `attention: k ${formatShape(k.shape)} does not fit q ${formatShape(q.shape)}: expected k ${want}`,
    );
  }
  if (formatShape(v.shape) !== want) {
    throw new RangeError(
      `attention: v ${formatShape(v.shape)} does not fit k ${formatShape(k.shape)}: expected v ${want}`,
    );
  }
  const causal = options.causal ?? false;
  const factor = options.scale ?? d ** -0.5;
  const gpu = q.gpu;
  if (!fusedFits(gpu, d, tk, options)) return composed(q, k, v, causal, factor);

  const batch = lead.reduce((a, b) => a * b, 1);
  const plain = (t: number): Layout => [0, t * d, 0, 0, d];
  const kernels = fusedKernels(gpu, {
    batch,
    heads: 1,
    tq,
    tk,
    d,
    causal,
    factor,
    layouts: { q: plain(tq), k: plain(tk), v: plain(tk), y: plain(tq) },
  });
  return fusedOp("attention", [q, k, v], q.shape, kernels, (dy, rows, lse) => {
    const dq = empty(q.shape), dk = empty(k.shape), dv = empty(v.shape);
    kernels.backward(rows, dy.buffer, lse, { dq: dq.buffer, dk: dk.buffer, dv: dv.buffer });
    return [q.requiresGrad ? dq : null, k.requiresGrad ? dk : null, v.requiresGrad ? dv : null];
  });
}

/**
 * Multi-head self-attention straight from PyTorch's packed projection: `qkv [..., T, 3 W]` (per token the
 * W = heads d query features, then the keys', then the values', head h owning features h d .. h d + d - 1
 * of each) → `y [..., T, W]`, each head's output in its own features: the same numbers as splitting the
 * heads, {@link attention} per head and merging them, without the split, the merge or their gradients
 * (the fused kernels read and write the rows in place; the gradient is one `[..., T, 3 W]` tensor).
 *
 * Where {@link attention} would compose (heads wider than 128, or long rows on a CPU rasteriser) this
 * splits, composes and merges.
 *
 * @param qkv Packed queries, keys and values, f32 `[..., T, 3 W]`.
 * @param heads The number of heads H (W = H d).
 * @param options As for {@link attention}.
 * @returns `y`, f32 `[..., T, W]`.
 * @throws {RangeError} When the last dimension is not 3 `heads` times a head width.
 *
 * @example Two heads of width 1 over two tokens
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { packedAttention } from "./attention.ts";
 * setGpu(await requestGpu());
 * // Per token: q (2 heads), k (2 heads), v (2 heads).
 * const qkv = tensor([0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 3, 4], [1, 2, 6]);
 * const y = await packedAttention(qkv, 2).toArray(); // zero scores: each head averages its values
 * if (y[0] !== 2 || y[1] !== 3) throw new Error(`unexpected ${y}`);
 * ```
 */
export function packedAttention(qkv: Tensor, heads: number, options: AttentionOptions = {}): Tensor {
  expectF32("packedAttention", qkv);
  const [t, width3] = qkv.shape.slice(-2);
  if (qkv.rank < 2 || !Number.isInteger(heads) || heads < 1 || width3 % (3 * heads) !== 0) {
    throw new RangeError(
      `packedAttention: expected qkv [..., T, 3 * heads * d] with ${heads} heads, got ${
        formatShape(qkv.shape)
      }`,
    );
  }
  const w = width3 / 3, d = w / heads;
  const lead = qkv.shape.slice(0, -2);
  const causal = options.causal ?? false;
  const factor = options.scale ?? d ** -0.5;
  const gpu = qkv.gpu;
  if (!fusedFits(gpu, d, t, options)) {
    const split = splitHeads(qkv, 3 * heads); // [..., 3H, T, d]
    const part = (i: number) => slice(split, lead.length, i * heads, (i + 1) * heads);
    return mergeHeads(attention(part(0), part(1), part(2), options));
  }

  const batch = lead.reduce((a, b) => a * b, 1) * heads;
  const packed = (base: number): Layout => [base, t * width3, d, 0, width3];
  const kernels = fusedKernels(gpu, {
    batch,
    heads,
    tq: t,
    tk: t,
    d,
    causal,
    factor,
    layouts: { q: packed(0), k: packed(w), v: packed(2 * w), y: [0, t * w, d, 0, w] },
  });
  return fusedOp("packedAttention", [qkv], [...lead, t, w], kernels, (dy, rows, lse) => {
    const dqkv = empty(qkv.shape);
    kernels.backward(rows, dy.buffer, lse, { dq: dqkv.buffer, dk: dqkv.buffer, dv: dqkv.buffer });
    return [dqkv];
  });
}

/**
 * The Prompter's attention: in every slot of every image, the slot's prompt rows attend to themselves and to
 * the image's rows. `qkv [B, M, P, 3 W]` holds the prompts' packed queries, keys and values (M slots of P
 * prompt tokens), `kv [B, N, 2 W]` the image rows' packed keys and values; for slot m of image b, head h,
 * `softmax(scale q k^T) v` over the keys [the slot's own P, then the image's N]. The fused kernels read the
 * image rows in place for every slot (they are never copied per slot), and the backward sums their gradient
 * over the slots in the kernel that computes it: three dispatches, where the composition takes a dozen.
 *
 * @param qkv The prompts' queries, keys and values, f32 `[B, M, P, 3 W]`.
 * @param kv The image rows' keys and values, f32 `[B, N, 2 W]`.
 * @param heads The number of heads H (W = H d).
 * @param options `scale` and `implementation` as for {@link attention} (never causal).
 * @returns `y`, f32 `[B, M, P, W]`, each head's output in its own features.
 * @throws {RangeError} When the shapes do not fit together.
 *
 * @example One slot of one prompt over two image rows, one head of width 1
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { slotAttention } from "./attention.ts";
 * setGpu(await requestGpu());
 * const qkv = tensor([0, 0, 3], [1, 1, 1, 3]); // q = 0, k = 0, v = 3: all scores 0
 * const kv = tensor([0, 6, 0, 9], [1, 2, 2]); // two image rows: (k, v) = (0, 6) and (0, 9)
 * const y = await slotAttention(qkv, kv, 1).toArray();
 * if (y[0] !== 6) throw new Error(`the mean of 3, 6 and 9, got ${y}`);
 * ```
 */
export function slotAttention(
  qkv: Tensor,
  kv: Tensor,
  heads: number,
  options: Omit<AttentionOptions, "causal"> = {},
): Tensor {
  expectF32("slotAttention", qkv, kv);
  const [b, m, p, width3] = qkv.shape;
  const w = width3 / 3, d = w / heads;
  const n = kv.shape[1];
  if (
    qkv.rank !== 4 || kv.rank !== 3 || !Number.isInteger(heads) || heads < 1 || !Number.isInteger(d) ||
    kv.shape[0] !== b || kv.shape[2] !== 2 * w
  ) {
    throw new RangeError(
      `slotAttention: expected qkv [B, M, P, 3 * heads * d] and kv [B, N, 2 * heads * d] with ${heads} heads, ` +
        `got qkv ${formatShape(qkv.shape)} and kv ${formatShape(kv.shape)}`,
    );
  }
  const factor = options.scale ?? d ** -0.5;
  const gpu = qkv.gpu;
  if (!fusedFits(gpu, d, p + n, options)) {
    // Per head, slots next to each other: [B, H, M, P, d]; the image's rows copied to every slot.
    const part = (x: Tensor, i: number, parts: number) =>
      slice(splitHeads(x, parts * heads), x.rank - 2, i * heads, (i + 1) * heads);
    const own = (i: number) => permute(part(qkv, i, 3), [0, 2, 1, 3, 4]);
    const image = (i: number) =>
      broadcastTo(reshape(part(kv, i, 2), [b, heads, 1, n, d]), [b, heads, m, n, d]);
    const keys = concat([own(1), image(0)], -2), values = concat([own(2), image(1)], -2);
    const y = attention(own(0), keys, values, options); // [B, H, M, P, d]
    return mergeHeads(permute(y, [0, 2, 1, 3, 4]));
  }

  // The kernels read every row from one buffer: the prompts' q, k, v, then the image's k, v at `image`.
  const joint = concat([reshape(qkv, [-1]), reshape(kv, [-1])], 0);
  const image = b * m * p * width3;
  const promptRows = (base: number): Layout => [base, m * p * width3, d, p * width3, width3];
  const imageRows = (base: number): Layout => [image + base, n * 2 * w, d, 0, 2 * w];
  const output: Layout = [0, m * p * w, d, p * w, w];
  // Items (b H + h) M + m, P query rows each, over the slot's own P keys, then the image's N.
  const slots: FusedProblem = {
    batch: b * heads * m,
    heads,
    slots: m,
    tq: p,
    tk: p + n,
    split: p,
    d,
    causal: false,
    factor,
    layouts: {
      q: promptRows(0),
      k: promptRows(w),
      v: promptRows(2 * w),
      y: output,
      k2: imageRows(0),
      v2: imageRows(w),
    },
  };
  const kernels = fusedKernels(gpu, slots);
  return fusedOp("slotAttention", [joint], [b, m, p, w], kernels, (dy, rows, lse) => {
    const djoint = empty(joint.shape);
    const delta = empty([kernels.queryRows]);
    kernels.dq(rows, dy.buffer, lse, djoint.buffer, delta.buffer);
    // The own keys' gradients, per slot; then the image keys', each over the M P queries of all the image's
    // slots, as items (b H + h) with rows m P + i (lse and delta run in that order too).
    fusedKernels(gpu, { ...slots, tk: p, split: p })
      .dkv(rows, dy.buffer, lse, delta.buffer, djoint.buffer, djoint.buffer);
    fusedKernels(gpu, {
      batch: b * heads,
      heads,
      tq: m * p,
      tk: n,
      d,
      causal: false,
      factor,
      layouts: {
        q: [0, m * p * width3, d, 0, width3],
        k: imageRows(0),
        v: imageRows(w),
        y: [0, m * p * w, d, 0, w],
      },
    }).dkv(rows, dy.buffer, lse, delta.buffer, djoint.buffer, djoint.buffer);
    delta.dispose();
    return [djoint];
  });
}

/**
 * `[..., T, H d]` → `[..., H, T, d]`: head h takes features h d … (h + 1) d - 1, as `nn.MultiheadAttention`.
 *
 * @example
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { splitHeads } from "./attention.ts";
 * setGpu(await requestGpu());
 * const x = tensor([1, 2, 3, 4], [1, 2, 2]); // two tokens of two heads of width 1
 * if (String(await splitHeads(x, 2).toArray()) !== "1,3,2,4") throw new Error("heads first");
 * ```
 */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [t, width] = x.shape.slice(-2);
  const lead = x.shape.slice(0, -2);
  const r = lead.length;
  const split = reshape(x, [...lead, t, heads, width / heads]);
  return permute(split, [...lead.keys(), r + 1, r, r + 2]);
}

/**
 * `[..., H, T, d]` → `[..., T, H d]`, the inverse of {@link splitHeads}.
 *
 * @example
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { mergeHeads } from "./attention.ts";
 * setGpu(await requestGpu());
 * const x = tensor([1, 3, 2, 4], [1, 2, 2, 1]);
 * if (String(await mergeHeads(x).toArray()) !== "1,2,3,4") throw new Error("tokens first");
 * ```
 */
export function mergeHeads(x: Tensor): Tensor {
  const [h, t, d] = x.shape.slice(-3);
  const lead = x.shape.slice(0, -3);
  const r = lead.length;
  return reshape(permute(x, [...lead.keys(), r + 1, r, r + 2]), [...lead, t, h * d]);
}

/**
 * Where one array's rows live (see attention.wgsl): row i of item b = (n heads + h) slots + s starts at
 * float `base + n outer + h head + s slot + i row`.
 */
type Layout = [base: number, outer: number, head: number, slot: number, row: number];

/**
 * One fused attention problem: `batch` items of `tq` query and `tk` key rows of width `d`, items numbered
 * (n heads + h) slots + s. Keys j < `split` (default `tk`) are read with the k and v layouts, the others
 * (row j - split) with k2 and v2, in the same buffers.
 */
interface FusedProblem {
  batch: number;
  heads: number;
  slots?: number;
  tq: number;
  tk: number;
  split?: number;
  d: number;
  causal: boolean;
  factor: number;
  layouts: { q: Layout; k: Layout; v: Layout; y: Layout; k2?: Layout; v2?: Layout };
}

/** The buffers holding the rows of q, k, v and y (which may all be one buffer). */
type Rows = { q: GPUBuffer; k: GPUBuffer; v: GPUBuffer; y: GPUBuffer };

/**
 * The op around a problem's kernels: the output y of `shape`, the forward reading q, k, v from `inputs`
 * (the first for all three when there is one, as in a packed projection), and the autograd node, whose
 * `backward` gets dy, the rows (y included) and the saved log-sum-exp of every query row.
 */
function fusedOp(
  name: string,
  inputs: Tensor[],
  shape: readonly number[],
  kernels: ReturnType<typeof fusedKernels>,
  backward: (dy: Tensor, rows: Rows, lse: GPUBuffer) => (Tensor | null)[],
): Tensor {
  const [q, k = q, v = q] = inputs;
  const lse = empty([kernels.queryRows]); // saved: the log-sum-exp of each query row's scores
  const node = gradNode(name, inputs, (dy) => backward(dy, rows, lse.buffer));
  const y = empty(shape, "f32", node);
  const rows = { q: q.buffer, k: k.buffer, v: v.buffer, y: y.buffer };
  kernels.forward(rows, lse.buffer);
  // Without a backward, lse is only scratch; the pool keeps it until the recorded dispatch is done.
  if (node === null) lse.dispose();
  return y;
}

/**
 * The three kernels of attention.wgsl for one problem: the forward, and the backward's two halves: dq (which
 * also writes delta = rowsum(dy * y)), then dk and dv (which read delta; keys of the first segment only).
 */
function fusedKernels(gpu: Gpu, f: FusedProblem) {
  const maxPerDim = gpu.limits.maxComputeWorkgroupsPerDimension;
  const d4 = Math.ceil(f.d / 4);
  const slots = tileSlots(gpu);
  const { q, k, v, y } = f.layouts;
  const k2 = f.layouts.k2 ?? k, v2 = f.layouts.v2 ?? v;
  const all = [q, k, v, y, k2, v2];
  const vec = [f.d, ...all.flat()].every((x) => x % 4 === 0);
  const kernel = (entry: string, l: Launch) => ({
    file: "attention.wgsl",
    code,
    entry,
    constants: { D: f.d, TILE: slots, STAGE: l.stage ? 1 : 0, VEC: vec ? 1 : 0 },
  });
  const header = (l: Launch, split: number) => [
    ...[f.batch, f.tq, f.tk, l.rows, l.items, l.tile, l.blocks, f.causal ? 1 : 0],
    ...[f.heads, f.slots ?? 1, split, 0],
  ];
  const layoutWords = [...all.flatMap((l) => l.slice(0, 4)), ...all.map((l) => l[4]), 0, 0];
  const uniform = (l: Launch, split: number) => params([...header(l, split), ...layoutWords], [f.factor]);
  const overQueries = launch(f.tq, f.tk, f.batch, d4, slots, maxPerDim);
  const overKeys = launch(f.tk, f.tq, f.batch, d4, slots, maxPerDim);
  const split = f.split ?? f.tk;
  const queryRows = f.batch * f.tq, keyRows = f.batch * f.tk;
  return {
    /** Query rows of all items: the length of lse and delta. */
    queryRows,
    /** y and lse from q, k, v. */
    forward(rows: Rows, lse: GPUBuffer): void {
      if (queryRows === 0) return;
      gpu.dispatch({
        kernel: kernel("attention_forward", overQueries),
        inputs: [rows.q, rows.k, rows.v],
        outputs: [rows.y, lse],
        params: uniform(overQueries, split),
        workgroups: overQueries.workgroups,
      });
    },
    /** dq and delta = rowsum(dy * y) from dy. */
    dq(rows: Rows, dy: GPUBuffer, lse: GPUBuffer, dq: GPUBuffer, delta: GPUBuffer): void {
      if (queryRows === 0) return;
      gpu.dispatch({
        kernel: kernel("attention_backward_dq", overQueries),
        inputs: [rows.q, rows.k, rows.v, rows.y, dy, lse],
        outputs: [dq, delta],
        params: uniform(overQueries, split),
        workgroups: overQueries.workgroups,
      });
    },
    /** dk and dv of every key (a problem without a second segment) from dy and dq's delta. */
    dkv(rows: Rows, dy: GPUBuffer, lse: GPUBuffer, delta: GPUBuffer, dk: GPUBuffer, dv: GPUBuffer): void {
      if (split !== f.tk) {
        throw new Error("attention: dk and dv of a second key segment are a problem of their own");
      }
      if (keyRows === 0) return;
      gpu.dispatch({
        kernel: kernel("attention_backward_dkv", overKeys),
        inputs: [rows.q, rows.k, rows.v, delta, dy, lse],
        outputs: [dk, dv],
        params: uniform(overKeys, split),
        workgroups: overKeys.workgroups,
      });
    },
    /** dq, dk, dv from dy: dq, then dk and dv. */
    backward(
      rows: Rows,
      dy: GPUBuffer,
      lse: GPUBuffer,
      grads: { dq: GPUBuffer; dk: GPUBuffer; dv: GPUBuffer },
    ) {
      const delta = empty([f.batch, f.tq]);
      this.dq(rows, dy, lse, grads.dq, delta.buffer);
      this.dkv(rows, dy, lse, delta.buffer, grads.dk, grads.dv);
      delta.dispose();
    },
  };
}
