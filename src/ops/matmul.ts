/**
 * Matrix products: `matmul` (batched, NumPy-broadcast batch dims, transposed operands and a bias epilogue,
 * all in one kernel launch) and `linear` (PyTorch's `F.linear`). The kernels are in `shaders/matmul.wgsl`.
 *
 * The backward reuses the forward kernel with other transpose flags, so no transpose is ever materialised:
 * `dA = dC @ B^T`, `dB = A^T @ dC`, each summed over the batch dims its operand was broadcast along, and
 * `dbias = sum of dC over every axis but the last`. The forward saves only its inputs `a`, `b`.
 *
 * Two kernels compute the same product: shared-memory tiles (`"tiled"`, for GPUs) and register tiles read
 * straight from global memory (`"regs"`, for CPU rasterisers such as llvmpipe, where it runs ~4x the
 * tiled kernel). Which one, and its tile shape, is chosen per adapter: a built-in guess by default,
 * {@link tuneMatmul} to measure (call it once at start-up), {@link matmulTuning} / {@link setMatmulTiles}
 * to save and restore a tuning. Products whose output is too small to keep the device busy split K into
 * chunks and sum them in a second, fixed-order pass.
 *
 * Either operand may be stored as f16 (on devices with `shader-f16`): the kernels read it, widen every
 * element to f32 and accumulate in f32, so the output (and the bias) are f32. `linear`'s `precision: "f16"`
 * casts its operands to f16 for this. The backward reads each operand as stored and gives f32 gradients.
 *
 * @module
 */

import matmulCode from "../../shaders/matmul.wgsl" with { type: "text" };
import activationCode from "../../shaders/activation.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { params } from "../gpu/device.ts";
import { empty, formatShape, getGpu, noGrad, sizeOf, type Tensor, tidy } from "../tensor/tensor.ts";
import { broadcastTo } from "./binary.ts";
import { cast } from "./cast.ts";
import { broadcastShapes, expectF16Support, expectFloat, gradNode, grid1d } from "./_op.ts";
import { adapterKey, isCpuAdapter, timeCandidates } from "./_autotune.ts";
import { sumTo } from "./reduce.ts";
import { activationBackward, type ActivationName } from "./unary.ts";
import { reshape } from "./reshape.ts";

// activation.wgsl (gelu, quick_gelu for the epilogue) after matmul.wgsl's own lines, so compiler messages
// keep their line numbers.
const code = `${matmulCode}\n${activationCode}`;
// The kernel's ACT override for each epilogue activation.
const ACT: Record<ActivationName, number> = { gelu: 1, quickGelu: 2 };

/**
 * A tile shape of the matmul kernels. Two kernels compute the same product (`shaders/matmul.wgsl`):
 * - `"tiled"`: a workgroup of `wgX` x `wgY` threads computes a `tm wgY` x `4 wgX` tile of the output
 *   (`tm` x 4 per thread), walking K in steps of `tileK` through workgroup memory. For GPUs.
 * - `"regs"`: each thread computes `tm` x `tn` outputs in registers, reading A and B straight from global
 *   memory as vec4s; a workgroup covers `tm wgY` x `tn wgX`. For CPU rasterisers (llvmpipe), where every
 *   read costs a scalar load per invocation and workgroup memory saves nothing.
 */
export interface MatmulTiles {
  /**
   * Which kernel.
   * @default {"tiled"}
   */
  kernel?: "tiled" | "regs";
  /** Threads along N. */
  wgX: number;
  /** Threads along M. */
  wgY: number;
  /** `"tiled"`: the K step staged in workgroup memory, a multiple of 4. Not used by `"regs"`. */
  tileK?: number;
  /**
   * Output rows per thread: 4 or 8 (`"tiled"`), 4, 8 or 16 (`"regs"`).
   * @default {4}
   */
  tm?: number;
  /**
   * `"regs"`: output columns per thread, 4, 8 or 16 (`"tiled"` always has 4).
   * @default {4}
   */
  tn?: number;
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
   * The kernel and tile shape, for benchmarks, tests and autotuning; by default the adapter's
   * {@link matmulTuning} is used, shrunk to fit small outputs.
   * @default {undefined}
   */
  tiles?: MatmulTiles;
  /**
   * Split K into this many chunks (partial products into a `[splitK, M, N]` buffer, then a sum over the
   * chunks in a fixed order): pays when M x N is too small to keep the device busy and K is long. Only for
   * a single (unbatched) product; by default chosen from the adapter's {@link MatmulTuning.splitBelow}.
   * @default {undefined}
   */
  splitK?: number;
  /**
   * An activation applied to the result (after the bias) in the kernel's epilogue, instead of a separate
   * elementwise op: the same numbers as `gelu(matmul(...))` or `quickGelu(matmul(...))`, bit for bit. The
   * sums before the activation are kept for the backward (one more tensor of the result's size).
   * @default {undefined}
   */
  activation?: ActivationName;
}

