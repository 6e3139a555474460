/**
 * Losses and normalisation helpers: `l2Normalize` and `mseLoss` are compositions of existing ops (no
 * kernel, no backward of their own); `crossEntropy` is one fused kernel, `shaders/cross_entropy.wgsl`
 * (log-softmax and the pick of the target entry in one dispatch, which saves the log-sum-exp `lse` per row;
 * the backward is one elementwise dispatch, `dx = (softmax - onehot) * dloss`), then a reduction over rows.
 *
 * @module
 */

import code from "../../shaders/cross_entropy.wgsl" with { type: "text" };
import { params } from "../gpu/device.ts";
import { empty, formatShape, full, type Tensor } from "../tensor/tensor.ts";
import { expectF32, expectI32, gradNode, grid1d, normAxis, rowLaunch } from "./_op.ts";
import { div, maximum, sub } from "./binary.ts";
import { mean, sum } from "./reduce.ts";
import { sqrt, square } from "./unary.ts";

const WORKGROUP = 256;

/** TPR threads per row (a power of two near d / 4, at most 256), 256 / TPR rows per workgroup. */

/**
 * Scales `x` to unit Euclidean norm along `axis`: `x / max(||x||, eps)`, as PyTorch's `F.normalize`.
 *
 * The `max` keeps a zero vector at 0 with a finite gradient (`dy / eps`, as PyTorch) instead of NaN. It is
 * computed as `sqrt(max(sum(x^2), eps^2))`, which equals `max(||x||, eps)` but never differentiates the
 * square root at 0.
 *
 * @param x An f32 tensor.
 * @param axis The axis to normalise; negative counts from the end.
 * @param eps The smallest norm divided by (at least about 1e-19, so that `eps^2` is a normal f32).
 * @returns A tensor of `x`'s shape whose vectors along `axis` have norm 1 (or are 0).
 * @example Unit embeddings before a cosine similarity
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { l2Normalize } from "./losses.ts";
 * setGpu(await requestGpu());
 * console.log(await l2Normalize(tensor([3, 4, 0, 0], [2, 2])).toArray()); // [0.6, 0.8, 0, 0]
 * ```
 */
export function l2Normalize(x: Tensor, axis = -1, eps = 1e-12): Tensor {
  expectF32("l2Normalize", x);
  const a = normAxis("l2Normalize", axis, x.rank);
  const floor = full([], eps * eps);
  return div(x, sqrt(maximum(sum(square(x), a, { keepDims: true }), floor)));
}

/**
 * Mean squared error, `mean((pred - target)^2)` over every element. Both inputs get a gradient when they
 * require one.
 *
 * @param pred The prediction, f32.
 * @param target The target, f32, of exactly `pred`'s shape (no broadcasting, to catch swapped axes).
 * @returns A 0-dim tensor.
 * @throws {RangeError} When the shapes differ.
 * @example
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { mseLoss } from "./losses.ts";
 * setGpu(await requestGpu());
 * console.log(await mseLoss(tensor([1, 2]), tensor([0, 4])).item()); // 2.5
 * ```
 */
export function mseLoss(pred: Tensor, target: Tensor): Tensor {
  expectF32("mseLoss", pred, target);
  if (formatShape(pred.shape) !== formatShape(target.shape)) {
    throw new RangeError(
      `mseLoss: pred ${formatShape(pred.shape)} and target ${formatShape(target.shape)} differ: ` +
        "give target the shape of pred",
    );
  }
  return mean(square(sub(pred, target)));
}

/** Options for {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /**
   * How the per-row losses are combined: their `"mean"`, their `"sum"`, or `"none"` (the `[N]` losses).
   * @default {"mean"}
   */
  reduction?: "mean" | "sum" | "none";
}

