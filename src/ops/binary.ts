/**
 * Elementwise functions of two tensors with NumPy broadcasting: `add`, `sub`, `mul`, `div`, `maximum`,
 * `minimum`, and the comparisons `eq`, `gt`, `lt`, `ge` (1 or 0, no gradient). The forward is
 * `shaders/binary.wgsl`; each backward is composed of these ops and `sumTo` over the broadcast axes.
 *
 * @module
 */

import code from "../../shaders/binary.wgsl" with { type: "text" };
import { params } from "../gpu/device.ts";
import { empty, formatShape, noGrad, type Tensor } from "../tensor/tensor.ts";
import { broadcastShapes, expectF32, gradNode, grid1d, stridesOf } from "./_op.ts";
import { sumTo } from "./reduce.ts";
import { neg } from "./unary.ts";

const MAX_RANK = 8;

const OPS = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  maximum: 4,
  minimum: 5,
  eq: 6,
  gt: 7,
  lt: 8,
  ge: 9,
  broadcast: 10,
} as const;
type BinaryOp = keyof typeof OPS;

/** Strides of `shape` read at each position of `outShape` (right-aligned; 0 where it broadcasts). */
function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const strides = stridesOf(shape);
  const offset = outShape.length - shape.length;
  return outShape.map((_, i) => (i < offset || shape[i - offset] === 1 ? 0 : strides[i - offset]));
}

function padded(values: number[]): number[] {
  return [...values, ...new Array(MAX_RANK - values.length).fill(0)];
}

function binary(
  op: BinaryOp,
  a: Tensor,
  b: Tensor,
  backward: ((dout: Tensor) => (Tensor | null)[]) | null,
  shape = broadcastShapes(op, a.shape, b.shape),
): Tensor {
  expectF32(op, a, b);
  if (shape.length > MAX_RANK) {
    throw new RangeError(`${op}: rank ${shape.length} is over the limit of ${MAX_RANK}`);
  }
  const n = shape.reduce((x, y) => x * y, 1);
  const same = a.size === n && b.size === n ? 1 : 0;
  const out = empty(shape, "f32", backward ? gradNode(op, [a, b], backward) : null);
  // The uniform holds 3 words, pads to 4, then the three vec4u pairs.
  const words = [
    n,
    shape.length,
    same,
    0,
    ...padded(shape),
    ...padded(broadcastStrides(a.shape, shape)),
    ...padded(broadcastStrides(b.shape, shape)),
  ];
  a.gpu.dispatch({
    kernel: { file: "binary.wgsl", code, entry: "binary_forward", constants: { OP: OPS[op] } },
    inputs: [a.buffer, b.buffer],
    outputs: [out.buffer],
    params: params(words),
    workgroups: grid1d(n),
  });
  return out;
}

/**
 * `a + b` with broadcasting.
 * @param a An f32 tensor.
 * @param b An f32 tensor that broadcasts with `a`.
 * @returns A tensor of the broadcast shape.
 * @example
 * ```ts
 * import { add, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await add(tensor([1, 2, 3, 4], [2, 2]), tensor([10, 20])).toArray()); // [11, 22, 13, 24]
 * ```
 */
export function add(a: Tensor, b: Tensor): Tensor {
  // d(a+b)/da = 1, d(a+b)/db = 1
  return binary("add", a, b, (dy) => [sumTo(dy, a.shape), sumTo(dy, b.shape)]);
}

/**
 * `a - b` with broadcasting.
 * @param a An f32 tensor.
 * @param b An f32 tensor that broadcasts with `a`.
 * @returns A tensor of the broadcast shape.
 * @example
 * ```ts
 * import { requestGpu, setGpu, sub, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await sub(tensor([5]), tensor([2])).toArray()); // [3]
 * ```
 */
export function sub(a: Tensor, b: Tensor): Tensor {
  // d(a-b)/da = 1, d(a-b)/db = -1
  return binary("sub", a, b, (dy) => [sumTo(dy, a.shape), b.requiresGrad ? neg(sumTo(dy, b.shape)) : null]);
}

/**
 * `a * b` with broadcasting.
 * @param a An f32 tensor.
 * @param b An f32 tensor that broadcasts with `a`.
 * @returns A tensor of the broadcast shape.
 * @example
 * ```ts
 * import { mul, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await mul(tensor([2, 3]), tensor([4])).toArray()); // [8, 12]
 * ```
 */
export function mul(a: Tensor, b: Tensor): Tensor {
  // d(ab)/da = b, d(ab)/db = a
  return binary("mul", a, b, (dy) => [
    a.requiresGrad ? sumTo(mul(dy, b), a.shape) : null,
    b.requiresGrad ? sumTo(mul(dy, a), b.shape) : null,
  ]);
}

