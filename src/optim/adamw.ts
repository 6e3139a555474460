/**
 * AdamW exactly as PyTorch's `torch.optim.AdamW` computes it (decoupled weight decay, bias correction),
 * one GPU dispatch per parameter (`shaders/adamw.wgsl`), updating each parameter's own buffer in place.
 *
 * For a parameter `p` with gradient `g` at its step `t`:
 * ```
 * p -= lr * wd * p                        (decayed parameters only: rank >= 2 by default)
 * m  = b1 * m + (1 - b1) * g
 * v  = b2 * v + (1 - b2) * g^2
 * p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * p  = clamp(p, lo, hi)                   (parameters given a clamp range, e.g. logit_scale)
 * ```
 * Like PyTorch, a parameter whose `grad` is null is skipped (no decay, no moment update) and its own step
 * count `t` does not advance, so its bias correction stays in step with the gradients it has actually seen.
 *
 * @module
 */

import code from "../../shaders/adamw.wgsl" with { type: "text" };
import { params as packParams } from "../gpu/device.ts";
import { empty, formatShape, keep, Tensor, tensor, zeros } from "../tensor/tensor.ts";
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

/**
 * The AdamW optimizer on the GPU. Each {@link AdamW.step} records one dispatch per parameter with a
 * gradient and reads nothing back.
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
 *   opt.step();
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
  #uniforms: Uint32Array[];
  #m: (Tensor | null)[];
  #v: (Tensor | null)[];
  #steps: number[];
  #step = 0;

  /**
   * Makes an optimizer over `params`; their moments are made on their first step.
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
    // Everything that stays the same from step to step; the per-step scalars go in a storage buffer.
    this.#uniforms = entries.map((e, slot) => {
      const range = this.#clamps[slot];
      const lo = range ? Math.max(range[0], -F32_MAX) : 0;
      const hi = range ? Math.min(range[1], F32_MAX) : 0;
      return packParams([e.tensor.size, 0, slot, range ? 1 : 0], [b1, 1 - b1, b2, 1 - b2, this.eps, lo, hi]);
    });
    this.#m = entries.map(() => null);
    this.#v = entries.map(() => null);
    this.#steps = entries.map(() => 0);
  }

  /**
   * Updates every parameter that has a gradient, in place on the GPU (records the dispatches; nothing waits).
   * Parameters with a null `grad` are skipped, except that their clamp range still applies.
   *
   * @param lr This step's learning rate (from a schedule); {@link AdamW.lr} when omitted.
   * @param options `gate`: a one-element f32 tensor; when its value is NaN or infinite the step leaves every
   *   parameter and moment unchanged, decided on the GPU with no readback (the step counts still advance).
   * @throws {RangeError} When a gradient's shape differs from its parameter's.
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
  step(lr: number = this.lr, options: { gate?: Tensor } = {}): void {
    checkLr(lr, "AdamW.step: lr");
    const gate = options.gate;
    if (gate !== undefined && (gate.size !== 1 || gate.dtype !== "f32")) {
      throw new RangeError(`AdamW.step: the gate must be a one-element f32 tensor, got ${gate}`);
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
    if (n === 0) return;

    const [b1, b2] = this.betas;
    const scalars = new Float32Array(4 * n);
    for (let i = 0; i < n; i++) {
      if (this.params[i].grad === null) continue;
      const t = ++this.#steps[i];
      scalars[4 * i] = this.decayed[i] ? 1 - lr * this.weightDecay : 1;
      scalars[4 * i + 1] = lr / (1 - b1 ** t);
      scalars[4 * i + 2] = Math.sqrt(1 - b2 ** t);
      scalars[4 * i + 3] = 1; // apply
    }
    const gpu = this.params[0].gpu;
    const scalarBuffer = gpu.upload(scalars);
    if (gate !== undefined) {
      // A non-finite gate (a NaN loss or gradient norm) clears every slot's "apply" flag, on the GPU.
      gpu.dispatch({
        kernel: { file: "adamw.wgsl", code, entry: "adamw_gate" },
        inputs: [gate.buffer],
        outputs: [scalarBuffer],
        params: packParams([n]),
        workgroups: grid1d(n),
      });
    }
    for (let i = 0; i < n; i++) {
      const p = this.params[i];
      if (p.grad === null) {
        if (this.#clamps[i] !== null) {
          gpu.dispatch({
            kernel: { file: "adamw.wgsl", code, entry: "adamw_clamp" },
            inputs: [],
            outputs: [p.buffer],
            params: this.#uniforms[i],
            workgroups: grid1d(p.size),
          });
        }
        continue;
      }
      const [m, v] = this.#moments(i);
      gpu.dispatch({
        kernel: { file: "adamw.wgsl", code, entry: "adamw_forward" },
        inputs: [p.grad.buffer, scalarBuffer],
        outputs: [p.buffer, m.buffer, v.buffer],
        params: this.#uniforms[i],
        workgroups: grid1d(p.size),
      });
    }
    gpu.release(scalarBuffer); // the pool keeps it from uploads until the dispatches above are submitted
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
   * The state to save in a checkpoint. The moments are the optimizer's own tensors (made as zeros for the
   * parameters that have none yet): read them, don't dispose them.
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
    const m: Tensor[] = [], v: Tensor[] = [];
    for (let i = 0; i < this.params.length; i++) {
      const [mi, vi] = this.#moments(i);
      m.push(mi);
      v.push(vi);
    }
    return { step: this.#step, steps: [...this.#steps], m, v };
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
    for (let i = 0; i < n; i++) {
      this.#m[i]?.dispose();
      this.#v[i]?.dispose();
      this.#m[i] = copyMoment(state.m[i], this.params[i]);
      this.#v[i] = copyMoment(state.v[i], this.params[i]);
    }
    this.#steps = steps;
    this.#step = state.step;
  }

  /**
   * Frees the moments (the parameters and their gradients stay).
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
    for (const t of [...this.#m, ...this.#v]) t?.dispose();
    this.#m.fill(null);
    this.#v.fill(null);
  }

  /** Parameter `i`'s moments, made as zeros (kept out of every scope) on first use. */
  #moments(i: number): [Tensor, Tensor] {
    const shape = this.params[i].shape;
    this.#m[i] ??= keep(zeros(shape));
    this.#v[i] ??= keep(zeros(shape));
    return [this.#m[i], this.#v[i]];
  }
}

function checkLr(lr: number, where: string): number {
  if (!(lr >= 0 && Number.isFinite(lr))) {
    throw new RangeError(`${where} must be a finite number >= 0, got ${lr}`);
  }
  return lr;
}

function copyMoment(x: Tensor | Float32Array | null, param: Tensor): Tensor | null {
  if (x === null) return null;
  if (!(x instanceof Tensor)) return keep(tensor(x, param.shape));
  const copy = keep(empty(param.shape));
  copy.gpu.copy(x.buffer, 0, copy.buffer, 0, param.size * 4);
  return copy;
}
