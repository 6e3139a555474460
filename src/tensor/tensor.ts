/**
 * The `Tensor`: a shape, a dtype and a GPU buffer, plus the autograd node that made it.
 *
 * Tensors are contiguous and row-major. A reshape shares its input's storage (reference counted); every
 * other op writes a new buffer. Creating a tensor registers it in the innermost {@link tidy} scope, which
 * disposes it at the scope's end unless it is returned or kept.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { halfToNumber, numberToHalf } from "./half.ts";

/**
 * Element types: `f32` for values, `i32` for token ids and indices (4 bytes each), and `f16` (2 bytes), a
 * storage type for matmul and linear operands: `matmul` reads it and accumulates in f32, `cast` converts,
 * and the other ops take f32 only. Gradients are always f32, also the gradient of an f16 tensor.
 */
export type DType = "f32" | "i32" | "f16";

/** How a tensor's gradient flows back to its inputs (set by the op that made it). */
export interface GradNode {
  /** The op's name, for errors and debugging. */
  op: string;
  /** The op's tensor inputs, in the order `backward` returns their gradients. */
  inputs: Tensor[];
  /**
   * Given the gradient of the output, the gradient of each input (null where none flows). With
   * `addendInput` set, `addend` is the gradient already gathered for that input (from its other uses), if
   * any, and the rule returns that input's gradient with the addend summed in (a kernel epilogue instead of
   * a separate add).
   */
  backward: (dout: Tensor, addend?: Tensor) => (Tensor | null)[];
  /** The input whose gathered gradient `backward` sums into its own, if the rule can. */
  addendInput?: number;
}

let currentGpu: Gpu | null = null;

/**
 * Makes `gpu` the device that tensors and ops use.
 *
 * @param gpu A device from `requestGpu()`, or null to unset.
 *
 * @example
 * ```ts
 * import { requestGpu } from "../gpu/device.ts";
 * import { setGpu } from "./tensor.ts";
 * const gpu = await requestGpu();
 * setGpu(gpu);
 * setGpu(null);
 * gpu.destroy();
 * ```
 */
export function setGpu(gpu: Gpu | null): void {
  currentGpu = gpu;
}

/**
 * The device set by {@link setGpu}.
 *
 * @returns The current {@link Gpu}.
 * @throws {Error} When none is set.
 *
 * @example
 * ```ts
 * import { getGpu, setGpu } from "./tensor.ts";
 * import { requestGpu } from "../gpu/device.ts";
 * setGpu(await requestGpu());
 * console.log(getGpu().info.description);
 * getGpu().destroy();
 * setGpu(null);
 * ```
 */
export function getGpu(): Gpu {
  if (currentGpu === null) {
    throw new Error("No GPU is set: call 'setGpu(await requestGpu())' (or 'await initGpu()') first");
  }
  return currentGpu;
}

// ---------------------------------------------------------------------------------------------------------
// Scopes and grad mode

const scopes: Set<Tensor>[] = [];
let gradEnabled = true;

