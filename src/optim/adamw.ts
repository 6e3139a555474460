/**
 * AdamW exactly as PyTorch's `torch.optim.AdamW` computes it (decoupled weight decay, bias correction),
 * optionally after `torch.nn.utils.clip_grad_norm_`, for all parameters at once: three GPU dispatches a step
 * (`shaders/adamw.wgsl`), however many parameters there are.
 *
 * For a parameter `p` with gradient `g` at its step `t`, with `norm` the L2 norm of all the gradients:
 * ```
 * g *= min(1, maxNorm / (norm + 1e-6))    (when clipping: step's maxNorm)
 * p -= lr * wd * p                        (decayed parameters only: rank >= 2 by default)
 * m  = b1 * m + (1 - b1) * g
 * v  = b2 * v + (1 - b2) * g^2
 * p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * p  = clamp(p, lo, hi)                   (parameters given a clamp range, e.g. logit_scale)
 * ```
 * Like PyTorch, a parameter whose `grad` is null is skipped (no decay, no moment update) and its own step
 * count `t` does not advance, so its bias correction stays in step with the gradients it has actually seen.
 *
 * How: the moments live in flat buffers ("arenas"), every parameter in a fixed segment that starts on a
 * block of 256 elements (one workgroup). Each step copies the gradients and parameters into two more arenas
 * of the same layout (buffer copies, not dispatches), sums the squared gradients block by block, reduces the
 * blocks to the norm, updates every segment in one dispatch, and copies the parameters back. A per-step
 * table gives each segment its scalars (decay, bias corrections, clamp). Models larger than one arena
 * (`maxArenaBytes`) take two dispatches more per extra arena.
 *
 * @module
 */

import code from "../../shaders/adamw.wgsl" with { type: "text" };
import { params as packParams } from "../gpu/device.ts";
import type { Gpu } from "../gpu/device.ts";
import { empty, formatShape, keep, Tensor, tensor } from "../tensor/tensor.ts";
import { grid1d } from "../ops/_op.ts";

/** A parameter with the name that `decay` and `clamp` refer to (its checkpoint name). */
export interface AdamWParam {
  /** The parameter's name, e.g. `"visual.proj"`. */
  name: string;
  /** The parameter: an f32 tensor whose `grad` the optimizer reads. */
  tensor: Tensor;
}

/** Options for {@link AdamW}; the defaults are the CLOC paper's (and `spec/model.md`'s). */
export interface AdamWOptions {
  /**
   * The learning rate (a schedule passes its own value to {@link AdamW.step}).
   * @default {1e-3}
   */
  lr?: number;
  /**
   * The moments' decay rates `[beta1, beta2]`, each in [0, 1).
   * @default {[0.9, 0.98]}
   */
  betas?: [number, number];
  /**
   * Added to the denominator `sqrt(v_hat)`.
   * @default {1e-6}
   */
  eps?: number;
  /**
   * Decoupled weight decay: decayed parameters shrink by `lr * weightDecay * p` each step.
   * @default {0.2}
   */
  weightDecay?: number;
  /**
   * Which parameters are decayed. The default decays matrices and larger (weights, embeddings) and spares
   * gains, biases, `logit_scale` and `class_embedding`.
   * @default {(name, tensor) => tensor.rank >= 2}
   */
  decay?: (name: string, tensor: Tensor) => boolean;
  /**
   * Ranges `[min, max]` by parameter name, applied after each step, e.g.
   * `{ logit_scale: [0, Math.log(100)] }`. A parameter without a gradient is clamped too.
   * @default {{}}
   */
  clamp?: Map<string, [number, number]> | Record<string, [number, number]>;
  /**
   * The most bytes one arena buffer holds (rounded down to a power of two, and to the device's buffer
   * limits); the parameters fill as many arenas as they need, each adding two dispatches to a step. A single
   * parameter larger than this gets an arena of its own.
   * @default {268435456}
   */
  maxArenaBytes?: number;
}

/** Options for {@link AdamW.step}. */
export interface AdamWStepOptions {
  /**
   * A one-element f32 tensor (a loss); when its value is NaN or infinite the step leaves every parameter
   * and moment unchanged, decided on the GPU with no readback.
   * @default {undefined}
   */
  gate?: Tensor;
  /**
   * Clip the gradients first, as `torch.nn.utils.clip_grad_norm_(params, maxNorm)`: every gradient is
   * scaled by `min(1, maxNorm / (norm + 1e-6))`, `norm` being the L2 norm of all of them together. Omitted:
   * no clipping (the norm is still returned).
   * @default {undefined}
   */
  maxNorm?: number;
}