/** How matmul runs on one adapter: its tile shape and when to split K. JSON-serialisable. */
export interface MatmulTuning {
  /** The adapter this is for (vendor, architecture, device and description). */
  adapter: string;
  /** The tile shape for outputs that fill the device; smaller outputs get it shrunk. */
  tiles: MatmulTiles;
  /** Split K when an unbatched product launches fewer workgroups than this (and K is long enough). */
  splitBelow: number;
  /** Where it came from: the built-in guess for this kind of adapter, {@link tuneMatmul}, or a caller. */
  source: "default" | "tuned" | "set";
  /** What {@link tuneMatmul} measured, GFLOP/s per candidate (keyed by {@link formatTiles}) and shape. */
  measured?: Record<string, number>;
}

// The batch is split over at most this many dimensions in the kernel's uniform (a vec4u each).
const MAX_BATCH_DIMS = 4;
const MAX_Z = 65535;
// A split-K chunk is at least this long (shorter chunks spend more on the extra pass than they gain).
const SPLIT_MIN_K = 128;
const MAX_SPLITS = 32;

// Shared-memory tiles (GPUs). 64 x 64 tiles of 8 x 4 per thread; 32 x 32 for small outputs.
const TILED_LARGE: MatmulTiles = { kernel: "tiled", wgX: 16, wgY: 8, tileK: 16, tm: 8 };
const TILED_SMALL: MatmulTiles = { kernel: "tiled", wgX: 8, wgY: 8, tileK: 16, tm: 4 };
// Register tiles (CPU rasterisers). On llvmpipe (2 cores, AVX2) 16 x 16 per thread ran ~4x the tiled
// kernel above at 1024^3, 8 x 8 ~2.5x, 16 x 8 and 8 x 4 less (bench/matmul_bench.ts). A workgroup of one
// row of 8 threads (one AVX2 vector) keeps small outputs in few, full workgroups.
const REGS_CPU: MatmulTiles = { kernel: "regs", wgX: 8, wgY: 1, tm: 16, tn: 16 };

const CPU_CANDIDATES: MatmulTiles[] = [
  REGS_CPU,
  { kernel: "regs", wgX: 8, wgY: 4, tm: 16, tn: 16 },
  { kernel: "regs", wgX: 8, wgY: 4, tm: 8, tn: 8 },
];
const GPU_CANDIDATES: MatmulTiles[] = [
  TILED_LARGE,
  { kernel: "tiled", wgX: 16, wgY: 16, tileK: 16, tm: 4 },
  { kernel: "tiled", wgX: 16, wgY: 16, tileK: 8, tm: 8 },
  { kernel: "regs", wgX: 16, wgY: 16, tm: 4, tn: 4 },
  { kernel: "regs", wgX: 16, wgY: 8, tm: 8, tn: 8 },
];

/**
 * A short name for a tile shape, as used in {@link MatmulTuning.measured}.
 *
 * @param t The tile shape.
 * @returns E.g. `"regs 16x16 wg 8x2"` or `"tiled 8x4 wg 16x8 k16"`.
 *
 * @example
 * ```ts
 * import { formatTiles } from "./matmul.ts";
 * console.log(formatTiles({ kernel: "regs", wgX: 8, wgY: 2, tm: 16, tn: 16 })); // "regs 16x16 wg 8x2"
 * ```
 */
export function formatTiles(t: MatmulTiles): string {
  return (t.kernel ?? "tiled") === "regs"
    ? `regs ${t.tm ?? 4}x${t.tn ?? 4} wg ${t.wgX}x${t.wgY}`
    : `tiled ${t.tm ?? 4}x4 wg ${t.wgX}x${t.wgY} k${t.tileK}`;
}

/** Whether the device can run a tile shape (invocations and workgroup memory). */
function fits(gpu: Gpu, t: MatmulTiles): boolean {
  const limits = gpu.limits;
  const threads = t.wgX * t.wgY <= limits.maxComputeInvocationsPerWorkgroup &&
    t.wgX <= limits.maxComputeWorkgroupSizeX && t.wgY <= limits.maxComputeWorkgroupSizeY;
  if ((t.kernel ?? "tiled") === "regs") return threads;
  const bytes = 4 * (t.tileK ?? 0) * (4 * t.wgX + (t.tm ?? 4) * t.wgY);
  return threads && bytes <= limits.maxComputeWorkgroupStorageSize;
}