/** The per-row losses [N], with the fused kernel's autograd node. */
function crossEntropyRows(logits: Tensor, targets: Tensor): Tensor {
  const [rows, d] = logits.shape;
  const gpu = logits.gpu;
  const { tpr, workgroups } = rowLaunch(gpu, rows, d);
  const p = params([rows, d]);
  // Saved for the backward: the log-sum-exp of each row.
  const lse = empty([rows]);
  const loss = empty(
    [rows],
    "f32",
    gradNode("crossEntropy", [logits, targets], (dloss) => {
      // dx[r, i] = (softmax(x)[r, i] - [i == targets[r]]) * dloss[r]
      const dx = empty(logits.shape);
      gpu.dispatch({
        kernel: { file: "cross_entropy.wgsl", code, entry: "cross_entropy_backward" },
        inputs: [logits.buffer, targets.buffer, lse.buffer, dloss.buffer],
        outputs: [dx.buffer],
        params: p,
        workgroups: grid1d(rows * d, WORKGROUP, gpu.limits.maxComputeWorkgroupsPerDimension),
      });
      return [dx, null];
    }),
  );
  gpu.dispatch({
    kernel: { file: "cross_entropy.wgsl", code, entry: "cross_entropy_forward", constants: { TPR: tpr } },
    inputs: [logits.buffer, targets.buffer],
    outputs: [loss.buffer, lse.buffer],
    params: p,
    workgroups,
  });
  return loss;
}

/**
 * Cross-entropy of logits against class ids: the mean over rows of `-log_softmax(logits)[r, targets[r]]`,
 * as PyTorch's `F.cross_entropy` (without class weights, label smoothing or an ignore index).
 *
 * One fused dispatch computes the log-softmax and picks the target's entry, saving the log-sum-exp of each
 * row; the backward is one dispatch, `dlogits = (softmax(logits) - onehot(targets)) * dloss`. Stable for
 * large logits.
 *
 * Targets stay on the GPU, so their values are not checked: a target outside `[0, C)` makes its row's loss
 * (and so the mean) NaN rather than throwing. Dtypes and shapes are checked.
 *
 * @param logits Unnormalised scores, f32 `[N, C]`.
 * @param targets The class of each row, i32 `[N]`, each in `[0, C)`.
 * @param options See {@link CrossEntropyOptions}.
 * @returns A 0-dim tensor (`"mean"`, `"sum"`) or the `[N]` per-row losses (`"none"`).
 * @throws {TypeError} When `logits` is not f32 or `targets` is not i32.
 * @throws {RangeError} When the shapes are not `[N, C]` and `[N]`, or C is 0.
 * @example Three rows, three classes
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { crossEntropy } from "./losses.ts";
 * setGpu(await requestGpu());
 * const logits = tensor([2, 0, 0, 0, 2, 0, 0, 0, 2], [3, 3]);
 * const targets = tensor(new Int32Array([0, 1, 2]), [3]);
 * console.log(await crossEntropy(logits, targets).item()); // 0.2395
 * ```
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  expectF32("crossEntropy", logits);
  expectI32("crossEntropy", "targets (class ids)", targets);
  if (logits.rank !== 2) {
    throw new RangeError(`crossEntropy: expected logits of shape [N, C], got ${formatShape(logits.shape)}`);
  }
  const [n, c] = logits.shape;
  if (targets.rank !== 1 || targets.shape[0] !== n) {
    throw new RangeError(
      `crossEntropy: targets ${formatShape(targets.shape)} do not match logits ${
        formatShape(logits.shape)
      }: ` +
        `expected targets [${n}]`,
    );
  }
  if (c === 0 && n > 0) {
    throw new RangeError(`crossEntropy: logits ${formatShape(logits.shape)} have no classes`);
  }
  const rows = crossEntropyRows(logits, targets);
  const reduction = options.reduction ?? "mean";
  switch (reduction) {
    case "mean":
      return mean(rows);
    case "sum":
      return sum(rows);
    case "none":
      return rows;
    default:
      throw new RangeError(`crossEntropy: unknown reduction "${reduction}": use "mean", "sum" or "none"`);
  }
}
