/**
 * Matrix products: `matmul` (batched, NumPy-broadcast batch dims, transposed operands and a bias epilogue,
 * all in one kernel launch) and `linear` (PyTorch's `F.linear`). The kernel is `shaders/matmul.wgsl`.
 *
 * The backward reuses the forward kernel with other transpose flags, so no transpose is ever materialised:
 * `dA = dC @ B^T`, `dB = A^T @ dC`, each summed over the batch dims its operand was broadcast along, and
 * `dbias = sum of dC over every axis but the last`. The forward saves only its inputs `a`, `b`.
 *
 * @module
 */

import code from "../../shaders/matmul.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { params } from "../gpu/device.ts";
import { empty, formatShape, noGrad, sizeOf, type Tensor } from "../tensor/tensor.ts";
import { broadcastTo } from "./binary.ts";
import { broadcastShapes, expectF32, gradNode } from "./_op.ts";
import { sumTo } from "./reduce.ts";
import { reshape } from "./reshape.ts";

/**
 * The tile shape of the matmul kernel: a workgroup of `wgX` x `wgY` threads computes a
 * `tm wgY` x `4 wgX` tile of the output (`tm` x 4 per thread), walking K in steps of `tileK` through
 * workgroup memory.
 */
export interface MatmulTiles {
  /** Threads along N (the tile is `4 * wgX` columns wide). */
  wgX: number;
  /** Threads along M (the tile is `4 * wgY` rows tall). */
  wgY: number;
  /** The K step staged in workgroup memory; a multiple of 4. */
  tileK: number;
  /** Output rows per thread, 4 or 8 (the tile is then `tm * wgY` rows tall); 4 when omitted. */
  tm?: number;
}

/** Options for {@link matmul}. */
export interface MatmulOptions {
  /**
   * Read `a` as `[..., K, M]` and use its transpose.
   * @default {false}
   */
  transposeA?: boolean;
  /**
   * Read `b` as `[..., N, K]` and use its transpose.
   * @default {false}
   */
  transposeB?: boolean;
  /**
   * A `[N]` vector added to every row of the result, inside the kernel (no extra dispatch).
   * @default {undefined}
   */
  bias?: Tensor;
  /**
   * The kernel's tile shape, for benchmarks and autotuning; by default one is picked from the sizes and the
   * device's limits.
   * @default {undefined}
   */
  tiles?: MatmulTiles;
}

// The batch is split over at most this many dimensions in the kernel's uniform (a vec4u each).
const MAX_BATCH_DIMS = 4;
const MAX_Z = 65535;

// 64 x 64 tiles of 8 x 4 per thread ran ~20% faster on llvmpipe than 16 x 16 threads of 4 x 4 (5.5-6 vs
// 4.5-5 GFLOP/s at 1024^3, bench/matmul_bench.ts); not yet measured on a real GPU: autotune later.
const LARGE: MatmulTiles = { wgX: 16, wgY: 8, tileK: 16, tm: 8 };
const SMALL: MatmulTiles = { wgX: 8, wgY: 8, tileK: 16, tm: 4 };

/** Whether the device can run a tile shape (invocations and workgroup memory). */
function fits(gpu: Gpu, t: MatmulTiles): boolean {
  const limits = gpu.limits;
  const bytes = 4 * t.tileK * (4 * t.wgX + (t.tm ?? 4) * t.wgY);
  return t.wgX * t.wgY <= limits.maxComputeInvocationsPerWorkgroup &&
    t.wgX <= limits.maxComputeWorkgroupSizeX && t.wgY <= limits.maxComputeWorkgroupSizeY &&
    bytes <= limits.maxComputeWorkgroupStorageSize;
}

/** 64x64 tiles when the output is large enough to keep the GPU busy with them, else 32x32. */
function pickTiles(gpu: Gpu, m: number, n: number, batch: number): MatmulTiles {
  const bigTiles = Math.ceil(m / 64) * Math.ceil(n / 64) * batch;
  if (m > 32 && n > 32 && bigTiles >= 4 && fits(gpu, LARGE)) return LARGE;
  return SMALL;
}

