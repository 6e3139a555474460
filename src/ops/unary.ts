/**
 * Elementwise functions of one tensor: `neg`, `exp`, `log`, `sqrt`, `sigmoid`, `tanh`, `gelu`, `quickGelu`,
 * `affine` (alpha x + beta, and `scale`/`addScalar` on it), `relu`, `square`, `reciprocal`, `abs`.
 * Forward and backward are `shaders/unary.wgsl`; the backward saves only the input `x`.
 *
 * @module
 */

import unaryCode from "../../shaders/unary.wgsl" with { type: "text" };
import activationCode from "../../shaders/activation.wgsl" with { type: "text" };
import { params } from "../gpu/device.ts";
import { empty, type Tensor } from "../tensor/tensor.ts";
import { expectF32, gradNode, grid1d } from "./_op.ts";

const OPS = {
  neg: 0,
  exp: 1,
  log: 2,
  sqrt: 3,
  sigmoid: 4,
  tanh: 5,
  gelu: 6,
  quickGelu: 7,
  affine: 8,
  relu: 9,
  square: 10,
  reciprocal: 11,
  abs: 12,
} as const;

type UnaryOp = keyof typeof OPS;

// Appended after unary.wgsl's own lines, so compiler messages keep their line numbers.
const code = `${unaryCode}\n${activationCode}`;

/** `dy * f'(x)` for the op `f`: its backward, which needs only the input `x`. */
function unaryBackward(op: UnaryOp, x: Tensor, dy: Tensor, alpha = 1, beta = 0): Tensor {
  const dx = empty(x.shape);
  x.gpu.dispatch({
    kernel: { file: "unary.wgsl", code, entry: "unary_backward", constants: { OP: OPS[op] } },
    inputs: [x.buffer, dy.buffer],
    outputs: [dx.buffer],
    params: params([x.size], [alpha, beta]),
    workgroups: grid1d(x.size),
  });
  return dx;
}

/** The activations a matmul can apply in its epilogue (see `MatmulOptions.activation`). */
export type ActivationName = "gelu" | "quickGelu";

/**
 * The gradient through an activation applied elsewhere, such as in a matmul's epilogue: `dy * act'(z)` at
 * the pre-activation `z`, by the kernel that {@link gelu} and {@link quickGelu} use for their own backward.
 *
 * @param act The activation.
 * @param z The pre-activation values, f32.
 * @param dy The gradient of `act(z)`, of `z`'s shape.
 * @returns The gradient of `z`.
 *
 * @example gelu'(0) = 1/2
 * ```ts
 * import { activationBackward, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const dz = activationBackward("gelu", tensor([0]), tensor([1]));
 * console.log(await dz.toArray()); // [0.5]
 * ```
 */
export function activationBackward(act: ActivationName, z: Tensor, dy: Tensor): Tensor {
  expectF32(act, z, dy);
  return unaryBackward(act, z, dy);
}

function unary(op: UnaryOp, x: Tensor, alpha = 1, beta = 0): Tensor {
  expectF32(op, x);
  const constants = { OP: OPS[op] };
  const p = params([x.size], [alpha, beta]);
  const out = empty(x.shape, "f32", gradNode(op, [x], (dy) => [unaryBackward(op, x, dy, alpha, beta)]));
  x.gpu.dispatch({
    kernel: { file: "unary.wgsl", code, entry: "unary_forward", constants },
    inputs: [x.buffer],
    outputs: [out.buffer],
    params: p,
    workgroups: grid1d(x.size),
  });
  return out;
}

/**
 * `-x`, elementwise.
 * @param x Any f32 tensor.
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { requestGpu, setGpu, tensor, neg } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await neg(tensor([1, -2])).toArray()); // [-1, 2]
 * ```
 */
export function neg(x: Tensor): Tensor {
  return unary("neg", x);
}

/**
 * `e^x`, elementwise.
 * @param x Any f32 tensor.
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { exp, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await exp(tensor([0, 1])).toArray()); // [1, 2.718...]
 * ```
 */
export function exp(x: Tensor): Tensor {
  return unary("exp", x);
}