function checkTiles(gpu: Gpu, t: MatmulTiles): void {
  const whole = (v: number | undefined) => v !== undefined && Number.isInteger(v) && v > 0;
  const regs = t.kernel === "regs";
  const ok = (t.kernel === undefined || t.kernel === "tiled" || regs) && whole(t.wgX) && whole(t.wgY) &&
    (regs
      ? [undefined, 4, 8, 16].includes(t.tm) && [undefined, 4, 8, 16].includes(t.tn)
      : whole(t.tileK) && t.tileK! % 4 === 0 && [undefined, 4, 8].includes(t.tm) &&
        [undefined, 4].includes(t.tn));
  if (!ok || !fits(gpu, t)) {
    const limits = gpu.limits;
    throw new RangeError(
      `matmul: tiles ${JSON.stringify(t)} are not usable on this device: want kernel "tiled" or "regs", ` +
        `whole wgX, wgY > 0 with wgX * wgY <= ${limits.maxComputeInvocationsPerWorkgroup}; "tiled": tileK a ` +
        `multiple of 4, tm 4 or 8 and 4 * tileK * (4 * wgX + tm * wgY) <= ` +
        `${limits.maxComputeWorkgroupStorageSize} bytes; "regs": tm and tn 4, 8 or 16`,
    );
  }
}

// Tunings by adapter key: set by tuneMatmul or setMatmulTiles, else made on first use.
const tunings = new Map<string, MatmulTuning>();

function defaultTuning(gpu: Gpu): MatmulTuning {
  const cpu = isCpuAdapter(gpu);
  // A CPU rasteriser runs one workgroup per core: a few workgroups keep it busy. A GPU wants a few per
  // compute unit (unknown to WebGPU); 64 is a guess, tuneMatmul measures.
  const tiles = cpu ? REGS_CPU : TILED_LARGE;
  return {
    adapter: adapterKey(gpu),
    tiles: fits(gpu, tiles) ? tiles : TILED_SMALL,
    splitBelow: cpu ? 2 : 64,
    source: "default",
  };
}

/**
 * The tile shape and split-K threshold matmul uses on this device's adapter: what {@link tuneMatmul} or
 * {@link setMatmulTiles} installed for the adapter, else a built-in guess for its kind (register tiles on
 * CPU rasterisers such as llvmpipe, shared-memory tiles on GPUs).
 *
 * @param gpu The device; by default the current one.
 * @returns The tuning (a copy: change it through {@link setMatmulTiles}).
 *
 * @example Save the tuning, for a CLI to restore with setMatmulTiles
 * ```ts
 * import { matmulTuning, requestGpu, setGpu } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const saved = JSON.stringify(matmulTuning());
 * if (!JSON.parse(saved).tiles.wgX) throw new Error("a tile shape");
 * ```
 */
export function matmulTuning(gpu: Gpu = getGpu()): MatmulTuning {
  return structuredClone(currentTuning(gpu));
}

// The adapter key of each device, computed once.
const keys = new WeakMap<Gpu, string>();

/** The installed tuning itself (not a copy): what every launch reads. */
function currentTuning(gpu: Gpu): MatmulTuning {
  let key = keys.get(gpu);
  if (key === undefined) keys.set(gpu, key = adapterKey(gpu));
  let tuning = tunings.get(key);
  if (tuning === undefined) tunings.set(key, tuning = defaultTuning(gpu));
  return tuning;
}

/**
 * Installs a tuning for this device's adapter (one saved from {@link matmulTuning} or {@link tuneMatmul}
 * by an earlier run, or a tile shape of your own). Every later matmul on the adapter uses it.
 *
 * @param tuning The tile shape, or a whole tuning (its `adapter` must be this one's when given).
 * @param gpu The device; by default the current one.
 * @returns The installed tuning.
 * @throws {RangeError} When the tiles do not suit the device or the tuning is for another adapter.
 *
 * @example Restore a saved tuning
 * ```ts
 * import { matmulTuning, requestGpu, setGpu, setMatmulTiles } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const saved = JSON.parse(JSON.stringify(matmulTuning()));
 * const now = setMatmulTiles(saved);
 * if (now.source !== "set") throw new Error("installed");
 * ```
 */
export function setMatmulTiles(tuning: MatmulTiles | MatmulTuning, gpu: Gpu = getGpu()): MatmulTuning {
  const key = adapterKey(gpu);
  const whole = "tiles" in tuning ? tuning : null;
  const tiles = whole ? whole.tiles : tuning as MatmulTiles;
  if (whole && whole.adapter !== undefined && whole.adapter !== key) {
    throw new RangeError(`matmul: the tuning is for adapter "${whole.adapter}", this device is "${key}"`);
  }
  checkTiles(gpu, tiles);
  const splitBelow = whole?.splitBelow ?? currentTuning(gpu).splitBelow;
  if (!(Number.isInteger(splitBelow) && splitBelow >= 0)) {
    throw new RangeError(`matmul: splitBelow must be a whole number >= 0, got ${splitBelow}`);
  }
  const installed: MatmulTuning = {
    adapter: key,
    tiles: { ...tiles },
    splitBelow,
    source: "set",
    ...(whole?.measured ? { measured: { ...whole.measured } } : {}),
  };
  tunings.set(key, installed);
  return structuredClone(installed);
}