function checkTiles(gpu: Gpu, t: MatmulTiles): void {
  const ok = [t.wgX, t.wgY, t.tileK].every((v) => Number.isInteger(v) && v > 0) && t.tileK % 4 === 0 &&
    (t.tm === undefined || t.tm === 4 || t.tm === 8);
  if (!ok || !fits(gpu, t)) {
    const limits = gpu.limits;
    throw new RangeError(
      `matmul: tiles ${JSON.stringify(t)} are not usable on this device: want whole wgX, wgY > 0, ` +
        `tileK a multiple of 4, tm 4 or 8, wgX * wgY <= ${limits.maxComputeInvocationsPerWorkgroup} and ` +
        `4 * tileK * (4 * wgX + tm * wgY) <= ${limits.maxComputeWorkgroupStorageSize} bytes`,
    );
  }
}

/**
 * Batch dims of the output with the element strides of each operand (0 where it broadcasts), size-1 dims
 * dropped and runs of dims that are contiguous in both operands merged.
 */
function batchLayout(
  aBatch: readonly number[],
  bBatch: readonly number[],
  outBatch: readonly number[],
  aMatrix: number,
  bMatrix: number,
): { shape: number[]; aStrides: number[]; bStrides: number[] } {
  const rank = outBatch.length;
  const pa = [...new Array(rank - aBatch.length).fill(1), ...aBatch];
  const pb = [...new Array(rank - bBatch.length).fill(1), ...bBatch];
  const strides = (padded: number[], matrix: number) => {
    const out = new Array<number>(rank);
    let s = matrix;
    for (let i = rank - 1; i >= 0; i--) {
      out[i] = padded[i] === 1 ? 0 : s;
      s *= padded[i];
    }
    return out;
  };
  const sa = strides(pa, aMatrix);
  const sb = strides(pb, bMatrix);
  const shape: number[] = [], aStrides: number[] = [], bStrides: number[] = [];
  for (let i = 0; i < rank; i++) {
    if (outBatch[i] === 1) continue;
    const last = shape.length - 1;
    if (last >= 0 && aStrides[last] === sa[i] * outBatch[i] && bStrides[last] === sb[i] * outBatch[i]) {
      // The previous dim steps over this whole one in both operands: merge them.
      shape[last] *= outBatch[i];
      aStrides[last] = sa[i];
      bStrides[last] = sb[i];
    } else {
      shape.push(outBatch[i]);
      aStrides.push(sa[i]);
      bStrides.push(sb[i]);
    }
  }
  return { shape, aStrides, bStrides };
}

/** Records the kernel launch(es) computing `out` (no autograd). */
function launch(
  a: Tensor,
  b: Tensor,
  out: Tensor,
  dims: { m: number; n: number; k: number; aBatch: number[]; bBatch: number[]; outBatch: number[] },
  transA: boolean,
  transB: boolean,
  bias: Tensor | undefined,
  tiles: MatmulTiles | undefined,
): void {
  const { m, n, k } = dims;
  const batch = sizeOf(dims.outBatch);
  if (m === 0 || n === 0 || batch === 0) return;
  const gpu = a.gpu;
  let layout = batchLayout(dims.aBatch, dims.bBatch, dims.outBatch, m * k, k * n);
  if (layout.shape.length > MAX_BATCH_DIMS) {
    // Rare: more alternating broadcast patterns than the kernel's uniform holds. Materialise both operands
    // over the full batch, which then merges into one dim.
    noGrad(() => {
      const full = (x: Tensor, rows: number, cols: number) => broadcastTo(x, [...dims.outBatch, rows, cols]);
      const a2 = full(a, transA ? k : m, transA ? m : k);
      const b2 = full(b, transB ? n : k, transB ? k : n);
      launch(
        a2,
        b2,
        out,
        { ...dims, aBatch: dims.outBatch, bBatch: dims.outBatch },
        transA,
        transB,
        bias,
        tiles,
      );
      a2.dispose();
      b2.dispose();
    });
    return;
  }
  while (layout.shape.length < MAX_BATCH_DIMS) {
    layout = {
      shape: [1, ...layout.shape],
      aStrides: [0, ...layout.aStrides],
      bStrides: [0, ...layout.bStrides],
    };
  }
  const t = tiles ?? pickTiles(gpu, m, n, batch);
  if (tiles) checkTiles(gpu, t);
  const gridX = Math.ceil(n / (4 * t.wgX));
  const gridY = Math.ceil(m / ((t.tm ?? 4) * t.wgY));
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (gridX > max || gridY > max) {
    throw new RangeError(
      `matmul: the output ${m} x ${n} needs a grid of ${gridX} x ${gridY} workgroups, over the ${max} per dimension`,
    );
  }
  // vec4 global access needs the contiguous dim of that array to be a multiple of 4 (then every row and
  // every batch matrix starts on a vec4 boundary too).
  const constants = {
    TRANS_A: transA ? 1 : 0,
    TRANS_B: transB ? 1 : 0,
    HAS_BIAS: bias ? 1 : 0,
    VEC_A: (transA ? m : k) % 4 === 0 ? 1 : 0,
    VEC_B: (transB ? k : n) % 4 === 0 ? 1 : 0,
    VEC_C: n % 4 === 0 ? 1 : 0,
    WG_X: t.wgX,
    WG_Y: t.wgY,
    TILE_K: t.tileK,
    TM: t.tm ?? 4,
  };
  const kernel = { file: "matmul.wgsl", code, entry: "matmul_forward", constants };
  // Without a bias the binding still exists; A is a valid read-only stand-in.
  const inputs = [a.buffer, b.buffer, (bias ?? a).buffer];
  const zMax = Math.min(MAX_Z, max);
  for (let z0 = 0; z0 < batch; z0 += zMax) {
    gpu.dispatch({
      kernel,
      inputs,
      outputs: [out.buffer],
      params: params([m, n, k, z0, ...layout.shape, ...layout.aStrides, ...layout.bStrides]),
      workgroups: [gridX, gridY, Math.min(zMax, batch - z0)],
    });
  }
}