/** The optimizer's state, for a checkpoint (see {@link AdamW.state}). */
export interface AdamWState {
  /** How many times {@link AdamW.step} was called. */
  step: number;
  /** Each parameter's own step count `t` (the steps at which it had a gradient), in parameter order. */
  steps: number[];
  /** The first moments, one per parameter, each of its parameter's shape. */
  m: Tensor[];
  /** The second moments, one per parameter. */
  v: Tensor[];
}

/** A state to restore with {@link AdamW.loadState}: moments as tensors or host arrays (null: no state yet). */
export interface AdamWStateInput {
  /** How many times {@link AdamW.step} was called. */
  step: number;
  /** Each parameter's own step count; every parameter gets `step` when omitted. */
  steps?: readonly number[];
  /** The first moments, one per parameter (copied, so the caller keeps ownership). */
  m: readonly (Tensor | Float32Array | null)[];
  /** The second moments, one per parameter (copied). */
  v: readonly (Tensor | Float32Array | null)[];
}

// The largest finite f32: infinite clamp bounds become this, since WGSL does not promise infinities.
const F32_MAX = 3.4028234663852886e38;

/** Elements per block: one workgroup of `shaders/adamw.wgsl`. Every segment starts on a block. */
const BLOCK = 256;
/** Blocks per `adamw_sum_squares` workgroup (`SUM_BLOCKS` in the shader). */
const SUM_BLOCKS = 16;
/** Words per parameter in the per-step segment table (`Segment` in the shader). */
const SEGMENT_WORDS = 8;
/** `Segment.flags`. */
const HAS_GRAD = 1, CLAMPED = 2;
const KERNEL = { file: "adamw.wgsl", code };

/** Where a parameter lives in the arenas. */
interface Place {
  /** Which arena. */
  arena: number;
  /** Its segment's first element in that arena (a multiple of {@link BLOCK}). */
  start: number;
}

/** The GPU buffers of the arenas, made on first use (see {@link AdamW}). */
interface Arena {
  /** Blocks of {@link BLOCK} elements. */
  blocks: number;
  /** Where its sums of squares start in `partials` (one per {@link SUM_BLOCKS} blocks). */
  firstPartial: number;
  /** Each block's parameter index (u32), constant. */
  blockSegment: GPUBuffer;
  /** The parameters, copied in and out every step. */
  param: GPUBuffer;
  /** The gradients, copied in every step. */
  grad: GPUBuffer;
  /** The first moments: the optimizer's state. */
  m: GPUBuffer;
  /** The second moments. */
  v: GPUBuffer;
}

interface GpuState {
  gpu: Gpu;
  arenas: Arena[];
  /** The sums of squared gradients of every arena, {@link SUM_BLOCKS} blocks each. */
  partials: GPUBuffer;
  /** How many. */
  partialCount: number;
  /** The clip factor and the apply flag, from `adamw_norm` to `adamw_update`. */
  status: GPUBuffer;
  /** A finite gate (0) for steps given none. */
  noGate: GPUBuffer;
}