/** Options for {@link tuneMatmul}. */
export interface TuneMatmulOptions {
  /**
   * The tile shapes to time; by default {@link matmulCandidates} of the adapter.
   * @default {undefined}
   */
  candidates?: MatmulTiles[];
  /**
   * Timed rounds per candidate (interleaved; the best counts).
   * @default {3}
   */
  rounds?: number;
}

/**
 * The tile shapes {@link tuneMatmul} chooses from on an adapter: register tiles on CPU rasterisers,
 * shared-memory and register tiles on GPUs; only those the device can run.
 *
 * @param gpu The device; by default the current one.
 * @param kind Which list: the adapter's own, or the CPU or GPU list whatever the adapter.
 * @returns The candidates, best guess first.
 *
 * @example
 * ```ts
 * import { matmulCandidates, requestGpu, setGpu } from "../../mod.ts";
 * setGpu(await requestGpu());
 * if (matmulCandidates().length === 0) throw new Error("at least one");
 * ```
 */
export function matmulCandidates(
  gpu: Gpu = getGpu(),
  kind: "adapter" | "cpu" | "gpu" = "adapter",
): MatmulTiles[] {
  const cpu = kind === "adapter" ? isCpuAdapter(gpu) : kind === "cpu";
  return (cpu ? CPU_CANDIDATES : GPU_CANDIDATES).filter((t) => fits(gpu, t)).map((t) => ({ ...t }));
}

/**
 * Times the adapter's candidate tile shapes on two representative products (a square 512^3 one and a
 * training step's activation product, 2560 x 64 @ 64 x 256) and installs the fastest for the adapter (the
 * best sum over both products of GFLOP/s relative to the fastest candidate on it). Then, when those tiles
 * leave the device short of workgroups on a weight gradient (64 x 2560^T @ 2560 x 256), it times that
 * product whole and with K split, to set when to split. About 1.5 s on llvmpipe (plus compiling the
 * candidates the first time on a machine); run it once at start-up (the benchmarks do), and persist the
 * result with {@link matmulTuning} / {@link setMatmulTiles} if you like. Results only change by float
 * rounding between tile shapes; once chosen, matmul is deterministic.
 *
 * @param gpu The device; by default the current one.
 * @param options See {@link TuneMatmulOptions}.
 * @returns The installed tuning, with what was measured.
 * @throws {RangeError} When a given candidate does not suit the device, or there is none.
 *
 * @example
 * ```ts
 * import { requestGpu, setGpu, tuneMatmul } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const tuning = await tuneMatmul();
 * console.log(tuning.tiles, tuning.measured);
 * ```
 */
export async function tuneMatmul(
  gpu: Gpu = getGpu(),
  options: TuneMatmulOptions = {},
): Promise<MatmulTuning> {
  const candidates = options.candidates ?? matmulCandidates(gpu);
  for (const t of candidates) checkTiles(gpu, t);
  if (candidates.length === 0) throw new RangeError("matmul: tuneMatmul needs at least one candidate");
  const rounds = options.rounds ?? 3;
  // Inputs of any values (the timings do not depend on them); made directly on this device.
  const buffers: GPUBuffer[] = [];
  const operand = (shape: number[]) => {
    const bytes = 4 * sizeOf(shape);
    const buffer = gpu.upload(new Float32Array(bytes / 4).fill(0.5));
    buffers.push(buffer);
    return buffer;
  };
  const shapes = [
    { name: "512x512x512", m: 512, k: 512, n: 512 },
    { name: "2560x64x256", m: 2560, k: 64, n: 256 },
  ];
  const measured: Record<string, number> = {};
  const score = new Array<number>(candidates.length).fill(0);
  try {
    for (const s of shapes) {
      const a = operand([s.m, s.k]), b = operand([s.k, s.n]), c = operand([s.m, s.n]);
      const dims = { m: s.m, n: s.n, k: s.k, aBatch: [], bBatch: [], outBatch: [] };
      const seconds = await timeCandidates(
        gpu,
        candidates.length,
        (i) => record(gpu, a, b, c, dims, { transA: false, transB: false }, candidates[i], 1),
        { rounds },
      );
      const gflops = seconds.map((t) => 2 * s.m * s.n * s.k / t / 1e9);
      const fastest = Math.max(...gflops);
      gflops.forEach((g, i) => {
        measured[`${formatTiles(candidates[i])} ${s.name}`] = g;
        score[i] += g / fastest;
      });
    }
    const best = candidates[score.indexOf(Math.max(...score))];
    // Split-K, on a weight gradient (64 x 2560^T @ 2560 x 256): when the best tiles launch fewer than 4x
    // the guessed threshold of workgroups for it, time it whole and split to twice the workgroups. Split
    // below its workgroup count if that paid, else only below the smaller of it and the guess.
    const m = 64, k = 2560, n = 256;
    const guess = defaultTuning(gpu).splitBelow;
    const tiles = shrink(gpu, best, m, n, 1);
    const grid = gridOf(tiles, m, n);
    const groups = grid[0] * grid[1];
    const splits = splitCount(2 * groups, grid, k, 1);
    let splitBelow = guess;
    if (groups < 4 * guess && splits > 1) {
      const a = operand([k, m]), b = operand([k, n]), c = operand([m, n]);
      const dims = { m, n, k, aBatch: [], bBatch: [], outBatch: [] };
      const [whole, split] = await timeCandidates(
        gpu,
        2,
        (i) => record(gpu, a, b, c, dims, { transA: true, transB: false }, tiles, i === 0 ? 1 : splits),
        { rounds },
      );
      measured[`${formatTiles(tiles)} 64x2560x256 A^T`] = 2 * m * n * k / whole / 1e9;
      measured[`${formatTiles(tiles)} 64x2560x256 A^T split ${splits}`] = 2 * m * n * k / split / 1e9;
      splitBelow = split < 0.9 * whole ? Math.max(guess, groups + 1) : Math.min(guess, groups);
    }
    const tuning: MatmulTuning = {
      adapter: adapterKey(gpu),
      tiles: { ...best },
      splitBelow,
      source: "tuned",
      measured,
    };
    tunings.set(tuning.adapter, tuning);
    return structuredClone(tuning);
  } finally {
    await gpu.sync();
    for (const buffer of buffers) gpu.release(buffer);
  }
}