/**
 * Whether ops record autograd nodes (false inside {@link noGrad}).
 *
 * @returns The grad mode.
 *
 * @example
 * ```ts
 * import { isGradEnabled, noGrad } from "./tensor.ts";
 * noGrad(() => { if (isGradEnabled()) throw new Error("should be off"); });
 * ```
 */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Runs `fn` without recording autograd nodes: its results have `requiresGrad` false.
 *
 * @param fn The work to run.
 * @returns What `fn` returns.
 *
 * @example
 * ```ts
 * import { noGrad } from "./tensor.ts";
 * const three = noGrad(() => 1 + 2);
 * if (three !== 3) throw new Error("noGrad must return fn's result");
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/**
 * Runs `fn` and disposes every tensor it created, except those in its result (found in arrays and plain
 * objects) and those marked with {@link keep}. A training step wrapped in `tidy` keeps GPU memory flat.
 *
 * @param fn Synchronous work that creates tensors (ops only record; nothing waits for the GPU).
 * @returns What `fn` returns.
 *
 * @example
 * ```ts
 * import { requestGpu } from "../gpu/device.ts";
 * import { setGpu, tensor, tidy } from "./tensor.ts";
 * const gpu = await requestGpu();
 * setGpu(gpu);
 * const kept = tidy(() => {
 *   tensor([1, 2], [2]); // disposed at the end of the scope
 *   return tensor([3], [1]);
 * });
 * if (kept.isDisposed) throw new Error("the result survives");
 * kept.dispose();
 * gpu.destroy();
 * ```
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) {
      throw new TypeError("tidy() takes a synchronous function: await outside of it");
    }
  } catch (error) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw error;
  }
  scopes.pop();
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  const parent = scopes.at(-1);
  for (const t of scope) {
    if (survivors.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/**
 * Takes tensors out of every scope, so no {@link tidy} disposes them (parameters, optimizer state, grads).
 *
 * @param value A tensor, or arrays/objects holding tensors.
 * @returns `value`.
 *
 * @example
 * ```ts
 * import { requestGpu } from "../gpu/device.ts";
 * import { keep, setGpu, tensor, tidy } from "./tensor.ts";
 * const gpu = await requestGpu();
 * setGpu(gpu);
 * let w;
 * tidy(() => { w = keep(tensor([1], [1])); });
 * if (w!.isDisposed) throw new Error("kept tensors survive");
 * gpu.destroy();
 * ```
 */
export function keep<T>(value: T): T {
  const found = new Set<Tensor>();
  collectTensors(value, found);
  for (const t of found) for (const scope of scopes) scope.delete(t);
  return value;
}

function collectTensors(value: unknown, into: Set<Tensor>): void {
  if (value instanceof Tensor) into.add(value);
  else if (Array.isArray(value)) { for (const v of value) collectTensors(v, into); }
  else if (value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, into);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Tensor

/** A GPU buffer shared by a tensor and its reshaped views. */
interface Storage {
  buffer: GPUBuffer;
  gpu: Gpu;
  refs: number;
}

/**
 * The bytes a buffer needs for `size` elements of `dtype`: 4 a value, 2 for f16 (two to a 32-bit word, the
 * count rounded up to whole words), at least 4.
 */
function bytesFor(size: number, dtype: DType): number {
  return Math.max(4, dtype === "f16" ? Math.ceil(size / 2) * 4 : size * 4);
}

/** Product of the dimensions (1 for a 0-dim shape). */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Formats a shape for messages: `[2, 3]`. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function checkShape(shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new RangeError(`Invalid shape ${formatShape(shape)}: dimensions must be whole numbers >= 0`);
    }
  }
}

/**
 * An n-dimensional array on the GPU. Make one with {@link tensor}, {@link zeros} or an op; read it with
 * {@link Tensor.toArray} (the only sync point).
 *
 * @example
 * ```ts
 * import { requestGpu } from "../gpu/device.ts";
 * import { setGpu, tensor } from "./tensor.ts";
 * const gpu = await requestGpu();
 * setGpu(gpu);
 * const t = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
 * console.log(t.shape, await t.toArray());
 * gpu.destroy();
 * ```
 */
export class Tensor {
  /** The dimensions, outermost first. */
  readonly shape: readonly number[];
  /** The element type. */
  readonly dtype: DType;
  /** Whether a gradient flows to this tensor in {@link backward}. */
  readonly requiresGrad: boolean;
  /** The autograd node of the op that made it (null for leaves and under {@link noGrad}). */
  readonly node: GradNode | null;
  /** The accumulated gradient of a leaf that requires grad, after `backward()`. */
  grad: Tensor | null = null;
  /** An optional name for messages (parameters carry their checkpoint name). */
  name: string | undefined;
  #storage: Storage | null;

  /** Low level: wraps a storage. Use {@link tensor}, {@link zeros} or an op. */
  constructor(
    storage: Storage,
    shape: readonly number[],
    dtype: DType,
    options: { requiresGrad?: boolean; node?: GradNode | null; name?: string } = {},
  ) {
    checkShape(shape);
    this.#storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.node = options.node ?? null;
    this.requiresGrad = options.requiresGrad ?? this.node !== null;
    this.name = options.name;
    scopes.at(-1)?.add(this);
  }

  /** The number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /** The number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** Whether {@link Tensor.dispose} was called. */
  get isDisposed(): boolean {
    return this.#storage === null;
  }

  /**
   * The GPU buffer: at least `size * 4` bytes, or `size * 2` rounded up to a multiple of 4 for f16 (element
   * `i` in the low half of word `i / 2` when `i` is even, the high half when odd); pool buffers may be
   * larger.
   */
  get buffer(): GPUBuffer {
    return this.#live().buffer;
  }

  /** The device that holds the tensor. */
  get gpu(): Gpu {
    return this.#live().gpu;
  }

  /** A view with another shape of the same size, sharing this tensor's buffer. Low level: see `reshape`. */
  view(shape: readonly number[], node: GradNode | null = null): Tensor {
    const storage = this.#live();
    if (sizeOf(shape) !== this.size) {
      throw new RangeError(
        `Cannot reshape ${this.#describe()} ${formatShape(this.shape)} to ${
          formatShape(shape)
        }: sizes differ`,
      );
    }
    storage.refs++;
    return new Tensor(storage, shape, this.dtype, { node, requiresGrad: node !== null });
  }

  /**
   * Copies the values to the CPU (an f16 tensor's as a `Float32Array` of its exact values). Waits for the
   * GPU: keep it out of training steps.
   */
  async toArray(): Promise<Float32Array | Int32Array> {
    const storage = this.#live();
    const bytes = await storage.gpu.read(storage.buffer, bytesFor(this.size, this.dtype));
    if (this.dtype === "i32") return new Int32Array(bytes, 0, this.size);
    if (this.dtype === "f32") return new Float32Array(bytes, 0, this.size);
    const bits = new Uint16Array(bytes, 0, this.size);
    const out = new Float32Array(this.size);
    for (let i = 0; i < out.length; i++) out[i] = halfToNumber(bits[i]);
    return out;
  }

  /** The value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new RangeError(
        `Cannot take item() of ${this.#describe()} ${formatShape(this.shape)}: it has ${this.size} elements`,
      );
    }
    return (await this.toArray())[0];
  }

  /** Frees the buffer (when no view shares it). Using the tensor afterwards throws. Idempotent. */
  dispose(): void {
    const storage = this.#storage;
    if (storage === null) return;
    this.#storage = null;
    for (const scope of scopes) scope.delete(this);
    if (--storage.refs === 0) storage.gpu.release(storage.buffer);
  }

  /** Same as {@link Tensor.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** A short description for messages: `tensor "visual.proj"` or `f32 tensor`. */
  toString(): string {
    return `${this.#describe()} ${formatShape(this.shape)}`;
  }

  #describe(): string {
    return this.name ? `tensor "${this.name}"` : `${this.dtype} tensor`;
  }

  #live(): Storage {
    if (this.#storage === null) {
      throw new Error(`Cannot use ${this.#describe()} ${formatShape(this.shape)}: it was disposed`);
    }
    return this.#storage;
  }
}