/**
 * The AdamW optimizer on the GPU. Each {@link AdamW.step} records three dispatches (two more per extra
 * arena), whatever the number of parameters, and reads nothing back.
 *
 * @example Two steps on a linear weight and a bias
 * ```ts
 * import { backward, requestGpu, setGpu, square, sum, tensor } from "../../mod.ts";
 * import { AdamW } from "./adamw.ts";
 * setGpu(await requestGpu());
 * const w = tensor([1, -2, 3, -4], [2, 2], { requiresGrad: true });
 * const b = tensor([0.5, 0.5], [2], { requiresGrad: true });
 * const opt = new AdamW([{ name: "w", tensor: w }, { name: "b", tensor: b }], { lr: 0.1 });
 * for (let i = 0; i < 2; i++) {
 *   opt.zeroGrad();
 *   backward(sum(square(w)));
 *   opt.step().dispose();
 * }
 * // w moved towards 0 by about lr per step (Adam's steps have the size of lr); b had no gradient.
 * const [w0] = await w.toArray();
 * if (!(Math.abs(w0 - (1 * (1 - 0.1 * 0.2) - 0.1) * (1 - 0.1 * 0.2) + 0.1) < 1e-3)) throw new Error(`w0 = ${w0}`);
 * if ((await b.toArray())[0] !== 0.5) throw new Error("b has no grad and stays");
 * ```
 *
 * @example Clamping logit_scale after every step
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { AdamW } from "./adamw.ts";
 * setGpu(await requestGpu());
 * const logitScale = tensor([4.6], [], { requiresGrad: true });
 * const opt = new AdamW([{ name: "logit_scale", tensor: logitScale }], { clamp: { logit_scale: [0, Math.log(100)] } });
 * logitScale.grad = tensor([-1], []); // a gradient that pushes it up
 * opt.step(0.1);
 * if ((await logitScale.item()) !== Math.fround(Math.log(100))) throw new Error("clamped to ln 100");
 * ```
 *
 * @example Clipping the gradients to a global norm of 1
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { AdamW } from "./adamw.ts";
 * setGpu(await requestGpu());
 * const a = tensor([1, 1], [2], { requiresGrad: true });
 * const b = tensor([1], [1], { requiresGrad: true });
 * const opt = new AdamW([a, b]);
 * a.grad = tensor([3, 0], [2]);
 * b.grad = tensor([4], [1]);
 * const norm = opt.step(1e-3, { maxNorm: 1 }); // the gradients are scaled by 1 / 5 first
 * if (Math.abs((await norm.item()) - 5) > 1e-6) throw new Error("the norm before clipping is 5");
 * if (Math.abs((await opt.state().m[1].item()) - 0.1 * 4 / 5) > 1e-7) throw new Error("m = (1 - b1) * g / 5");
 * ```
 */
export class AdamW {
  /** The default learning rate, used when {@link AdamW.step} is given none. */
  lr: number;
  /** `[beta1, beta2]`. */
  readonly betas: readonly [number, number];
  /** The denominator's epsilon. */
  readonly eps: number;
  /** The decoupled weight decay factor. */
  readonly weightDecay: number;
  /** The parameters, in the order of {@link AdamW.state}'s arrays. */
  readonly params: readonly Tensor[];
  /** Each parameter's name (its tensor's `name`, or `params[i]` when it has none). */
  readonly names: readonly string[];
  /** Whether each parameter is weight-decayed. */
  readonly decayed: readonly boolean[];

  #clamps: ([number, number] | null)[];
  #places: Place[];
  #arenaBlocks: number[];
  #gpuState: GpuState | null = null;
  /** The tensors {@link AdamW.state} returns: copies of the moments, made on its first call. */
  #mOut: (Tensor | null)[];
  #vOut: (Tensor | null)[];
  #steps: number[];
  #step = 0;

