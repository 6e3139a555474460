/**
 * `slice` (a range of one axis) and `concat` (tensors joined along one axis). Both see their tensors as
 * `[outer, axis, inner]` and run `shaders/slice.wgsl`, which moves raw 32-bit words (f32 and i32 alike).
 * `slice`'s backward is `slice_backward`, which writes all of `dx`: `dy` in the sliced range, 0 elsewhere
 * (it saves only the range). `concat`'s backward is composed: each input's gradient is a `slice` of `dy`.
 *
 * @module
 */

import code from "../../shaders/slice.wgsl" with { type: "text" };
import { params } from "../gpu/device.ts";
import { empty, formatShape, sizeOf, type Tensor } from "../tensor/tensor.ts";
import { expect32Bit, gradNode, grid1d } from "./_op.ts";

/** A non-negative axis, or an error naming the op, the axis and the shape. */
function checkAxis(op: string, axis: number, shape: readonly number[]): number {
  const a = axis < 0 ? axis + shape.length : axis;
  if (!Number.isInteger(a) || a < 0 || a >= shape.length) {
    throw new RangeError(`${op}: axis ${axis} is out of range for a tensor of shape ${formatShape(shape)}`);
  }
  return a;
}

/** Clamps a Python-style bound (negative counts from the end) into `[0, dim]`. */
function bound(op: string, what: string, value: number, dim: number): number {
  if (!Number.isInteger(value)) throw new RangeError(`${op}: ${what} must be an integer, got ${value}`);
  return Math.min(dim, Math.max(0, value < 0 ? value + dim : value));
}

function dispatch(
  x: Tensor,
  entry: "slice_forward" | "slice_backward" | "concat_forward",
  src: Tensor,
  dst: Tensor,
  threads: number,
  sizes: [outer: number, len: number, inner: number, dim: number, start: number],
): void {
  x.gpu.dispatch({
    kernel: { file: "slice.wgsl", code, entry },
    inputs: [src.buffer],
    outputs: [dst.buffer],
    params: params([threads, ...sizes]),
    workgroups: grid1d(threads),
  });
}

/**
 * The elements `start <= k < end` of one axis, like Python's `x[..., start:end, ...]`: negative bounds count
 * from the end and bounds past either end are clamped (an empty range gives a size-0 axis). Works for f32
 * and i32 tensors.
 * @param x Any tensor of rank >= 1.
 * @param axis The axis to slice; negative counts from the end.
 * @param start The first index kept.
 * @param end One past the last index kept; the axis size when omitted.
 * @returns A tensor of `x`'s shape with `axis` of size `end - start` (after clamping).
 * @example
 * ```ts
 * import { requestGpu, setGpu, slice, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
 * console.log(await slice(x, 1, 1).toArray()); // [2, 3, 5, 6]
 * console.log(await slice(x, -1, 0, -1).toArray()); // [1, 2, 4, 5]
 * ```
 */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  expect32Bit("slice", x);
  const a = checkAxis("slice", axis, x.shape);
  const dim = x.shape[a];
  const s = bound("slice", "start", start, dim);
  const e = Math.max(s, bound("slice", "end", end ?? dim, dim));
  const len = e - s;
  const outer = sizeOf(x.shape.slice(0, a));
  const inner = sizeOf(x.shape.slice(a + 1));
  const shape = x.shape.map((d, i) => (i === a ? len : d));
  const sizes: [number, number, number, number, number] = [outer, len, inner, dim, s];

  // d/dx = dy placed back in the sliced range, zeros elsewhere.
  const node = gradNode("slice", [x], (dy) => {
    if (len === dim) return [dy.view(x.shape)];
    const dx = empty(x.shape);
    dispatch(x, "slice_backward", dy, dx, x.size, sizes);
    return [dx];
  });
  if (len === dim) return x.view(shape, node);
  const out = empty(shape, x.dtype, node);
  dispatch(x, "slice_forward", x, out, out.size, sizes);
  return out;
}

/**
 * Joins tensors along one axis (like `numpy.concatenate` and `torch.cat`). All tensors share a dtype and
 * agree in every other dimension; the gradient of each input is its slice of the output's gradient.
 * @param tensors One or more tensors of one dtype and rank.
 * @param axis The axis to join along; negative counts from the end.
 * @returns A tensor whose `axis` is the sum of the inputs' `axis` sizes.
 * @example
 * ```ts
 * import { concat, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const y = concat([tensor([1, 2], [2, 1]), tensor([3, 4, 5, 6], [2, 2])], 1);
 * console.log(y.shape, await y.toArray()); // [2, 3] [1, 3, 4, 2, 5, 6]
 * ```
 */
export function concat(tensors: readonly Tensor[], axis: number): Tensor {
  if (tensors.length === 0) throw new RangeError("concat: expected at least one tensor, got none");
  expect32Bit("concat", ...tensors);
  const first = tensors[0];
  const a = checkAxis("concat", axis, first.shape);
  for (const t of tensors) {
    const same = t.rank === first.rank && t.shape.every((d, i) => i === a || d === first.shape[i]);
    if (!same) {
      throw new RangeError(
        `concat: shapes ${formatShape(first.shape)} and ${formatShape(t.shape)} differ outside axis ${axis}`,
      );
    }
    if (t.dtype !== first.dtype) {
      throw new TypeError(`concat: cannot join ${first} and ${t}: the dtypes differ`);
    }
  }
  const offsets: number[] = [];
  let dim = 0;
  for (const t of tensors) {
    offsets.push(dim);
    dim += t.shape[a];
  }
  const shape = first.shape.map((d, i) => (i === a ? dim : d));
  const outer = sizeOf(shape.slice(0, a));
  const inner = sizeOf(shape.slice(a + 1));

  // d/dt_k = dy[..., offset_k : offset_k + len_k, ...]
  const node = gradNode(
    "concat",
    [...tensors],
    (dy) =>
      tensors.map((t, k) => (t.requiresGrad ? slice(dy, a, offsets[k], offsets[k] + t.shape[a]) : null)),
  );
  const out = empty(shape, first.dtype, node);
  tensors.forEach((t, k) => {
    dispatch(t, "concat_forward", t, out, t.size, [outer, t.shape[a], inner, dim, offsets[k]]);
  });
  return out;
}
