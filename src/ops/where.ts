/**
 * `where` (choose between two tensors by a 0/1 mask) and `maskedFill` (set masked entries to a constant,
 * -Infinity included), with NumPy broadcasting. One kernel, `shaders/where.wgsl`, serves the forward of both
 * and their composed backward: it selects, never multiplies, so an infinite value in the branch not taken
 * cannot turn into NaN (`a * cond + b * (1 - cond)` would). The backward saves only the mask.
 *
 * @module
 */

import code from "../../shaders/where.wgsl" with { type: "text" };
import { params } from "../gpu/device.ts";
import { empty, formatShape, type GradNode, type Tensor } from "../tensor/tensor.ts";
import { broadcastShapes, expectF32, gradNode, grid1d, stridesOf } from "./_op.ts";
import { sumTo } from "./reduce.ts";

const MAX_RANK = 8;

/** Which operand the kernel replaces by a constant (see where.wgsl). */
const FILL = { none: 0, a: 1, b: 2 } as const;

function padded(values: readonly number[]): number[] {
  return [...values, ...new Array(MAX_RANK - values.length).fill(0)];
}

/** Strides of `shape` read at each position of `outShape` (right-aligned; 0 where it broadcasts). */
function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const strides = stridesOf(shape);
  const offset = outShape.length - shape.length;
  return padded(outShape.map((_, i) => (i < offset || shape[i - offset] === 1 ? 0 : strides[i - offset])));
}

/** The f32 bits of `value`, so the kernel writes it exactly (-Infinity and NaN included). */
function f32Bits(value: number): number {
  return new Uint32Array(Float32Array.of(value).buffer)[0];
}

/** `cond ? a : b` over `shape`, one of a or b possibly the constant `value`; no autograd node. */
function select(
  op: string,
  cond: Tensor,
  a: Tensor,
  b: Tensor,
  fill: number,
  value: number,
  shape: readonly number[],
  node: GradNode | null = null,
): Tensor {
  if (shape.length > MAX_RANK) {
    throw new RangeError(
      `${op}: rank ${shape.length} of ${formatShape(shape)} is over the limit of ${MAX_RANK}`,
    );
  }
  const out = empty(shape, "f32", node);
  const words = [
    out.size,
    shape.length,
    f32Bits(value),
    0,
    ...padded(shape),
    ...broadcastStrides(cond.shape, shape),
    ...broadcastStrides(a.shape, shape),
    ...broadcastStrides(b.shape, shape),
  ];
  cond.gpu.dispatch({
    kernel: { file: "where.wgsl", code, entry: "where_forward", constants: { FILL: fill } },
    inputs: [cond.buffer, a.buffer, b.buffer],
    outputs: [out.buffer],
    params: params(words),
    workgroups: grid1d(out.size),
  });
  return out;
}

/**
 * `cond ? a : b`, elementwise with broadcasting of all three: a nonzero entry of `cond` selects `a`.
 * The gradient flows to `a` where `cond` is nonzero and to `b` elsewhere (summed over broadcast axes);
 * `cond` gets none.
 * @param cond An f32 mask (0 or 1).
 * @param a The f32 values chosen where `cond` is nonzero.
 * @param b The f32 values chosen where `cond` is 0.
 * @returns A tensor of the shape `cond`, `a` and `b` broadcast to.
 * @example
 * ```ts
 * import { requestGpu, setGpu, tensor, where } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await where(tensor([1, 0, 1]), tensor([1, 2, 3]), tensor([-1])).toArray()); // [1, -1, 3]
 * ```
 */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  expectF32("where", cond, a, b);
  const shape = broadcastShapes("where", broadcastShapes("where", cond.shape, a.shape), b.shape);
  // d/da = [cond != 0], d/db = [cond == 0]
  const node = gradNode("where", [cond, a, b], (dy) => [
    null,
    a.requiresGrad ? sumTo(select("where", cond, dy, dy, FILL.b, 0, shape), a.shape) : null,
    b.requiresGrad ? sumTo(select("where", cond, dy, dy, FILL.a, 0, shape), b.shape) : null,
  ]);
  return select("where", cond, a, b, FILL.none, 0, shape, node);
}

/**
 * `x` with `value` wherever `mask` is nonzero (PyTorch's `masked_fill`), e.g. `-Infinity` on the masked
 * scores before a softmax. The gradient flows to `x` where `mask` is 0 and is 0 where it is filled.
 * @param x An f32 tensor.
 * @param mask An f32 mask (0 or 1) that broadcasts to `x`'s shape.
 * @param value The fill value; any f32 number, `-Infinity` included.
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { maskedFill, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const y = maskedFill(tensor([1, 2, 3, 4], [2, 2]), tensor([0, 1]), -Infinity);
 * console.log(await y.toArray()); // [1, -Infinity, 3, -Infinity]
 * ```
 */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  expectF32("maskedFill", x, mask);
  const shape = broadcastShapes("maskedFill", x.shape, mask.shape);
  if (formatShape(shape) !== formatShape(x.shape)) {
    throw new RangeError(
      `maskedFill: mask ${formatShape(mask.shape)} does not broadcast to the shape ${
        formatShape(x.shape)
      } of x`,
    );
  }
  // d/dx = [mask == 0]
  const node = gradNode(
    "maskedFill",
    [x, mask],
    (dy) => [select("maskedFill", mask, dy, dy, FILL.a, 0, shape), null],
  );
  return select("maskedFill", mask, x, x, FILL.a, value, shape, node);
}