  /**
   * Makes an optimizer over `params`; their moments (zeros) are made on first use.
   *
   * @param params The parameters: tensors (named by their `name`) or `{name, tensor}` pairs.
   * @param options See {@link AdamWOptions}.
   * @throws {TypeError} For a parameter that is not an f32 tensor, or one given twice.
   * @throws {RangeError} For an option out of range or a clamp naming no parameter.
   */
  constructor(params: readonly Tensor[] | readonly AdamWParam[], options: AdamWOptions = {}) {
    const entries: AdamWParam[] = params.map((p, i) => {
      if (p instanceof Tensor) return { name: p.name ?? `params[${i}]`, tensor: p };
      if (
        p === null || typeof p !== "object" || !(p.tensor instanceof Tensor) || typeof p.name !== "string"
      ) {
        throw new TypeError(`AdamW: params[${i}] must be a Tensor or {name, tensor}, got ${p}`);
      }
      return p;
    });
    const seenTensors = new Map<Tensor, string>();
    const seenNames = new Set<string>();
    for (const { name, tensor: t } of entries) {
      if (t.isDisposed) throw new TypeError(`AdamW: parameter "${name}" was disposed`);
      if (t.dtype !== "f32") {
        throw new TypeError(`AdamW: parameter "${name}" is ${t}, but only f32 tensors can be trained`);
      }
      const other = seenTensors.get(t);
      if (other !== undefined) {
        throw new TypeError(`AdamW: parameters "${other}" and "${name}" are the same tensor`);
      }
      if (seenNames.has(name)) throw new TypeError(`AdamW: two parameters are named "${name}"`);
      seenTensors.set(t, name);
      seenNames.add(name);
    }

    this.lr = checkLr(options.lr ?? 1e-3, "AdamW: lr");
    const [b1, b2] = options.betas ?? [0.9, 0.98];
    for (const [i, b] of [b1, b2].entries()) {
      if (!(b >= 0 && b < 1)) throw new RangeError(`AdamW: betas[${i}] must be in [0, 1), got ${b}`);
    }
    this.betas = [b1, b2];
    this.eps = options.eps ?? 1e-6;
    if (!(this.eps >= 0 && Number.isFinite(this.eps))) {
      throw new RangeError(`AdamW: eps must be >= 0, got ${this.eps}`);
    }
    this.weightDecay = options.weightDecay ?? 0.2;
    if (!(this.weightDecay >= 0 && Number.isFinite(this.weightDecay))) {
      throw new RangeError(`AdamW: weightDecay must be >= 0, got ${this.weightDecay}`);
    }
    const maxArenaBytes = options.maxArenaBytes ?? 2 ** 28;
    if (!(maxArenaBytes >= BLOCK * 4)) {
      throw new RangeError(`AdamW: maxArenaBytes must be at least ${BLOCK * 4}, got ${maxArenaBytes}`);
    }

    const clampMap = options.clamp instanceof Map
      ? options.clamp
      : new Map(Object.entries(options.clamp ?? {}) as [string, [number, number]][]);
    for (const [name, range] of clampMap) {
      if (!seenNames.has(name)) {
        throw new RangeError(
          `AdamW: clamp names "${name}", which is not a parameter (${
            [...seenNames].slice(0, 5).join(", ")
          }...)`,
        );
      }
      if (!Array.isArray(range) || range.length !== 2 || !(range[0] <= range[1])) {
        throw new RangeError(
          `AdamW: clamp range for "${name}" must be [min, max] with min <= max, got ${JSON.stringify(range)}`,
        );
      }
    }

    const decay = options.decay ?? ((_name: string, t: Tensor) => t.rank >= 2);
    this.params = entries.map((e) => e.tensor);
    this.names = entries.map((e) => e.name);
    this.decayed = entries.map((e) => !!decay(e.name, e.tensor));
    this.#clamps = entries.map((e) => clampMap.get(e.name) ?? null);

    // The arena layout: parameters in order, each segment padded to whole blocks, a new arena when the
    // next segment would not fit (a power of two, so the buffer pool's size classes waste nothing).
    let limit = maxArenaBytes;
    if (entries.length > 0) {
      const { maxBufferSize, maxStorageBufferBindingSize } = entries[0].tensor.gpu.limits;
      limit = Math.min(limit, maxBufferSize, maxStorageBufferBindingSize);
    }
    const arenaElements = 2 ** Math.floor(Math.log2(limit)) / 4;
    this.#places = [];
    this.#arenaBlocks = [];
    let used = 0;
    for (const { tensor: t } of entries) {
      const padded = Math.ceil(t.size / BLOCK) * BLOCK;
      if (used > 0 && used + padded > arenaElements) {
        this.#arenaBlocks.push(used / BLOCK);
        used = 0;
      }
      this.#places.push({ arena: this.#arenaBlocks.length, start: used });
      used += padded;
    }
    if (entries.length > 0) this.#arenaBlocks.push(used / BLOCK);

    this.#mOut = entries.map(() => null);
    this.#vOut = entries.map(() => null);
    this.#steps = entries.map(() => 0);
  }