/**
 * Matrix product of the last two dims, batched over the leading dims with NumPy broadcasting:
 * `op(a) @ op(b) + bias`, where `op` transposes an operand when its option says so (the kernel reads it
 * transposed; nothing is copied).
 *
 * @param a `[..., M, K]`, or `[..., K, M]` with `transposeA`; rank >= 2, f32.
 * @param b `[..., K, N]`, or `[..., N, K]` with `transposeB`; rank >= 2, f32.
 * @param options See {@link MatmulOptions}; `bias` is `[N]`.
 * @returns `[...batch, M, N]` where `batch` is the broadcast of both operands' leading dims.
 * @throws {RangeError} When the inner dims differ, the batch dims do not broadcast, an operand has rank < 2
 * or the bias is not `[N]`.
 * @throws {TypeError} When an input is not f32.
 *
 * @example A 2x3 times a 3x2
 * ```ts
 * import { matmul, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
 * const b = tensor([1, 0, 0, 1, 1, 1], [3, 2]);
 * console.log(await matmul(a, b).toArray()); // [4, 5, 10, 11]
 * ```
 *
 * @example Attention scores, q @ k^T, batched over [B, H]
 * ```ts
 * import { matmul, requestGpu, setGpu, zeros } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const q = zeros([2, 4, 5, 8]); // [B, H, T, d]
 * const k = zeros([2, 4, 5, 8]);
 * const scores = matmul(q, k, { transposeB: true });
 * if (scores.shape.join() !== "2,4,5,5") throw new Error("[B, H, T, T]");
 * ```
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const transA = options.transposeA ?? false;
  const transB = options.transposeB ?? false;
  const bias = options.bias;
  if (bias) expectF32("matmul", a, b, bias);
  else expectF32("matmul", a, b);
  if (a.rank < 2 || b.rank < 2) {
    throw new RangeError(
      `matmul: operands need rank >= 2, got ${formatShape(a.shape)} @ ${formatShape(b.shape)}; ` +
        "reshape a vector to [1, n] or [n, 1]",
    );
  }
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  if (k !== kb) {
    const t = (flag: boolean) => (flag ? "^T" : "");
    throw new RangeError(
      `matmul: inner dimensions differ: ${formatShape(a.shape)}${t(transA)} @ ${formatShape(b.shape)}${
        t(transB)
      }`,
    );
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  let outBatch: number[];
  try {
    outBatch = broadcastShapes("matmul", aBatch, bBatch);
  } catch {
    throw new RangeError(
      `matmul: batch dimensions do not broadcast: ${formatShape(a.shape)} @ ${formatShape(b.shape)}`,
    );
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== n)) {
    throw new RangeError(
      `matmul: bias must be [${n}] for an output of ${n} columns, got ${formatShape(bias.shape)}`,
    );
  }
  const outShape = [...outBatch, m, n];
  const inputs = bias ? [a, b, bias] : [a, b];
  const node = gradNode("matmul", inputs, (dc) => {
    const da = a.requiresGrad ? matmulGradA(a, b, dc, transA, transB) : null;
    const db = b.requiresGrad ? matmulGradB(a, b, dc, transA, transB) : null;
    // dbias = sum of dC over all but the last axis
    const dbias = bias?.requiresGrad ? sumTo(dc, bias.shape) : null;
    return bias ? [da, db, dbias] : [da, db];
  });
  const out = empty(outShape, "f32", node);
  launch(a, b, out, { m, n, k, aBatch, bBatch, outBatch }, transA, transB, bias, options.tiles);
  return out;
}

/** dA for C = opA(A) @ opB(B): the gradient of the stored A, summed over A's broadcast batch dims. */
function matmulGradA(a: Tensor, b: Tensor, dc: Tensor, transA: boolean, transB: boolean): Tensor {
  // opA(A) = A:   dA = dC @ opB(B)^T
  // opA(A) = A^T: dA = (dC @ opB(B)^T)^T = opB(B) @ dC^T
  const full = transA
    ? matmul(b, dc, { transposeA: transB, transposeB: true })
    : matmul(dc, b, { transposeB: !transB });
  return sumTo(full, a.shape);
}

