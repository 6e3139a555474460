/**
 * `Module`: a tree of named parameters. Names join with dots (`visual.transformer.resblocks.0.ln_1.weight`),
 * so a model's names are its checkpoint names (OpenCLIP's, see spec/model.md).
 *
 * @module
 */

import { formatShape, getGpu, keep, sizeOf, type Tensor, tensor } from "../tensor/tensor.ts";
import { expectF16Support } from "../ops/_op.ts";

/** The storage of matmul operands in linear layers (see {@link Module.precision}). */
export type Precision = "f32" | "f16";

/** Values for one parameter on the CPU, as a checkpoint holds them. */
export interface HostTensor {
  /** The dimensions. */
  shape: readonly number[];
  /** The values, row-major. */
  data: Float32Array;
}

/**
 * A node of the model tree. Subclasses register parameters with {@link Module.param} and sub-modules with
 * {@link Module.child} in their constructor.
 *
 * @example A module with one parameter
 * ```ts
 * import { Module, requestGpu, setGpu } from "../../mod.ts";
 * setGpu(await requestGpu());
 * class Scale extends Module {
 *   gain = this.param("gain", [3], new Float32Array([1, 1, 1]));
 * }
 * console.log(new Scale().namedParameters().map(([name]) => name)); // ["gain"]
 * ```
 */
export class Module {
  #params = new Map<string, Tensor>();
  #children = new Map<string, Module>();
  #precision: Precision = "f32";

  /**
   * How this module's linear layers store their matmul operands: `"f32"`, or `"f16"` (f16 copies of the
   * input and the weight, f32 accumulation and output; needs the adapter's `shader-f16`). Parameters,
   * gradients and the optimizer stay f32 either way. Set with {@link Module.setPrecision}.
   */
  get precision(): Precision {
    return this.#precision;
  }

  /**
   * Sets {@link Module.precision} on this module and every sub-module. `"f16"` throws, naming the adapter,
   * when the device has no `shader-f16`.
   *
   * @example
   * ```ts
   * import { Linear, requestGpu, Rng, setGpu } from "../../mod.ts";
   * setGpu(await requestGpu());
   * const fc = new Linear(4, 2, new Rng(0));
   * fc.setPrecision("f16");
   * if (fc.precision !== "f16") throw new Error("not set");
   * ```
   */
  setPrecision(precision: Precision): void {
    if (precision !== "f32" && precision !== "f16") {
      throw new RangeError(`precision must be "f32" or "f16", got ${JSON.stringify(precision)}`);
    }
    if (precision === "f16") expectF16Support("precision f16", getGpu());
    this.#setPrecision(precision);
  }

  #setPrecision(precision: Precision): void {
    this.#precision = precision;
    for (const child of this.#children.values()) child.#setPrecision(precision);
  }

  /** Registers a trainable parameter with its initial values; it lives until {@link Module.dispose}. */
  protected param(name: string, shape: readonly number[], init: Float32Array): Tensor {
    if (init.length !== sizeOf(shape)) {
      throw new RangeError(
        `Parameter "${name}": ${init.length} initial values for shape ${formatShape(shape)}`,
      );
    }
    const t = keep(tensor(init, shape, { requiresGrad: true, name }));
    this.#params.set(name, t);
    return t;
  }

  /** Registers a sub-module under `name`. */
  protected child<T extends Module>(name: string, module: T): T {
    this.#children.set(name, module);
    return module;
  }

  /** Every parameter with its full dotted name, in registration order. */
  namedParameters(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [name, t] of this.#params) out.push([prefix + name, t]);
    // A child registered under "" shares its parent's prefix (OpenCLIP keeps the text tower at the root).
    for (const [name, m] of this.#children) {
      out.push(...m.namedParameters(name ? `${prefix}${name}.` : prefix));
    }
    return out;
  }

  /** The parameters as a list. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** The number of trainable values. */
  parameterCount(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  /**
   * Overwrites every parameter from `values` by name. Every parameter must be present with its exact shape;
   * a missing, unexpected or wrongly shaped tensor is reported by name (all of them at once).
   *
   * @param values Parameter values by name (extra names are allowed when `allowExtra`).
   * @param options `allowExtra`: ignore names the model does not have (a bundle holds inputs too).
   */
  loadParameters(
    values: Map<string, HostTensor>,
    options: { allowExtra?: boolean; source?: string } = {},
  ): void {
    const problems: string[] = [];
    const own = new Map(this.namedParameters());
    for (const [name, t] of own) {
      const v = values.get(name);
      if (v === undefined) problems.push(`missing "${name}" ${formatShape(t.shape)}`);
      else if (formatShape(v.shape) !== formatShape(t.shape)) {
        problems.push(
          `"${name}" has shape ${formatShape(v.shape)} but the model wants ${formatShape(t.shape)}`,
        );
      }
    }
    if (!options.allowExtra) {
      for (const name of values.keys()) if (!own.has(name)) problems.push(`unexpected "${name}"`);
    }
    if (problems.length > 0) {
      const where = options.source ? `${options.source}: ` : "";
      throw new Error(`${where}cannot load the parameters: ${problems.join("; ")}`);
    }
    for (const [name, t] of own) t.gpu.write(t.buffer, values.get(name)!.data);
  }

  /** Reads every parameter back to the CPU (a sync point). */
  async stateDict(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const [name, t] of this.namedParameters()) {
      out.set(name, { shape: [...t.shape], data: (await t.toArray()) as Float32Array });
    }
    return out;
  }

  /** Frees every parameter and its gradient. */
  dispose(): void {
    for (const t of this.parameters()) {
      t.grad?.dispose();
      t.dispose();
    }
  }
}