/** Options for {@link tensor} and friends. */
export interface TensorOptions {
  /**
   * The element type; an `Int32Array` makes `i32` by default. `f16` stores the values rounded to the
   * nearest f16 (ties to even).
   * @default {"f32"}
   */
  dtype?: DType;
  /**
   * Whether gradients flow to this leaf.
   * @default {false}
   */
  requiresGrad?: boolean;
  /**
   * A name for error messages.
   * @default {undefined}
   */
  name?: string;
}

/**
 * Uploads values as a new tensor.
 *
 * @param data The values in row-major order (`size` of them).
 * @param shape The dimensions; omitted, a 1-D tensor of `data.length`.
 * @param options See {@link TensorOptions}.
 * @returns The tensor.
 *
 * @example
 * ```ts
 * import { requestGpu } from "../gpu/device.ts";
 * import { setGpu, tensor } from "./tensor.ts";
 * const gpu = await requestGpu();
 * setGpu(gpu);
 * const ids = tensor(new Int32Array([3, 1]), [2]);
 * if (ids.dtype !== "i32") throw new Error("Int32Array gives i32");
 * const half = tensor([1 + 2 ** -11, 0.1], [2], { dtype: "f16" });
 * console.log(await half.toArray()); // [1, 0.0999755859375]: rounded to f16
 * gpu.destroy();
 * ```
 */
