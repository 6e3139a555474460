/**
 * `gather` (take entries along one axis by an i32 index tensor, like `numpy.take`) and `embedding` (rows of a
 * table by token id). The kernels are `shaders/gather.wgsl`. The backward saves the indices and scatters
 * `dy` back with a deterministic, atomic-free scatter-add: repeated indices accumulate, in index order.
 *
 * Indices are not validated on the GPU (that would need a readback): an index below 0 or past the axis reads
 * (and receives the gradient of) the nearest valid entry, so nothing is ever read out of bounds.
 *
 * @module
 */

import code from "../../shaders/gather.wgsl" with { type: "text" };
import { params } from "../gpu/device.ts";
import { empty, formatShape, sizeOf, type Tensor } from "../tensor/tensor.ts";
import { expect32Bit, gradNode, grid1d } from "./_op.ts";

const FILE = "gather.wgsl";

/** A non-negative axis, or an error naming the op, the axis and the shape. */
function checkAxis(op: string, axis: number, shape: readonly number[]): number {
  const a = axis < 0 ? axis + shape.length : axis;
  if (!Number.isInteger(a) || a < 0 || a >= shape.length) {
    throw new RangeError(`${op}: axis ${axis} is out of range for a tensor of shape ${formatShape(shape)}`);
  }
  return a;
}

/**
 * The entries of `x` at `indices` along `axis` (`numpy.take(x, indices, axis)`): the output's shape is
 * `x.shape[:axis] + indices.shape + x.shape[axis+1:]`. The gradient adds `dy` back into each indexed entry,
 * so an index that repeats receives the sum of its gradients.
 *
 * Indices are not checked on the GPU: out-of-range ones are clamped into `[0, x.shape[axis] - 1]`.
 * The backward costs O(k^2) for k indices (fine for token ids, pooled rows and region slots).
 * @param x An f32 (or i32, without gradient) tensor of rank >= 1.
 * @param axis The axis to index; negative counts from the end.
 * @param indices An i32 tensor of any shape (a 0-dim one drops the axis).
 * @returns The gathered tensor, of `x`'s dtype.
 * @example
 * ```ts
 * import { gather, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
 * const y = gather(x, 1, tensor(new Int32Array([2, 0, 2]), [3]));
 * console.log(y.shape, await y.toArray()); // [2, 3] [3, 1, 3, 6, 4, 6]
 * ```
 */
export function gather(x: Tensor, axis: number, indices: Tensor): Tensor {
  if (indices.dtype !== "i32") {
    throw new TypeError(
      `gather: indices must be an i32 tensor, got ${indices}; make them with tensor(new Int32Array(ids), shape)`,
    );
  }
  expect32Bit("gather", x);
  const a = checkAxis("gather", axis, x.shape);
  const dim = x.shape[a];
  const kCount = indices.size;
  if (dim === 0 && kCount > 0) {
    throw new RangeError(
      `gather: cannot take ${kCount} entries from the empty axis ${axis} of shape ${formatShape(x.shape)}`,
    );
  }
  const outer = sizeOf(x.shape.slice(0, a));
  const inner = sizeOf(x.shape.slice(a + 1));
  const shape = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)];
  const sizes = [outer, dim, kCount, inner];

  // d/dx[o, d, i] = sum over k with indices[k] = d of dy[o, k, i]
  const node = gradNode("gather", [x, indices], (dy) => {
    const links = empty([dim + kCount], "i32");
    const dx = empty(x.shape);
    const dispatch = (entry: string, inputs: Tensor[], output: Tensor, threads: number) =>
      x.gpu.dispatch({
        kernel: { file: FILE, code, entry },
        inputs: inputs.map((t) => t.buffer),
        outputs: [output.buffer],
        params: params([threads, ...sizes]),
        workgroups: grid1d(threads),
      });
    dispatch("gather_heads", [], links, dim);
    dispatch("gather_links", [indices], links, kCount);
    dispatch("gather_backward", [dy, links], dx, x.size);
    return [dx, null];
  });
  const out = empty(shape, x.dtype, node);
  x.gpu.dispatch({
    kernel: { file: FILE, code, entry: "gather_forward" },
    inputs: [x.buffer, indices.buffer],
    outputs: [out.buffer],
    params: params([out.size, ...sizes]),
    workgroups: grid1d(out.size),
  });
  return out;
}

/**
 * Looks up token ids in an embedding table: `weight[ids]`, the same as `gather(weight, 0, ids)`.
 * Ids are not validated on the GPU: one below 0 or at least `V` reads (and trains) row 0 or row `V - 1`.
 * @param ids An i32 tensor of token ids, any shape `[...]`.
 * @param weight The f32 table `[V, D]`.
 * @returns The rows, `[..., D]`.
 * @example
 * ```ts
 * import { embedding, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const weight = tensor([0, 0, 1, 1, 2, 2], [3, 2]);
 * console.log(await embedding(tensor(new Int32Array([2, 1]), [2]), weight).toArray()); // [2, 2, 1, 1]
 * ```
 */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  if (ids.dtype !== "i32") {
    throw new TypeError(
      `embedding: ids must be an i32 tensor, got ${ids}; make them with tensor(new Int32Array(ids), shape)`,
    );
  }
  if (weight.rank !== 2 || weight.dtype !== "f32") {
    throw new RangeError(`embedding: weight must be an f32 table [V, D], got ${weight}`);
  }
  return gather(weight, 0, ids);
}