/**
 * `a / b` with broadcasting.
 * @param a An f32 tensor.
 * @param b An f32 tensor that broadcasts with `a`.
 * @returns A tensor of the broadcast shape.
 * @example
 * ```ts
 * import { div, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await div(tensor([6]), tensor([4])).toArray()); // [1.5]
 * ```
 */
export function div(a: Tensor, b: Tensor): Tensor {
  // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
  return binary("div", a, b, (dy) => [
    a.requiresGrad ? sumTo(div(dy, b), a.shape) : null,
    b.requiresGrad ? neg(sumTo(div(mul(dy, a), mul(b, b)), b.shape)) : null,
  ]);
}

/**
 * Elementwise `max(a, b)`; where they tie the gradient goes to `a`.
 * @param a An f32 tensor.
 * @param b An f32 tensor that broadcasts with `a`.
 * @returns A tensor of the broadcast shape.
 * @example
 * ```ts
 * import { maximum, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await maximum(tensor([1, 5]), tensor([3])).toArray()); // [3, 5]
 * ```
 */
export function maximum(a: Tensor, b: Tensor): Tensor {
  // d/da = [a >= b], d/db = [a < b]
  return binary("maximum", a, b, (dy) => [
    a.requiresGrad ? sumTo(mul(dy, ge(a, b)), a.shape) : null,
    b.requiresGrad ? sumTo(mul(dy, lt(a, b)), b.shape) : null,
  ]);
}

/**
 * Elementwise `min(a, b)`; where they tie the gradient goes to `a`.
 * @param a An f32 tensor.
 * @param b An f32 tensor that broadcasts with `a`.
 * @returns A tensor of the broadcast shape.
 * @example
 * ```ts
 * import { minimum, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await minimum(tensor([1, 5]), tensor([3])).toArray()); // [1, 3]
 * ```
 */
export function minimum(a: Tensor, b: Tensor): Tensor {
  // d/da = [a <= b], d/db = [a > b]
  return binary("minimum", a, b, (dy) => [
    a.requiresGrad ? sumTo(mul(dy, ge(b, a)), a.shape) : null,
    b.requiresGrad ? sumTo(mul(dy, gt(a, b)), b.shape) : null,
  ]);
}

function comparison(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  return noGrad(() => binary(op, a, b, null));
}

/**
 * `1` where `a == b`, else `0` (no gradient).
 * @param a An f32 tensor.
 * @param b An f32 tensor that broadcasts with `a`.
 * @returns A tensor of the broadcast shape.
 * @example
 * ```ts
 * import { eq, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await eq(tensor([1, 2]), tensor([2])).toArray()); // [0, 1]
 * ```
 */
export function eq(a: Tensor, b: Tensor): Tensor {
  return comparison("eq", a, b);
}

/**
 * `1` where `a > b`, else `0` (no gradient).
 * @param a An f32 tensor.
 * @param b An f32 tensor that broadcasts with `a`.
 * @returns A tensor of the broadcast shape.
 * @example
 * ```ts
 * import { gt, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await gt(tensor([1, 3]), tensor([2])).toArray()); // [0, 1]
 * ```
 */
export function gt(a: Tensor, b: Tensor): Tensor {
  return comparison("gt", a, b);
}

/**
 * `1` where `a < b`, else `0` (no gradient).
 * @param a An f32 tensor.
 * @param b An f32 tensor that broadcasts with `a`.
 * @returns A tensor of the broadcast shape.
 * @example
 * ```ts
 * import { lt, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await lt(tensor([1, 3]), tensor([2])).toArray()); // [1, 0]
 * ```
 */
export function lt(a: Tensor, b: Tensor): Tensor {
  return comparison("lt", a, b);
}

/**
 * `1` where `a >= b`, else `0` (no gradient).
 * @param a An f32 tensor.
 * @param b An f32 tensor that broadcasts with `a`.
 * @returns A tensor of the broadcast shape.
 * @example
 * ```ts
 * import { ge, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await ge(tensor([2, 1]), tensor([2])).toArray()); // [1, 0]
 * ```
 */
export function ge(a: Tensor, b: Tensor): Tensor {
  return comparison("ge", a, b);
}

/**
 * Repeats `x` along its size-1 (and missing leading) axes to `shape`.
 * @param x An f32 tensor.
 * @param shape A shape that `x` broadcasts to.
 * @returns A tensor of `shape`.
 * @example
 * ```ts
 * import { broadcastTo, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await broadcastTo(tensor([1, 2]), [2, 2]).toArray()); // [1, 2, 1, 2]
 * ```
 */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  const target = broadcastShapes("broadcastTo", x.shape, shape);
  if (formatShape(target) !== formatShape(shape)) {
    throw new RangeError(`broadcastTo: ${formatShape(x.shape)} does not broadcast to ${formatShape(shape)}`);
  }
  // d/dx = the sum of dy over the broadcast axes
  return binary("broadcast", x, x, (dy) => [sumTo(dy, x.shape), null], target);
}