/**
 * Natural logarithm, elementwise.
 * @param x Any f32 tensor (positive values).
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { log, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await log(tensor([1])).toArray()); // [0]
 * ```
 */
export function log(x: Tensor): Tensor {
  return unary("log", x);
}

/**
 * Square root, elementwise.
 * @param x Any f32 tensor (values >= 0).
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { requestGpu, setGpu, sqrt, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await sqrt(tensor([4])).toArray()); // [2]
 * ```
 */
export function sqrt(x: Tensor): Tensor {
  return unary("sqrt", x);
}

/**
 * `1 / (1 + e^-x)`, elementwise.
 * @param x Any f32 tensor.
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { requestGpu, setGpu, sigmoid, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await sigmoid(tensor([0])).toArray()); // [0.5]
 * ```
 */
export function sigmoid(x: Tensor): Tensor {
  return unary("sigmoid", x);
}

/**
 * Hyperbolic tangent, elementwise.
 * @param x Any f32 tensor.
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { requestGpu, setGpu, tanh, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await tanh(tensor([0])).toArray()); // [0]
 * ```
 */
export function tanh(x: Tensor): Tensor {
  return unary("tanh", x);
}

/**
 * The exact GELU, `x * Phi(x)` with the normal CDF through erf (PyTorch's default `gelu`).
 * @param x Any f32 tensor.
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { gelu, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await gelu(tensor([1])).toArray()); // [0.8413...]
 * ```
 */
export function gelu(x: Tensor): Tensor {
  return unary("gelu", x);
}

/**
 * OpenAI CLIP's `x * sigmoid(1.702 x)`.
 * @param x Any f32 tensor.
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { quickGelu, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await quickGelu(tensor([1])).toArray()); // [0.8458...]
 * ```
 */
export function quickGelu(x: Tensor): Tensor {
  return unary("quickGelu", x);
}

/**
 * `alpha * x + beta`, elementwise, with constants known when the op is recorded.
 * @param x Any f32 tensor.
 * @param alpha The factor.
 * @param beta The offset.
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { affine, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await affine(tensor([1, 2]), 2, 1).toArray()); // [3, 5]
 * ```
 */
export function affine(x: Tensor, alpha: number, beta = 0): Tensor {
  return unary("affine", x, alpha, beta);
}

/**
 * `alpha * x` for a constant `alpha`.
 * @param x Any f32 tensor.
 * @param alpha The factor.
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { requestGpu, scale, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await scale(tensor([1, 2]), 0.5).toArray()); // [0.5, 1]
 * ```
 */
export function scale(x: Tensor, alpha: number): Tensor {
  return unary("affine", x, alpha, 0);
}

/**
 * `x + beta` for a constant `beta`.
 * @param x Any f32 tensor.
 * @param beta The offset.
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { addScalar, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await addScalar(tensor([1, 2]), 1).toArray()); // [2, 3]
 * ```
 */
export function addScalar(x: Tensor, beta: number): Tensor {
  return unary("affine", x, 1, beta);
}

/**
 * `max(x, 0)`, elementwise.
 * @param x Any f32 tensor.
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { relu, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await relu(tensor([-1, 2])).toArray()); // [0, 2]
 * ```
 */
export function relu(x: Tensor): Tensor {
  return unary("relu", x);
}

/**
 * `x^2`, elementwise.
 * @param x Any f32 tensor.
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { requestGpu, setGpu, square, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await square(tensor([3])).toArray()); // [9]
 * ```
 */
export function square(x: Tensor): Tensor {
  return unary("square", x);
}

/**
 * `1 / x`, elementwise.
 * @param x Any f32 tensor (non-zero values).
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { reciprocal, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await reciprocal(tensor([4])).toArray()); // [0.25]
 * ```
 */
export function reciprocal(x: Tensor): Tensor {
  return unary("reciprocal", x);
}

/**
 * `|x|`, elementwise (gradient `sign(x)`, 0 at 0).
 * @param x Any f32 tensor.
 * @returns A tensor of `x`'s shape.
 * @example
 * ```ts
 * import { abs, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await abs(tensor([-3])).toArray()); // [3]
 * ```
 */
export function abs(x: Tensor): Tensor {
  return unary("abs", x);
}