/** The tuning's tiles, shrunk so that a small output does not pay for a tile it mostly leaves empty. */
function shrink(gpu: Gpu, t: MatmulTiles, m: number, n: number, batch: number): MatmulTiles {
  if (t.kernel === "regs") {
    // Halve both sides while the workgroup's tile is over twice the output along either: on llvmpipe
    // 8 x 8 per thread beat 16 x 8 at N = 64 (and square micro-tiles beat oblong ones in general).
    let tm = t.tm ?? 4, tn = t.tn ?? 4;
    while ((tm > 4 || tn > 4) && (m <= (tm / 2) * t.wgY || n <= (tn / 2) * t.wgX)) {
      tm = Math.max(4, tm / 2);
      tn = Math.max(4, tn / 2);
    }
    return { ...t, tm, tn };
  }
  // Tiled: the tuned tile when the output fills a few of them, else 32 x 32.
  const bm = (t.tm ?? 4) * t.wgY, bn = 4 * t.wgX;
  const tiles = Math.ceil(m / bm) * Math.ceil(n / bn) * batch;
  if ((m > bm / 2 && n > bn / 2 && tiles >= 4) || !fits(gpu, TILED_SMALL)) return t;
  return TILED_SMALL;
}

/** Workgroups along N and M. */
function gridOf(t: MatmulTiles, m: number, n: number): [number, number] {
  const bn = (t.kernel === "regs" ? t.tn ?? 4 : 4) * t.wgX;
  const bm = (t.tm ?? 4) * t.wgY;
  return [Math.ceil(n / bn), Math.ceil(m / bm)];
}