  /**
   * Updates every parameter that has a gradient, in place on the GPU (records the dispatches; nothing waits).
   * Parameters with a null `grad` are skipped, except that their clamp range still applies. When the
   * gradients' norm is NaN or infinite the update is skipped as for a non-finite gate (PyTorch would write
   * NaNs into the parameters).
   *
   * @param lr This step's learning rate (from a schedule); {@link AdamW.lr} when omitted.
   * @param options See {@link AdamWStepOptions}. The step counts advance even when the gate skips the step.
   * @returns The L2 norm of all the gradients before clipping (0-dim, on the GPU, in the current `tidy`
   *   scope; NaN or infinite when a gradient is).
   * @throws {RangeError} When a gradient's shape differs from its parameter's, or for a bad option.
   *
   * @example
   * ```ts
   * import { requestGpu, setGpu, tensor } from "../../mod.ts";
   * import { AdamW } from "./adamw.ts";
   * setGpu(await requestGpu());
   * const b = tensor([1], [1], { requiresGrad: true });
   * const opt = new AdamW([b]);
   * b.grad = tensor([2], [1]);
   * opt.step(0.5); // the first step moves by lr * g / (|g| + eps): about 0.5
   * if (Math.abs((await b.item()) - 0.5) > 1e-5) throw new Error("moved by lr");
   * ```
   */
  step(lr: number = this.lr, options: AdamWStepOptions = {}): Tensor {
    checkLr(lr, "AdamW.step: lr");
    const { gate, maxNorm } = options;
    if (gate !== undefined && (gate.size !== 1 || gate.dtype !== "f32")) {
      throw new RangeError(`AdamW.step: the gate must be a one-element f32 tensor, got ${gate}`);
    }
    if (maxNorm !== undefined && !(maxNorm > 0 && Number.isFinite(maxNorm))) {
      throw new RangeError(`AdamW.step: maxNorm must be a finite number > 0, got ${maxNorm}`);
    }
    const n = this.params.length;
    // Check everything before recording anything, so a bad gradient leaves the state as it was.
    this.params.forEach((p, i) => {
      const g = p.grad;
      if (g === null) return;
      if (g.isDisposed) throw new Error(`AdamW.step: the gradient of "${this.names[i]}" was disposed`);
      if (g.dtype !== "f32" || formatShape(g.shape) !== formatShape(p.shape)) {
        throw new RangeError(
          `AdamW.step: the gradient of "${this.names[i]}" is ${g.dtype} ${formatShape(g.shape)}, ` +
            `but the parameter is f32 ${formatShape(p.shape)}`,
        );
      }
    });
    this.#step++;
    if (n === 0) return tensor([0], []);

    const state = this.#state();
    const { gpu, arenas } = state;
    const [b1, b2] = this.betas;
    // The segment table: `Segment` in the shader, 8 words a parameter.
    const words = new Uint32Array(SEGMENT_WORDS * n);
    const floats = new Float32Array(words.buffer);
    // Which parameters the update touches: those with a gradient, and clamped ones.
    const touched: boolean[] = [];
    for (let i = 0; i < n; i++) {
      const p = this.params[i], range = this.#clamps[i], at = SEGMENT_WORDS * i;
      words[at] = this.#places[i].start;
      words[at + 1] = p.size;
      words[at + 2] = (p.grad !== null ? HAS_GRAD : 0) | (range !== null ? CLAMPED : 0);
      if (p.grad !== null) {
        const t = ++this.#steps[i];
        floats[at + 3] = this.decayed[i] ? 1 - lr * this.weightDecay : 1;
        floats[at + 4] = lr / (1 - b1 ** t); // step_size
        floats[at + 5] = Math.sqrt(1 - b2 ** t); // bc2_sqrt
      }
      if (range !== null) {
        floats[at + 6] = Math.max(range[0], -F32_MAX);
        floats[at + 7] = Math.min(range[1], F32_MAX);
      }
      touched.push(p.grad !== null || range !== null);
    }
    const segments = gpu.upload(words);

    // Gather into the arenas: buffer copies, in order with the dispatches.
    this.params.forEach((p, i) => {
      const arena = arenas[this.#places[i].arena], offset = this.#places[i].start * 4;
      if (p.grad !== null) gpu.copy(p.grad.buffer, 0, arena.grad, offset, p.size * 4);
      if (touched[i]) gpu.copy(p.buffer, 0, arena.param, offset, p.size * 4);
    });

    const maxPerDim = gpu.limits.maxComputeWorkgroupsPerDimension;
    for (const a of arenas) {
      gpu.dispatch({
        kernel: { ...KERNEL, entry: "adamw_sum_squares" },
        inputs: [a.grad, segments, a.blockSegment],
        outputs: [state.partials],
        params: packParams([a.blocks, a.firstPartial]),
        workgroups: grid1d(a.blocks, SUM_BLOCKS, maxPerDim),
      });
    }
    const norm = empty([]);
    gpu.dispatch({
      kernel: { ...KERNEL, entry: "adamw_norm" },
      inputs: [state.partials, gate?.buffer ?? state.noGate],
      outputs: [norm.buffer, state.status],
      params: packParams([state.partialCount], [maxNorm ?? 0]),
      workgroups: [1],
    });
    for (const a of arenas) {
      gpu.dispatch({
        kernel: { ...KERNEL, entry: "adamw_update" },
        inputs: [a.grad, segments, a.blockSegment, state.status],
        outputs: [a.param, a.m, a.v],
        params: packParams([a.blocks], [b1, 1 - b1, b2, 1 - b2, this.eps]),
        workgroups: grid1d(a.blocks, 1, maxPerDim),
      });
    }

    // Scatter the updated parameters back into their own buffers.
    this.params.forEach((p, i) => {
      const arena = arenas[this.#places[i].arena];
      if (touched[i]) gpu.copy(arena.param, this.#places[i].start * 4, p.buffer, 0, p.size * 4);
    });
    gpu.release(segments); // the pool keeps it from uploads until the dispatches above are submitted
    return norm;
  }

  /**
   * Frees every parameter's gradient and sets it to null (call before each `backward`, since gradients
   * accumulate).
   *
   * @example
   * ```ts
   * import { requestGpu, setGpu, tensor } from "../../mod.ts";
   * import { AdamW } from "./adamw.ts";
   * setGpu(await requestGpu());
   * const w = tensor([1, 2], [2], { requiresGrad: true });
   * w.grad = tensor([3, 4], [2]);
   * new AdamW([w]).zeroGrad();
   * if (w.grad !== null) throw new Error("freed");
   * ```
   */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /**
   * The state to save in a checkpoint. The moments are copies taken at this call into tensors the
   * optimizer owns: read them, don't dispose them (the next call overwrites them).
   *
   * @returns The step counts and the moments, in parameter order.
   *
   * @example Save the moments to a host array
   * ```ts
   * import { requestGpu, setGpu, tensor } from "../../mod.ts";
   * import { AdamW } from "./adamw.ts";
   * setGpu(await requestGpu());
   * const w = tensor([1, 2], [2], { requiresGrad: true });
   * const opt = new AdamW([w]);
   * w.grad = tensor([1, 1], [2]);
   * opt.step();
   * const { step, m } = opt.state();
   * const m0 = await m[0].toArray(); // (1 - 0.9) * g = 0.1
   * if (step !== 1 || Math.abs(m0[0] - 0.1) > 1e-7) throw new Error("state");
   * ```
   */
  state(): AdamWState {
    const n = this.params.length;
    if (n > 0) {
      const { gpu, arenas } = this.#state();
      for (let i = 0; i < n; i++) {
        const p = this.params[i], arena = arenas[this.#places[i].arena], offset = this.#places[i].start * 4;
        const m = this.#mOut[i] ??= keep(empty(p.shape));
        const v = this.#vOut[i] ??= keep(empty(p.shape));
        gpu.copy(arena.m, offset, m.buffer, 0, p.size * 4);
        gpu.copy(arena.v, offset, v.buffer, 0, p.size * 4);
      }
    }
    return {
      step: this.#step,
      steps: [...this.#steps],
      m: [...this.#mOut] as Tensor[],
      v: [...this.#vOut] as Tensor[],
    };
  }

  /**
   * Restores a state saved by {@link AdamW.state} (for resuming a run). The moments are copied.
   *
   * @param state The step counts and moments, in parameter order (null moments: none yet).
   * @throws {RangeError} When the counts or shapes do not match the parameters; nothing changes then.
   *
   * @example Resume from host arrays
   * ```ts
   * import { requestGpu, setGpu, tensor } from "../../mod.ts";
   * import { AdamW } from "./adamw.ts";
   * setGpu(await requestGpu());
   * const w = tensor([1, 2], [2], { requiresGrad: true });
   * const opt = new AdamW([w]);
   * opt.loadState({ step: 10, m: [new Float32Array([0.1, 0.2])], v: [new Float32Array([0.01, 0.04])] });
   * if (opt.state().steps[0] !== 10) throw new Error("restored");
   * ```
   */
  loadState(state: AdamWStateInput): void {
    const n = this.params.length;
    const where = "AdamW.loadState";
    if (!Number.isSafeInteger(state.step) || state.step < 0) {
      throw new RangeError(`${where}: step must be a whole number >= 0, got ${state.step}`);
    }
    const steps = state.steps ? [...state.steps] : new Array<number>(n).fill(state.step);
    if (steps.length !== n || state.m.length !== n || state.v.length !== n) {
      throw new RangeError(
        `${where}: expected ${n} entries (one per parameter), got steps ${steps.length}, m ${state.m.length}, ` +
          `v ${state.v.length}`,
      );
    }
    for (let i = 0; i < n; i++) {
      const name = this.names[i];
      if (!Number.isSafeInteger(steps[i]) || steps[i] < 0) {
        throw new RangeError(`${where}: steps of "${name}" must be a whole number >= 0, got ${steps[i]}`);
      }
      for (const [kind, x] of [["m", state.m[i]], ["v", state.v[i]]] as const) {
        if (x === null) continue;
        const ok = x instanceof Tensor
          ? !x.isDisposed && x.dtype === "f32" && x.size === this.params[i].size
          : x instanceof Float32Array && x.length === this.params[i].size;
        if (!ok) {
          const got = x instanceof Tensor
            ? String(x)
            : `${x?.constructor?.name} of ${(x as { length?: number })?.length}`;
          throw new RangeError(
            `${where}: ${kind} of "${name}" must be f32 with ${this.params[i].size} values ` +
              `(shape ${formatShape(this.params[i].shape)}), got ${got}`,
          );
        }
      }
      if ((state.m[i] === null) !== (state.v[i] === null)) {
        throw new RangeError(`${where}: "${name}" has ${state.m[i] === null ? "v but no m" : "m but no v"}`);
      }
    }
    if (n > 0) {
      const { gpu, arenas } = this.#state();
      for (let i = 0; i < n; i++) {
        const size = this.params[i].size, arena = arenas[this.#places[i].arena];
        const offset = this.#places[i].start * 4;
        for (const [x, into] of [[state.m[i], arena.m], [state.v[i], arena.v]] as const) {
          if (size === 0) continue;
          if (x instanceof Tensor) {
            gpu.copy(x.buffer, 0, into, offset, size * 4);
          } else {
            const upload = gpu.upload(x ?? new Float32Array(size)); // null: no state yet, zeros
            gpu.copy(upload, 0, into, offset, size * 4);
            gpu.release(upload);
          }
        }
      }
    }
    this.#steps = steps;
    this.#step = state.step;
  }

  /**
   * Frees the moments and the other arenas (the parameters and their gradients stay). Using the optimizer
   * afterwards starts from zero moments.
   *
   * @example
   * ```ts
   * import { requestGpu, setGpu, tensor } from "../../mod.ts";
   * import { AdamW } from "./adamw.ts";
   * setGpu(await requestGpu());
   * const opt = new AdamW([tensor([1], [1], { requiresGrad: true })]);
   * opt.dispose();
   * ```
   */
  dispose(): void {
    for (const t of [...this.#mOut, ...this.#vOut]) t?.dispose();
    this.#mOut.fill(null);
    this.#vOut.fill(null);
    const state = this.#gpuState;
    if (state === null) return;
    this.#gpuState = null;
    for (const a of state.arenas) {
      for (const b of [a.blockSegment, a.param, a.grad, a.m, a.v]) state.gpu.release(b);
    }
    for (const b of [state.partials, state.status, state.noGate]) state.gpu.release(b);
  }

  /** The arenas, made on first use: zero moments, and each block's parameter index. */
  #state(): GpuState {
    if (this.#gpuState !== null) return this.#gpuState;
    const gpu = this.params[0].gpu;
    let firstPartial = 0;
    const arenas = this.#arenaBlocks.map((blocks, a): Arena => {
      const owner = new Uint32Array(Math.max(1, blocks));
      this.#places.forEach((place, i) => {
        if (place.arena !== a) return;
        const from = place.start / BLOCK;
        owner.fill(i, from, from + Math.ceil(this.params[i].size / BLOCK));
      });
      const bytes = Math.max(4, blocks * BLOCK * 4);
      const arena = {
        blocks,
        firstPartial,
        blockSegment: gpu.upload(owner),
        param: gpu.alloc(bytes),
        grad: gpu.alloc(bytes),
        m: gpu.upload(new Float32Array(bytes / 4)),
        v: gpu.upload(new Float32Array(bytes / 4)),
      };
      firstPartial += Math.ceil(blocks / SUM_BLOCKS);
      return arena;
    });
    this.#gpuState = {
      gpu,
      arenas,
      partials: gpu.alloc(Math.max(4, firstPartial * 4)),
      partialCount: firstPartial,
      status: gpu.alloc(8),
      noGate: gpu.upload(new Float32Array([0])),
    };
    return this.#gpuState;
  }
}

function checkLr(lr: number, where: string): number {
  if (!(lr >= 0 && Number.isFinite(lr))) {
    throw new RangeError(`${where} must be a finite number >= 0, got ${lr}`);
  }
  return lr;
}
