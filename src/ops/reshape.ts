/**
 * `reshape`: a new shape over the same buffer (no GPU work). One dimension may be -1 and is inferred.
 * @module
 */

import { formatShape, sizeOf, type Tensor } from "../tensor/tensor.ts";
import { gradNode } from "./_op.ts";

/**
 * The same values in a new shape; shares the buffer.
 * @param x Any tensor.
 * @param shape The new shape, of the same size; one entry may be -1.
 * @returns A view of `x`.
 * @example
 * ```ts
 * import { requestGpu, reshape, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(reshape(tensor([1, 2, 3, 4, 5, 6]), [2, -1]).shape); // [2, 3]
 * ```
 */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const inferred = [...shape];
  const unknown = inferred.indexOf(-1);
  if (unknown >= 0) {
    const known = sizeOf(inferred.filter((_, i) => i !== unknown));
    if (inferred.lastIndexOf(-1) !== unknown || known === 0 || x.size % known !== 0) {
      throw new RangeError(`reshape: cannot reshape ${formatShape(x.shape)} to ${formatShape(shape)}`);
    }
    inferred[unknown] = x.size / known;
  }
  if (sizeOf(inferred) !== x.size) {
    throw new RangeError(
      `reshape: cannot reshape ${formatShape(x.shape)} (${x.size} elements) to ${formatShape(shape)}`,
    );
  }
  // d/dx = dy in x's shape
  return x.view(inferred, gradNode("reshape", [x], (dy) => [dy.view(x.shape)]));
}
