/**
 * Reductions over axes: `sum`, `mean`, `max`, and `sumTo` (the sum over broadcast axes that every
 * broadcasting op's backward needs). The kernel is `shaders/reduce.wgsl`, which reduces the middle axis of
 * `[outer, R, inner]`; adjacent reduced axes are merged into one pass.
 *
 * @module
 */

import code from "../../shaders/reduce.wgsl" with { type: "text" };
import { params } from "../gpu/device.ts";
import { empty, formatShape, sizeOf, type Tensor } from "../tensor/tensor.ts";
import { expectF32, gradNode, grid1d, normAxis } from "./_op.ts";
import { broadcastTo, div, eq, mul } from "./binary.ts";
import { reshape } from "./reshape.ts";
import { scale } from "./unary.ts";

/** Options for {@link sum}, {@link mean} and {@link max}. */
export interface ReduceOptions {
  /**
   * Keep reduced axes as size-1 dimensions.
   * @default {false}
   */
  keepDims?: boolean;
}

// Below this R one thread per output is faster than a workgroup per output.
const WIDE_THRESHOLD = 512;
// From this many outputs on, a long R is cut into chunks of CHUNK rows (a thread each) rather than given a
// workgroup per output: enough threads without a barrier-heavy tree.
const CHUNKED_MIN_OUTPUTS = 32;
const CHUNK = 64;

/** Reduces the middle axis of x seen as [outer, r, inner] with no autograd node. */
function reduceMiddle(op: 0 | 1, x: Tensor, outer: number, r: number, inner: number): Tensor {
  const outputs = outer * inner;
  const kernel = (entry: string) => ({ file: "reduce.wgsl", code, entry, constants: { OP: op } });
  if (r >= WIDE_THRESHOLD && outputs >= CHUNKED_MIN_OUTPUTS) {
    // Partial results [outer, chunks, inner], then the short reduction over the chunks.
    const chunks = Math.ceil(r / CHUNK);
    const partials = empty([outer * chunks * inner]);
    x.gpu.dispatch({
      kernel: kernel("reduce_forward_chunked"),
      inputs: [x.buffer],
      outputs: [partials.buffer],
      params: params([outer, r, inner, CHUNK]),
      workgroups: grid1d(outer * chunks * inner),
    });
    const out = reduceMiddle(op, partials, outer, chunks, inner);
    partials.dispose();
    return out;
  }
  const out = empty([outputs]);
  const wide = r >= WIDE_THRESHOLD;
  const maxPerDim = x.gpu.limits.maxComputeWorkgroupsPerDimension;
  x.gpu.dispatch({
    kernel: kernel(wide ? "reduce_forward_wide" : "reduce_forward"),
    inputs: [x.buffer],
    outputs: [out.buffer],
    params: params([outer, r, inner, 0]),
    workgroups: wide ? grid1d(outputs, 1, maxPerDim) : grid1d(outputs),
  });
  return out;
}

/** Reduces `axes` (sorted, distinct) of x, merging runs of adjacent axes; returns the kept shape. */
function reduceAxes(op: 0 | 1, x: Tensor, axes: number[]): Tensor {
  let shape = [...x.shape];
  let current = x.view(shape);
  // From the last run to the first, so earlier axis numbers stay valid.
  let i = axes.length - 1;
  while (i >= 0) {
    let start = axes[i];
    const end = axes[i];
    while (i > 0 && axes[i - 1] === start - 1) start = axes[--i];
    i--;
    const outer = sizeOf(shape.slice(0, start));
    const r = sizeOf(shape.slice(start, end + 1));
    const inner = sizeOf(shape.slice(end + 1));
    const next = reduceMiddle(op, current, outer, r, inner);
    current.dispose();
    shape = [...shape.slice(0, start), ...shape.slice(end + 1)];
    current = next.view(shape);
    next.dispose();
  }
  return current;
}

function normAxes(op: string, axes: number | number[] | undefined, rank: number): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = (Array.isArray(axes) ? axes : [axes]).map((a) => normAxis(op, a, rank));
  const sorted = [...new Set(list)].sort((a, b) => a - b);
  if (sorted.length !== list.length) {
    throw new RangeError(`${op}: axes ${JSON.stringify(axes)} repeat an axis`);
  }
  return sorted;
}

function keptShape(shape: readonly number[], axes: number[], keepDims: boolean): number[] {
  return keepDims
    ? shape.map((d, i) => (axes.includes(i) ? 1 : d))
    : shape.filter((_, i) => !axes.includes(i));
}

