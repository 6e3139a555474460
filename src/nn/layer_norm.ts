/**
 * `LayerNorm` over the last axis, eps 1e-5, PyTorch's names (`weight`, `bias`).
 * @module
 */

import type { Tensor } from "../tensor/tensor.ts";
import { layerNorm } from "../ops/layer_norm.ts";
import { Module } from "./module.ts";

/**
 * Layer normalisation with a gain (init 1) and a bias (init 0).
 *
 * @example
 * ```ts
 * import { LayerNorm, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const ln = new LayerNorm(2);
 * console.log(await ln.forward(tensor([1, 3], [1, 2])).toArray()); // [-1, 1] (nearly)
 * ```
 */
export class LayerNorm extends Module {
  /** The gain `[width]`. */
  readonly weight: Tensor;
  /** The bias `[width]`. */
  readonly bias: Tensor;

  /**
   * Layer norm over a last axis of `width`.
   * @param width The normalised (last) axis's size.
   * @param eps Added to the variance.
   */
  constructor(width: number, readonly eps = 1e-5) {
    super();
    this.weight = this.param("weight", [width], new Float32Array(width).fill(1));
    this.bias = this.param("bias", [width], new Float32Array(width));
  }

  /** `x [..., width]` → same shape. */
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}
