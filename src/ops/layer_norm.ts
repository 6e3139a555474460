/**
 * `layerNorm` over the last axis with PyTorch semantics (biased variance). One dispatch forward, which
 * saves `mean` and `rstd` per row; the backward is one dispatch for `dx` and one for `dweight` and `dbias`
 * (sums over rows in a fixed order, so they are deterministic). Kernels: `shaders/layer_norm.wgsl`.
 *
 * @module
 */

import code from "../../shaders/layer_norm.wgsl" with { type: "text" };
import { params } from "../gpu/device.ts";
import { empty, formatShape, type Tensor } from "../tensor/tensor.ts";
import { expectF32, gradNode, grid1d, rowLaunch } from "./_op.ts";

// Columns per workgroup of layer_norm_backward_weight (COLS in the WGSL file).
const WEIGHT_COLS = 16;

/** TPR threads per row (a power of two near d / 4, at most 256), 256 / TPR rows per workgroup. */

/**
 * Layer normalisation over the last axis: `(x - mean) / sqrt(var + eps) * weight + bias` per row, with
 * the biased variance (divided by D), as `torch.nn.functional.layer_norm`.
 *
 * The forward saves `mean` and `rstd` (one per row) for the backward, which also reads `x` and `weight`:
 * keep them alive until `backward()`, as a `tidy` around the whole step does. `dweight` and `dbias` are
 * sums over rows in a fixed order, so two runs give the same bits.
 *
 * @param x An f32 tensor of shape `[..., D]` (rank >= 1).
 * @param weight The scale, f32 `[D]`.
 * @param bias The offset, f32 `[D]`.
 * @param eps Added to the variance under the square root.
 * @returns The normalised tensor, of `x`'s shape.
 * @throws {RangeError} When `weight` or `bias` is not `[D]` for `x`'s last dimension D.
 * @example Normalise two rows
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { layerNorm } from "./layer_norm.ts";
 * setGpu(await requestGpu());
 * const x = tensor([1, 2, 3, 10, 20, 30], [2, 3]);
 * const y = layerNorm(x, tensor([1, 1, 1]), tensor([0, 0, 0]));
 * console.log(await y.toArray()); // [-1.2247, 0, 1.2247, -1.2247, 0, 1.2247]
 * ```
 */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  expectF32("layerNorm", x, weight, bias);
  if (x.rank === 0) throw new RangeError(`layerNorm: expected x of shape [..., D], got a 0-dim ${x}`);
  const d = x.shape[x.rank - 1];
  for (const [what, t] of [["weight", weight], ["bias", bias]] as const) {
    if (t.rank !== 1 || t.shape[0] !== d) {
      throw new RangeError(
        `layerNorm: ${what} ${formatShape(t.shape)} does not match x ${
          formatShape(x.shape)
        }: expected ${what} [${d}]`,
      );
    }
  }
  const rows = d === 0 ? 0 : x.size / d;
  const gpu = x.gpu;
  const maxPerDim = gpu.limits.maxComputeWorkgroupsPerDimension;
  const { tpr, workgroups } = rowLaunch(gpu, rows, d);
  const constants = { TPR: tpr };
  const p = params([rows, d], [eps]);

  // Saved for the backward, one per row.
  const mean = empty([rows]);
  const rstd = empty([rows]);
  const y = empty(
    x.shape,
    "f32",
    gradNode("layerNorm", [x, weight, bias], (dy, addend) => {
      // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) (+ the gradient x already has from its other
      // uses, such as the residual add around a pre-norm block), g = dy * weight, xhat = (x - mean) * rstd
      let dx: Tensor | null = null;
      if (x.requiresGrad) {
        dx = empty(x.shape);
        gpu.dispatch({
          kernel: {
            file: "layer_norm.wgsl",
            code,
            entry: "layer_norm_backward",
            constants: { ...constants, HAS_ADDEND: addend ? 1 : 0 },
          },
          inputs: [x.buffer, weight.buffer, dy.buffer, mean.buffer, rstd.buffer, (addend ?? dy).buffer],
          outputs: [dx.buffer],
          params: p,
          workgroups,
        });
      }
      // dweight = sum over rows of dy * xhat, dbias = sum over rows of dy
      let dweight: Tensor | null = null;
      let dbias: Tensor | null = null;
      if (weight.requiresGrad || bias.requiresGrad) {
        dweight = empty([d]);
        dbias = empty([d]);
        gpu.dispatch({
          kernel: { file: "layer_norm.wgsl", code, entry: "layer_norm_backward_weight" },
          inputs: [x.buffer, dy.buffer, mean.buffer, rstd.buffer],
          outputs: [dweight.buffer, dbias.buffer],
          params: p,
          workgroups: grid1d(d, WEIGHT_COLS, maxPerDim),
        });
      }
      return [dx, dweight, dbias];
    }, 0),
  );
  gpu.dispatch({
    kernel: { file: "layer_norm.wgsl", code, entry: "layer_norm_forward", constants },
    inputs: [x.buffer, weight.buffer, bias.buffer],
    outputs: [y.buffer, mean.buffer, rstd.buffer],
    params: p,
    workgroups,
  });
  return y;
}