export function tensor(
  data: ArrayLike<number>,
  shape: readonly number[] = [data.length],
  options: TensorOptions = {},
): Tensor {
  checkShape(shape);
  const dtype = options.dtype ?? (data instanceof Int32Array ? "i32" : "f32");
  if (sizeOf(shape) !== data.length) {
    throw new RangeError(`Cannot make a tensor of shape ${formatShape(shape)} from ${data.length} values`);
  }
  const values = dtype === "i32"
    ? Int32Array.from(data)
    : dtype === "f16"
    ? halfWords(data)
    : Float32Array.from(data);
  const gpu = getGpu();
  const storage = { buffer: gpu.upload(values), gpu, refs: 1 };
  return new Tensor(storage, shape, dtype, {
    requiresGrad: options.requiresGrad ?? false,
    name: options.name,
  });
}

/** Values as f16 bits, two to a 32-bit word (an even count, so the upload is whole words). */
function halfWords(data: ArrayLike<number>): Uint16Array {
  const bits = new Uint16Array(data.length + (data.length % 2));
  for (let i = 0; i < data.length; i++) bits[i] = numberToHalf(data[i]);
  return bits;
}

/**
 * A new tensor whose contents are undefined, for ops to write into. Low level.
 *
 * @param shape The dimensions.
 * @param dtype The element type.
 * @param node The autograd node, when the op records one.
 * @returns The tensor.
 *
 * @example
 * ```ts
 * import { requestGpu } from "../gpu/device.ts";
 * import { empty, setGpu } from "./tensor.ts";
 * const gpu = await requestGpu();
 * setGpu(gpu);
 * const t = empty([2, 2], "f32");
 * if (t.size !== 4) throw new Error("four elements");
 * gpu.destroy();
 * ```
 */
export function empty(shape: readonly number[], dtype: DType = "f32", node: GradNode | null = null): Tensor {
  checkShape(shape);
  const gpu = getGpu();
  const storage = { buffer: gpu.alloc(bytesFor(sizeOf(shape), dtype)), gpu, refs: 1 };
  return new Tensor(storage, shape, dtype, { node });
}

/**
 * A tensor filled with one value.
 *
 * @param shape The dimensions.
 * @param value The value.
 * @param options See {@link TensorOptions}.
 * @returns The tensor.
 *
 * @example
 * ```ts
 * import { requestGpu } from "../gpu/device.ts";
 * import { full, setGpu } from "./tensor.ts";
 * const gpu = await requestGpu();
 * setGpu(gpu);
 * const t = full([3], 7);
 * if ((await t.toArray())[2] !== 7) throw new Error("filled with 7");
 * gpu.destroy();
 * ```
 */
export function full(shape: readonly number[], value: number, options: TensorOptions = {}): Tensor {
  const n = sizeOf(shape);
  const data = options.dtype === "i32" ? new Int32Array(n).fill(value) : new Float32Array(n).fill(value);
  return tensor(data, shape, options);
}

/**
 * A tensor of zeros.
 *
 * @param shape The dimensions.
 * @param options See {@link TensorOptions}.
 * @returns The tensor.
 *
 * @example
 * ```ts
 * import { requestGpu } from "../gpu/device.ts";
 * import { setGpu, zeros } from "./tensor.ts";
 * const gpu = await requestGpu();
 * setGpu(gpu);
 * const z = zeros([2, 3]);
 * if (z.size !== 6) throw new Error("six zeros");
 * gpu.destroy();
 * ```
 */
export function zeros(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return full(shape, 0, options);
}