/** How many K chunks an unbatched product with this grid gets: enough to launch `splitBelow` workgroups. */
function splitCount(splitBelow: number, grid: [number, number], k: number, batch: number): number {
  const groups = grid[0] * grid[1];
  if (batch !== 1 || groups >= splitBelow || k < 2 * SPLIT_MIN_K) return 1;
  return Math.min(Math.ceil(splitBelow / groups), Math.floor(k / SPLIT_MIN_K), MAX_SPLITS);
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

interface Dims {
  m: number;
  n: number;
  k: number;
  aBatch: number[];
  bBatch: number[];
  outBatch: number[];
}

/** The module text and its file name for one pair of element types of A and B. */
interface Build {
  file: string;
  code: string;
}

const builds = new Map<string, Build>();

/**
 * The matmul module for A and B stored as f32 or f16: `shaders/matmul.wgsl` as it is for two f32 operands,
 * else the same text with `AVec` and/or `BVec` set to `vec4<f16>` and `enable f16;` put first, on the first
 * line so that compiler messages keep their line numbers (see "Element types" in the shader). Pipelines are
 * cached by file name, entry and constants, so each build has its own name.
 */
function build(aF16: boolean, bF16: boolean): Build {
  const key = `${aF16 ? "f16" : "f32"} ${bF16 ? "f16" : "f32"}`;
  let found = builds.get(key);
  if (found === undefined) {
    let text = code;
    if (aF16 || bF16) {
      for (const [alias, f16] of [["AVec", aF16], ["BVec", bF16]] as const) {
        const line = `alias ${alias} = vec4<f32>;`;
        if (!text.includes(line)) throw new Error(`matmul.wgsl: the line "${line}" is missing`);
        if (f16) text = text.replace(line, `alias ${alias} = vec4<f16>;`);
      }
      text = `enable f16; ${text}`;
    }
    found = {
      file: aF16 || bF16 ? `matmul.wgsl (A ${key.replace(" ", ", B ")})` : "matmul.wgsl",
      code: text,
    };
    builds.set(key, found);
  }
  return found;
}

/**
 * What a product computes past its operands: the transposes and the epilogue (a bias, then the activation
 * ACT, 0 for none, with the sums before it written to `pre`), on tensors (`launch`) or buffers (`record`).
 */
interface Product<T> {
  transA: boolean;
  transB: boolean;
  bias?: T;
  act?: number;
  pre?: T;
}

/** Records the kernel launch(es) computing `out` (no autograd), with the given or the adapter's tiles. */
function launch(
  a: Tensor,
  b: Tensor,
  out: Tensor,
  dims: Dims,
  product: Product<Tensor>,
  tiles: MatmulTiles | undefined,
  splitK: number | undefined,
): void {
  const { m, n, k } = dims;
  const { transA, transB } = product;
  const batch = sizeOf(dims.outBatch);
  if (m === 0 || n === 0 || batch === 0) return;
  const gpu = a.gpu;
  if (batchLayout(dims.aBatch, dims.bBatch, dims.outBatch, m * k, k * n).shape.length > MAX_BATCH_DIMS) {
    // Rare: more alternating broadcast patterns than the kernel's uniform holds. Materialise both operands
    // over the full batch, which then merges into one dim (an f16 operand widened to f32 first, exactly:
    // broadcastTo moves f32 values).
    noGrad(() =>
      tidy(() => {
        const full = (x: Tensor, rows: number, cols: number) =>
          broadcastTo(cast(x, "f32"), [...dims.outBatch, rows, cols]);
        const a2 = full(a, transA ? k : m, transA ? m : k);
        const b2 = full(b, transB ? n : k, transB ? k : n);
        launch(
          a2,
          b2,
          out,
          { ...dims, aBatch: dims.outBatch, bBatch: dims.outBatch },
          product,
          tiles,
          splitK,
        );
      })
    );
    return;
  }
  if (tiles) checkTiles(gpu, tiles);
  const tuning = currentTuning(gpu);
  const t = tiles ?? shrink(gpu, tuning.tiles, m, n, batch);
  let splits = 1;
  if (splitK !== undefined) {
    if (!(Number.isInteger(splitK) && splitK >= 1)) {
      throw new RangeError(`matmul: splitK must be a whole number >= 1, got ${splitK}`);
    }
    if (splitK > 1 && batch !== 1) {
      throw new RangeError(`matmul: splitK applies to a single product, this one has a batch of ${batch}`);
    }
    splits = splitK;
  } else {
    splits = splitCount(tuning.splitBelow, gridOf(t, m, n), k, batch);
  }
  const buffers = { ...product, bias: product.bias?.buffer, pre: product.pre?.buffer };
  record(gpu, a.buffer, b.buffer, out.buffer, dims, buffers, t, splits, a.dtype === "f16", b.dtype === "f16");
}

/**
 * Records the dispatches of one product on raw buffers with a fixed tile shape and split count: the
 * forward kernel over every batch (or K chunk), and the split-K sum. `aF16`, `bF16`: the operands hold f16.
 */
function record(
  gpu: Gpu,
  a: GPUBuffer,
  b: GPUBuffer,
  out: GPUBuffer,
  dims: Dims,
  product: Product<GPUBuffer>,
  t: MatmulTiles,
  splits: number,
  aF16 = false,
  bF16 = false,
): void {
  const { m, n, k } = dims;
  const { transA, transB, bias, act = 0, pre } = product;
  const batch = sizeOf(dims.outBatch);
  let layout = batchLayout(dims.aBatch, dims.bBatch, dims.outBatch, m * k, k * n);
  while (layout.shape.length < MAX_BATCH_DIMS) {
    layout = {
      shape: [1, ...layout.shape],
      aStrides: [0, ...layout.aStrides],
      bStrides: [0, ...layout.bStrides],
    };
  }
  const regs = t.kernel === "regs";
  const [gridX, gridY] = gridOf(t, m, n);
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (gridX > max || gridY > max) {
    throw new RangeError(
      `matmul: the output ${m} x ${n} needs a grid of ${gridX} x ${gridY} workgroups, over the ${max} per dimension`,
    );
  }
  // K chunks: whole vec4s (regs) or whole tiles (tiled), so every chunk starts aligned.
  const align = regs ? 4 : t.tileK!;
  let kchunk = Math.max(k, 1);
  if (splits > 1 && k > 0) {
    kchunk = Math.ceil(Math.ceil(k / splits) / align) * align;
    splits = Math.ceil(k / kchunk);
  } else {
    splits = 1;
  }
  // vec4 global access needs the contiguous dim of that array to be a multiple of 4 (then every row and
  // every batch matrix starts on a vec4 boundary too).
  const vecC = n % 4 === 0;
  const constants: Record<string, number> = {
    TRANS_A: transA ? 1 : 0,
    TRANS_B: transB ? 1 : 0,
    HAS_BIAS: bias && splits === 1 ? 1 : 0,
    ACT: splits === 1 ? act : 0,
    VEC_A: (transA ? m : k) % 4 === 0 ? 1 : 0,
    VEC_B: (transB ? k : n) % 4 === 0 ? 1 : 0,
    VEC_C: vecC ? 1 : 0,
    WG_X: t.wgX,
    WG_Y: t.wgY,
    TM: t.tm ?? 4,
  };
  if (regs) {
    constants.TN4 = (t.tn ?? 4) / 4;
    constants.K_WHOLE = k % 4 === 0 ? 1 : 0;
  } else constants.TILE_K = t.tileK!;
  const kernel = {
    ...build(aF16, bF16),
    entry: regs ? "matmul_forward_regs" : "matmul_forward",
    constants,
  };
  // The partial sums of a split product live in a temporary [splits, M, N] buffer.
  const target = splits > 1 ? gpu.alloc(4 * splits * m * n) : out;
  // Without a bias the binding still exists; A is a valid read-only stand-in.
  const inputs = [a, b, bias && splits === 1 ? bias : a];
  const z = batch * splits;
  const zMax = Math.min(MAX_Z, max);
  const shape = [m, n, k, 0, ...layout.shape, ...layout.aStrides, ...layout.bStrides, kchunk, splits];
  for (let z0 = 0; z0 < z; z0 += zMax) {
    shape[3] = z0;
    gpu.dispatch({
      kernel,
      inputs,
      // Without an activation the pre-activation binding still exists: C stands in, and is not written.
      outputs: [target, splits === 1 && pre ? pre : target],
      params: params(shape),
      workgroups: [gridX, gridY, Math.min(zMax, z - z0)],
    });
  }
  if (splits > 1) {
    gpu.dispatch({
      kernel: {
        file: "matmul.wgsl",
        code,
        entry: "matmul_reduce",
        constants: { HAS_BIAS: bias ? 1 : 0, VEC_C: vecC ? 1 : 0, ACT: act },
      },
      inputs: [target, target, bias ?? target],
      outputs: [out, pre ?? out],
      params: params(shape),
      workgroups: grid1d(vecC ? m * n / 4 : m * n, 64, max),
    });
    gpu.release(target);
  }
}

/**
 * Matrix product of the last two dims, batched over the leading dims with NumPy broadcasting:
 * `op(a) @ op(b) + bias`, where `op` transposes an operand when its option says so (the kernel reads it
 * transposed; nothing is copied). Either operand may be f16 (see {@link cast}): it is read as stored and
 * widened to f32, the sums are f32, and the result is f32.
 *
 * @param a `[..., M, K]`, or `[..., K, M]` with `transposeA`; rank >= 2, f32 or f16.
 * @param b `[..., K, N]`, or `[..., N, K]` with `transposeB`; rank >= 2, f32 or f16.
 * @param options See {@link MatmulOptions}; `bias` is `[N]`, f32.
 * @returns `[...batch, M, N]` where `batch` is the broadcast of both operands' leading dims, f32. The
 * gradients of `a` and `b` are f32 whatever their dtype.
 * @throws {RangeError} When the inner dims differ, the batch dims do not broadcast, an operand has rank < 2
 * or the bias is not `[N]`.
 * @throws {TypeError} When an operand is i32 or the bias is not f32.
 * @throws {Error} When an operand is f16 and the device has no `shader-f16`.
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
 *
 * @example An f16 weight: f16 storage, f32 sums and output
 * ```ts
 * import { matmul, requestGpu, setGpu, tensor } from "../../mod.ts";
 * const gpu = await requestGpu();
 * setGpu(gpu);
 * if (gpu.hasF16) {
 *   const w = tensor([0.1, 0.2, 0.3, 0.4], [2, 2], { dtype: "f16" }); // stored rounded to f16
 *   const y = matmul(tensor([1, 1], [1, 2]), w);
 *   console.log(y.dtype, await y.toArray()); // "f32" [0.4000244140625, 0.599853515625]
 * }
 * ```
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const transA = options.transposeA ?? false;
  const transB = options.transposeB ?? false;
  const bias = options.bias;
  expectFloat("matmul", a, b);
  if (bias && bias.dtype !== "f32") {
    throw new TypeError(`matmul: the bias must be f32 (it is added to the f32 output), got ${bias}`);
  }
  if (a.dtype === "f16" || b.dtype === "f16") expectF16Support("matmul", a.gpu);
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
  const act = options.activation;
  if (act !== undefined && !(act in ACT)) {
    throw new RangeError(`matmul: activation must be "gelu" or "quickGelu", got ${JSON.stringify(act)}`);
  }
  // The sums before the activation, for its backward; without one, C itself is bound in its place.
  const pre = act ? empty(outShape) : undefined;
  const node = gradNode("matmul", inputs, (dy) => {
    const dc = act ? activationBackward(act, pre!, dy) : dy;
    const da = a.requiresGrad ? matmulGradA(a, b, dc, transA, transB) : null;
    const db = b.requiresGrad ? matmulGradB(a, b, dc, transA, transB) : null;
    // dbias = sum of dC over all but the last axis
    const dbias = bias?.requiresGrad ? sumTo(dc, bias.shape) : null;
    return bias ? [da, db, dbias] : [da, db];
  });
  const out = empty(outShape, "f32", node);
  const product = { transA, transB, bias, act: act ? ACT[act] : 0, pre };
  launch(a, b, out, { m, n, k, aBatch, bBatch, outBatch }, product, options.tiles, options.splitK);
  // Without a backward the sums are scratch; the pool keeps the buffer until the recorded dispatch is done.
  if (node === null) pre?.dispose();
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

/** Options for {@link linear}. */
export interface LinearOptions {
  /**
   * How the operands are stored for the product. `"f16"` casts `x` and `weight` to f16 (each that is not
   * f16 already; needs `shader-f16`) and multiplies them with f32 sums: the output is f32, the f32 bias is
   * added in the kernel, and the gradients reach `x` and `weight` as f32. `"f32"` uses the operands as they
   * are (an f16 operand is still read as f16).
   * @default {"f32"}
   */
  precision?: "f32" | "f16";
  /**
   * An activation applied in the kernel's epilogue (see {@link MatmulOptions.activation}).
   * @default {undefined}
   */
  activation?: ActivationName;
}

/**
 * PyTorch's `F.linear`: `x @ weight^T + bias`, as one matmul launch (transposed weight, bias in the
 * kernel's epilogue) on `x` flattened to 2-D; with `precision: "f16"`, on f16 copies of `x` and `weight`.
 *
 * @param x `[..., in]`, f32 or f16.
 * @param weight `[out, in]`, f32 or f16 (PyTorch's layout).
 * @param bias `[out]`, f32, optional.
 * @param options See {@link LinearOptions}.
 * @returns `[..., out]`, f32.
 * @throws {RangeError} When `weight` is not 2-D or its `in` differs from `x`'s last dim.
 * @throws {Error} With f16 operands or `precision: "f16"` on a device without `shader-f16`.
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
 *
 * @example f16 operands, f32 accumulation
 * ```ts
 * import { linear, requestGpu, setGpu, tensor } from "../../mod.ts";
 * const gpu = await requestGpu();
 * setGpu(gpu);
 * if (gpu.hasF16) {
 *   const y = linear(tensor([0.1, 0.2], [1, 2]), tensor([1, 1], [1, 2]), undefined, { precision: "f16" });
 *   console.log(y.dtype, await y.toArray()); // "f32" [0.2999267578125]: 0.1 and 0.2 rounded to f16
 * }
 * ```
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor, options: LinearOptions = {}): Tensor {
  if (weight.rank !== 2 || x.rank < 1 || x.shape[x.rank - 1] !== weight.shape[1]) {
    throw new RangeError(
      `linear: expected x [..., in] and weight [out, in], got x ${formatShape(x.shape)} and weight ${
        formatShape(weight.shape)
      }`,
    );
  }
  const inFeatures = weight.shape[1];
  const outFeatures = weight.shape[0];
  const precision = options.precision ?? "f32";
  if (precision !== "f32" && precision !== "f16") {
    throw new RangeError(`linear: precision must be "f32" or "f16", got ${JSON.stringify(precision)}`);
  }
  const x2 = reshape(x, [sizeOf(x.shape.slice(0, -1)), inFeatures]);
  const product = { transposeB: true, bias, activation: options.activation };
  const y2 = precision === "f16"
    ? matmul(cast(x2, "f16"), cast(weight, "f16"), product)
    : matmul(x2, weight, product);
  return reshape(y2, [...x.shape.slice(0, -1), outFeatures]);
}
