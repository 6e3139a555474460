/**
 * `softmax` and `logSoftmax` over the last axis: one dispatch forward and one backward each
 * (`shaders/softmax.wgsl`). The forward subtracts the row max, so large logits do not overflow; the
 * backward needs only the forward's output, which it reads from the returned tensor (keep it alive until
 * `backward()`, as a `tidy` around the whole step does).
 *
 * Masking: entries that are -inf get probability 0 (log-probability -inf). A row that is entirely -inf
 * gives probabilities 0 everywhere (PyTorch gives NaN) and log-probabilities -inf everywhere; the
 * gradients of such a row are 0 (softmax) and `dy` (logSoftmax), never NaN for a finite `dy`.
 *
 * @module
 */

import code from "../../shaders/softmax.wgsl" with { type: "text" };
import { params } from "../gpu/device.ts";
import { empty, type Tensor } from "../tensor/tensor.ts";
import { expectF32, gradNode, rowLaunch } from "./_op.ts";

/**
 * The launch of a row-wise kernel: TPR threads per row (a power of two near d / 4, at most 256), 256 / TPR
 * rows per workgroup. Long rows get a whole workgroup, short rows share one.
 */

function rowwise(op: "softmax" | "logSoftmax", x: Tensor): Tensor {
  expectF32(op, x);
  // A 0-dim tensor is one row of one element.
  const d = x.rank === 0 ? 1 : x.shape[x.rank - 1];
  const rows = d === 0 ? 0 : x.size / d;
  const { tpr, workgroups } = rowLaunch(x.gpu, rows, d);
  const constants = { LOG: op === "logSoftmax" ? 1 : 0, TPR: tpr };
  const p = params([rows, d]);
  const out: Tensor = empty(
    x.shape,
    "f32",
    gradNode(op, [x], (dy) => {
      // softmax: dx = y * (dy - sum(dy * y)); logSoftmax: dx = dy - exp(out) * sum(dy)
      const dx = empty(x.shape);
      x.gpu.dispatch({
        kernel: { file: "softmax.wgsl", code, entry: "softmax_backward", constants },
        inputs: [out.buffer, dy.buffer],
        outputs: [dx.buffer],
        params: p,
        workgroups,
      });
      return [dx];
    }),
  );
  x.gpu.dispatch({
    kernel: { file: "softmax.wgsl", code, entry: "softmax_forward", constants },
    inputs: [x.buffer],
    outputs: [out.buffer],
    params: p,
    workgroups,
  });
  return out;
}

/**
 * Softmax over the last axis: `exp(x - max) / sum(exp(x - max))` for each row.
 *
 * Entries that are -inf get 0; a row that is entirely -inf gives 0 everywhere (not NaN), and a zero
 * gradient. The backward computes `dx = y * (dy - sum(dy * y))` from the saved output `y`.
 *
 * @param x An f32 tensor; every row along its last axis is normalised (a 0-dim tensor is one row).
 * @returns The probabilities, of `x`'s shape; each row sums to 1.
 * @example Attention weights of a row of scores
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { softmax } from "./softmax.ts";
 * setGpu(await requestGpu());
 * console.log(await softmax(tensor([1, 2, 3, -Infinity], [1, 4])).toArray()); // [0.090, 0.245, 0.665, 0]
 * ```
 */
export function softmax(x: Tensor): Tensor {
  return rowwise("softmax", x);
}

/**
 * Log-softmax over the last axis: `x - max - log(sum(exp(x - max)))` for each row, computed without
 * forming the probabilities, so it stays accurate for large logits.
 *
 * Entries that are -inf give -inf; a row that is entirely -inf gives -inf everywhere (not NaN). The
 * backward computes `dx = dy - exp(out) * sum(dy)` from the saved output `out` (so `dx = dy` at -inf
 * entries and on an all -inf row).
 *
 * @param x An f32 tensor; every row along its last axis is normalised (a 0-dim tensor is one row).
 * @returns The log-probabilities, of `x`'s shape.
 * @example
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { logSoftmax } from "./softmax.ts";
 * setGpu(await requestGpu());
 * console.log(await logSoftmax(tensor([0, 0], [1, 2])).toArray()); // [-0.693, -0.693]
 * ```
 */
export function logSoftmax(x: Tensor): Tensor {
  return rowwise("logSoftmax", x);
}
