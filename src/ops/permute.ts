/**
 * `permute` (reorder the axes of a tensor, rank <= 8) and `transpose` (swap two axes) built on it. The
 * forward is `shaders/permute.wgsl`, which moves raw 32-bit words, so f32 and i32 tensors both work. The
 * backward saves nothing but the axes: `dx = permute(dy, inverse(axes))`. A permutation that only moves
 * size-1 axes leaves the memory order unchanged and returns a view (no GPU work).
 *
 * @module
 */

import code from "../../shaders/permute.wgsl" with { type: "text" };
import { params } from "../gpu/device.ts";
import { empty, formatShape, type Tensor } from "../tensor/tensor.ts";
import { expect32Bit, gradNode, grid1d, stridesOf } from "./_op.ts";

const MAX_RANK = 8;

function padded(values: number[]): number[] {
  return [...values, ...new Array(MAX_RANK - values.length).fill(0)];
}

/** `axes` normalised (negative counted from the end), or an error naming the axes and the shape. */
function checkAxes(op: string, axes: readonly number[], shape: readonly number[]): number[] {
  const rank = shape.length;
  const bad = (why: string) =>
    new RangeError(`${op}: axes ${JSON.stringify(axes)} ${why} for a tensor of shape ${formatShape(shape)}`);
  if (axes.length !== rank) throw bad(`must list each of the ${rank} axes once`);
  const out = axes.map((a) => (a < 0 ? a + rank : a));
  out.forEach((a, i) => {
    if (!Number.isInteger(a) || a < 0 || a >= rank) throw bad(`hold ${axes[i]}, which is out of range`);
  });
  if (new Set(out).size !== rank) throw bad("repeat an axis");
  return out;
}

/**
 * Reorders the axes of `x`: output axis `d` is input axis `axes[d]` (like `numpy.transpose(x, axes)` and
 * PyTorch's `x.permute(*axes)`). Works for f32 and i32 tensors of rank <= 8.
 * @param x Any tensor.
 * @param axes A permutation of `0 .. rank-1`; negative entries count from the end.
 * @returns A tensor of shape `axes.map((a) => x.shape[a])`.
 * @example
 * ```ts
 * import { permute, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const y = permute(tensor([1, 2, 3, 4, 5, 6], [1, 2, 3]), [2, 0, 1]);
 * console.log(y.shape, await y.toArray()); // [3, 1, 2] [1, 4, 2, 5, 3, 6]
 * ```
 */
export function permute(x: Tensor, axes: readonly number[]): Tensor {
  expect32Bit("permute", x);
  const perm = checkAxes("permute", axes, x.shape);
  if (perm.length > MAX_RANK) {
    throw new RangeError(
      `permute: rank ${perm.length} of ${formatShape(x.shape)} is over the limit of ${MAX_RANK}`,
    );
  }
  const shape = perm.map((a) => x.shape[a]);
  const inverse = new Array<number>(perm.length);
  perm.forEach((a, d) => (inverse[a] = d));
  // d/dx: the gradient moves back through the inverse permutation.
  const node = gradNode("permute", [x], (dy) => [permute(dy, inverse)]);

  // Size-1 axes hold no data: when the other axes keep their order, the bytes are already in place.
  const moved = perm.filter((a) => x.shape[a] !== 1);
  if (moved.every((a, i) => i === 0 || moved[i - 1] < a)) return x.view(shape, node);

  const out = empty(shape, x.dtype, node);
  const strides = stridesOf(x.shape);
  const words = [out.size, perm.length, 0, 0, ...padded(shape), ...padded(perm.map((a) => strides[a]))];
  x.gpu.dispatch({
    kernel: { file: "permute.wgsl", code, entry: "permute_forward" },
    inputs: [x.buffer],
    outputs: [out.buffer],
    params: params(words),
    workgroups: grid1d(out.size),
  });
  return out;
}

/**
 * Swaps two axes of `x` (by default the last two, the matrix transpose of a batch of matrices).
 * @param x A tensor of rank >= 2 (or of any rank with explicit axes).
 * @param axis0 One axis; negative counts from the end.
 * @param axis1 The other axis.
 * @returns A tensor with `axis0` and `axis1` exchanged.
 * @example
 * ```ts
 * import { requestGpu, setGpu, tensor, transpose } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const y = transpose(tensor([1, 2, 3, 4, 5, 6], [2, 3]));
 * console.log(y.shape, await y.toArray()); // [3, 2] [1, 4, 2, 5, 3, 6]
 * ```
 */
export function transpose(x: Tensor, axis0 = -2, axis1 = -1): Tensor {
  const rank = x.rank;
  const norm = (axis: number) => {
    const a = axis < 0 ? axis + rank : axis;
    if (!Number.isInteger(a) || a < 0 || a >= rank) {
      throw new RangeError(
        `transpose: axis ${axis} is out of range for a tensor of shape ${formatShape(x.shape)}`,
      );
    }
    return a;
  };
  const a0 = norm(axis0);
  const a1 = norm(axis1);
  const axes = [...Array(rank).keys()];
  axes[a0] = a1;
  axes[a1] = a0;
  return permute(x, axes);
}