/**
 * Sum over `axes` (all axes when omitted).
 * @param x An f32 tensor.
 * @param axes An axis or axes (negative counts from the end).
 * @param options See {@link ReduceOptions}.
 * @returns The sums; 0-dim when every axis is reduced without `keepDims`.
 * @example
 * ```ts
 * import { requestGpu, setGpu, sum, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await sum(tensor([1, 2, 3, 4], [2, 2]), 1).toArray()); // [3, 7]
 * ```
 */
export function sum(x: Tensor, axes?: number | number[], options: ReduceOptions = {}): Tensor {
  expectF32("sum", x);
  const list = normAxes("sum", axes, x.rank);
  const shape = keptShape(x.shape, list, options.keepDims ?? false);
  const reduced = reduceAxes(0, x, list);
  // d(sum)/dx = 1 on every reduced element: broadcast dy back.
  const node = gradNode("sum", [x], (dy) => [broadcastTo(dy.view(keptShape(x.shape, list, true)), x.shape)]);
  const out = reduced.view(shape, node);
  reduced.dispose();
  return out;
}

/**
 * Mean over `axes` (all axes when omitted).
 * @param x An f32 tensor.
 * @param axes An axis or axes (negative counts from the end).
 * @param options See {@link ReduceOptions}.
 * @returns The means.
 * @example
 * ```ts
 * import { mean, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await mean(tensor([1, 2, 3, 4])).toArray()); // [2.5]
 * ```
 */
export function mean(x: Tensor, axes?: number | number[], options: ReduceOptions = {}): Tensor {
  const list = normAxes("mean", axes, x.rank);
  const count = sizeOf(list.map((a) => x.shape[a]));
  return scale(sum(x, list, options), count === 0 ? NaN : 1 / count);
}

/**
 * Maximum over `axes` (all axes when omitted). The gradient is shared equally among tied maxima.
 * @param x An f32 tensor.
 * @param axes An axis or axes (negative counts from the end).
 * @param options See {@link ReduceOptions}.
 * @returns The maxima.
 * @example
 * ```ts
 * import { max, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await max(tensor([1, 5, 3, 2], [2, 2]), 0).toArray()); // [3, 5]
 * ```
 */
export function max(x: Tensor, axes?: number | number[], options: ReduceOptions = {}): Tensor {
  expectF32("max", x);
  const list = normAxes("max", axes, x.rank);
  const keep = keptShape(x.shape, list, true);
  const reduced = reduceAxes(1, x, list);
  const node = gradNode("max", [x], (dy) => {
    // d(max)/dx = [x == max] / (number of ties), times dy.
    const m = reduced.view(keep);
    const hits = eq(x, m);
    const share = div(hits, sum(hits, list, { keepDims: true }));
    m.dispose();
    return [mul(share, dy.view(keep))];
  });
  const out = reduced.view(keptShape(x.shape, list, options.keepDims ?? false), node);
  return out;
}

/**
 * Sums `x` down to `shape`, the inverse of broadcasting `shape` up to `x.shape`: what the backward of every
 * broadcasting op applies to its gradient. Returns a view when the shapes already agree.
 * @param x An f32 tensor.
 * @param shape A shape that broadcasts to `x.shape`.
 * @returns A tensor of `shape`.
 * @example
 * ```ts
 * import { requestGpu, setGpu, sumTo, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await sumTo(tensor([1, 2, 3, 4], [2, 2]), [2]).toArray()); // [4, 6]
 * ```
 */
export function sumTo(x: Tensor, shape: readonly number[]): Tensor {
  const offset = x.rank - shape.length;
  if (offset < 0) {
    throw new RangeError(
      `sumTo: cannot sum ${formatShape(x.shape)} to the larger rank of ${formatShape(shape)}`,
    );
  }
  const axes: number[] = [];
  for (let i = 0; i < x.rank; i++) {
    if (i < offset) axes.push(i);
    else if (shape[i - offset] === 1 && x.shape[i] !== 1) axes.push(i);
    else if (shape[i - offset] !== x.shape[i]) {
      throw new RangeError(`sumTo: ${formatShape(x.shape)} does not broadcast from ${formatShape(shape)}`);
    }
  }
  if (axes.length === 0) return reshape(x, shape);
  return reshape(sum(x, axes), shape);
}