/** dB for C = opA(A) @ opB(B): the gradient of the stored B, summed over B's broadcast batch dims. */
function matmulGradB(a: Tensor, b: Tensor, dc: Tensor, transA: boolean, transB: boolean): Tensor {
  const aBatch = sizeOf(a.shape.slice(0, -2));
  const outBatch = sizeOf(dc.shape.slice(0, -2));
  if (!transA && sizeOf(b.shape.slice(0, -2)) === 1 && aBatch === outBatch && outBatch > 1) {
    // B is shared by every batch (a weight [K, N] against activations [B, T, K]): the batch sum is part of
    // one product over the flattened rows, [B*T, K]^T @ [B*T, N], instead of B products and a sum.
    const k = a.shape[a.rank - 1];
    const n = dc.shape[dc.rank - 1];
    const a2 = reshape(a, [-1, k]);
    const dc2 = reshape(dc, [-1, n]);
    // opB(B) = B: dB = A^T @ dC;  opB(B) = B^T: dB = dC^T @ A
    const g = transB ? matmul(dc2, a2, { transposeA: true }) : matmul(a2, dc2, { transposeA: true });
    return reshape(g, b.shape);
  }
  // opB(B) = B:   dB = opA(A)^T @ dC
  // opB(B) = B^T: dB = (opA(A)^T @ dC)^T = dC^T @ opA(A)
  const full = transB
    ? matmul(dc, a, { transposeA: true, transposeB: transA })
    : matmul(a, dc, { transposeA: !transA });
  return sumTo(full, b.shape);
}

/**
 * PyTorch's `F.linear`: `x @ weight^T + bias`, as one matmul launch (transposed weight, bias in the
 * kernel's epilogue) on `x` flattened to 2-D.
 *
 * @param x `[..., in]`, f32.
 * @param weight `[out, in]`, f32 (PyTorch's layout).
 * @param bias `[out]`, optional.
 * @returns `[..., out]`.
 * @throws {RangeError} When `weight` is not 2-D or its `in` differs from `x`'s last dim.
 *
 * @example A 3-D input through a 4 -> 2 layer
 * ```ts
 * import { linear, requestGpu, setGpu, tensor, zeros } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const x = zeros([2, 3, 4]);
 * const w = zeros([2, 4]);
 * const y = linear(x, w, tensor([1, -1]));
 * console.log(y.shape, await y.toArray()); // [2, 3, 2], [1, -1, 1, -1, ...]
 * ```
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  if (weight.rank !== 2 || x.rank < 1 || x.shape[x.rank - 1] !== weight.shape[1]) {
    throw new RangeError(
      `linear: expected x [..., in] and weight [out, in], got x ${formatShape(x.shape)} and weight ${
        formatShape(weight.shape)
      }`,
    );
  }
  const inFeatures = weight.shape[1];
  const outFeatures = weight.shape[0];
  const x2 = reshape(x, [sizeOf(x.shape.slice(0, -1)), inFeatures]);
  const y2 = matmul(x2, weight, { transposeB: true, bias });
  return reshape(y2, [...x.shape.slice(0, -1), outFeatures]);
}
