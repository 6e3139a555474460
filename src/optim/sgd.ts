/**
 * Plain stochastic gradient descent, `p -= lr * grad`, composed of ops: the new values are computed on the
 * GPU and copied into each parameter's own buffer, so parameters keep their identity (and bind groups).
 *
 * @module
 */

import { noGrad, type Tensor, tidy } from "../tensor/tensor.ts";
import { sub } from "../ops/binary.ts";
import { scale } from "../ops/unary.ts";

/**
 * SGD without momentum.
 *
 * @example
 * ```ts
 * import { backward, requestGpu, setGpu, SGD, square, sum, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const w = tensor([1, -2], [2], { requiresGrad: true });
 * const sgd = new SGD([w], { lr: 0.25 });
 * backward(sum(square(w)));
 * sgd.step();
 * console.log(await w.toArray()); // [0.5, -1]
 * ```
 */
export class SGD {
  /** The learning rate. */
  lr: number;

  /**
   * SGD over `params`.
   * @param params The parameters to update (tensors that require grad).
   * @param options `lr`: the learning rate (default 0.01).
   */
  constructor(readonly params: Tensor[], options: { lr?: number } = {}) {
    this.lr = options.lr ?? 0.01;
  }

  /** Updates every parameter that has a gradient, in place on the GPU. */
  step(): void {
    noGrad(() =>
      tidy(() => {
        for (const p of this.params) {
          if (p.grad === null) continue;
          const next = sub(p, scale(p.grad, this.lr));
          p.gpu.copy(next.buffer, 0, p.buffer, 0, p.size * 4);
        }
      })
    );
  }

  /** Frees every gradient (sets them to null). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }
}
