/**
 * `Linear`: `y = x @ weight^T + bias`, weight `[out, in]` as PyTorch stores it.
 * @module
 */

import type { Rng } from "../tensor/random.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { linear } from "../ops/matmul.ts";
import type { ActivationName } from "../ops/unary.ts";
import { Module } from "./module.ts";

/**
 * A fully connected layer with PyTorch's parameter names (`weight [out, in]`, `bias [out]`).
 *
 * @example
 * ```ts
 * import { Linear, requestGpu, Rng, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const fc = new Linear(3, 2, new Rng(0));
 * console.log(fc.forward(tensor([1, 2, 3], [1, 3])).shape); // [1, 2]
 * ```
 */
export class Linear extends Module {
  /** `[out, in]`. */
  readonly weight: Tensor;
  /** `[out]`, or null without bias. */
  readonly bias: Tensor | null;

  /**
   * A layer `inFeatures → outFeatures`.
   * @param inFeatures Input width.
   * @param outFeatures Output width.
   * @param rng Initialises the weight with normal values of std `options.std` (default in^-1/2).
   * @param options `std` of the weight; `bias` false to have none.
   */
  constructor(
    inFeatures: number,
    outFeatures: number,
    rng: Rng,
    options: { std?: number; bias?: boolean } = {},
  ) {
    super();
    const std = options.std ?? inFeatures ** -0.5;
    this.weight = this.param("weight", [outFeatures, inFeatures], rng.normals(outFeatures * inFeatures, std));
    this.bias = options.bias === false
      ? null
      : this.param("bias", [outFeatures], new Float32Array(outFeatures));
  }

  /** `x [..., in]` → `[..., out]`, through `activation` (applied in the matmul's epilogue) when given. */
  forward(x: Tensor, activation?: ActivationName): Tensor {
    return linear(x, this.weight, this.bias ?? undefined, { precision: this.precision, activation });
  }
}
