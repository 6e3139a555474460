/**
 * The CLOC losses of `spec/model.md`: `loss_clip`, `loss_cloc` with the text-similarity filter,
 * `loss_ground`, and their weighted total. Which slots are valid is host data, so the valid rows are picked
 * with index lists made on the CPU: no readback.
 *
 * @module
 */

import { noGrad, type Tensor, tensor } from "../tensor/tensor.ts";
import { add, gt, minimum, mul } from "../ops/binary.ts";
import { exp, scale } from "../ops/unary.ts";
import { reshape } from "../ops/reshape.ts";
import { matmul } from "../ops/matmul.ts";
import { transpose } from "../ops/permute.ts";
import { gather } from "../ops/gather.ts";
import { maskedFill } from "../ops/where.ts";
import { crossEntropy, l2Normalize, mseLoss } from "../ops/losses.ts";
import type { LossConfig } from "./config.ts";
import type { ClocBatch, ClocOutputs } from "./model.ts";

/** The loss and its parts, each a 0-dim tensor. */
export interface ClocLosses {
  /** `loss_clip + lambda * (loss_cloc + loss_ground)`. */
  loss: Tensor;
  /** Image-text InfoNCE, both directions. */
  clip: Tensor;
  /** Region-text InfoNCE over valid slots, both directions; null in CLIP mode. */
  cloc: Tensor | null;
  /** Mean squared box error over valid slots; null in CLIP mode. */
  ground: Tensor | null;
  /** `region_weight * (images with a valid box) / B` (a host number). */
  lambda: number;
}

function arange(n: number): Tensor {
  return tensor(Int32Array.from({ length: n }, (_, i) => i), [n], { dtype: "i32" });
}

/** `(CE(L) + CE(L^T)) / 2` with targets on the diagonal. */
function symmetricCrossEntropy(logits: Tensor): Tensor {
  const targets = arange(logits.shape[0]);
  return scale(add(crossEntropy(logits, targets), crossEntropy(transpose(logits), targets)), 0.5);
}

/**
 * `exp(min(logit_scale, max))`: the gradient is 1 where `logit_scale <= max` and 0 above.
 *
 * @param logitScale The 0-dim parameter.
 * @param max `loss.logit_scale_max`.
 * @returns A 0-dim tensor.
 *
 * @example
 * ```ts
 * import { clampedScale, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * console.log(await clampedScale(tensor([10], []), Math.log(100)).item()); // 100
 * ```
 */
export function clampedScale(logitScale: Tensor, max: number): Tensor {
  return exp(minimum(logitScale, tensor([max], [])));
}

/**
 * `loss_clip`: InfoNCE between L2-normalised image and text features, both directions.
 *
 * @param imageFeatures `[B, E]`.
 * @param textFeatures `[B, E]`.
 * @param logitScale The clamped scale from {@link clampedScale} (0-dim).
 * @returns A 0-dim tensor.
 *
 * @example
 * ```ts
 * import { clampedScale, clipLoss, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const i = tensor([1, 0, 0, 1], [2, 2]);
 * console.log(await clipLoss(i, i, tensor([10], [])).item()); // small: matching pairs
 * ```
 */
export function clipLoss(imageFeatures: Tensor, textFeatures: Tensor, logitScale: Tensor): Tensor {
  const logits = mul(
    matmul(l2Normalize(imageFeatures), l2Normalize(textFeatures), { transposeB: true }),
    logitScale,
  );
  return symmetricCrossEntropy(logits);
}

/** Row indices `b*M + m` of the valid slots in row-major order, and the number of images with any. */
export function validSlots(valid: Float32Array, m: number): { rows: Int32Array; imagesWithRegions: number } {
  const rows: number[] = [];
  let images = 0;
  for (let b = 0; b < valid.length / m; b++) {
    let any = false;
    for (let k = 0; k < m; k++) {
      if (valid[b * m + k] !== 0) {
        rows.push(b * m + k);
        any = true;
      }
    }
    if (any) images++;
  }
  return { rows: Int32Array.from(rows), imagesWithRegions: images };
}

/**
 * `loss_cloc`: InfoNCE between the valid slots' region embeddings and region-caption embeddings. Off-diagonal
 * pairs whose captions are nearly the same (`Y Y^T > threshold`, computed without gradient) are masked out
 * of both directions' denominators.
 *
 * @param regionFeatures Valid rows `[R, E]`, unnormalised.
 * @param regionTextEmbeds Valid rows `[R, E]`, L2-normalised.
 * @param logitScale The clamped scale (0-dim).
 * @param threshold `loss.text_filter_threshold`.
 * @returns A 0-dim tensor.
 *
 * @example
 * ```ts
 * import { regionLoss, requestGpu, setGpu, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const y = tensor([1, 0, 0, 1], [2, 2]);
 * console.log(await regionLoss(y, y, tensor([10], []), 0.9).item());
 * ```
 */
export function regionLoss(
  regionFeatures: Tensor,
  regionTextEmbeds: Tensor,
  logitScale: Tensor,
  threshold: number,
): Tensor {
  const r = regionFeatures.shape[0];
  const logits = mul(matmul(l2Normalize(regionFeatures), regionTextEmbeds, { transposeB: true }), logitScale);
  const mask = noGrad(() => {
    const similar = gt(
      matmul(regionTextEmbeds, regionTextEmbeds, { transposeB: true }),
      tensor([threshold], []),
    );
    const offDiagonal = new Float32Array(r * r).fill(1);
    for (let i = 0; i < r; i++) offDiagonal[i * r + i] = 0;
    return mul(similar, tensor(offDiagonal, [r, r]));
  });
  return symmetricCrossEntropy(maskedFill(logits, mask, -Infinity));
}

/**
 * Every loss of a CLOC batch (spec "Losses"). In CLIP mode only `loss_clip`.
 *
 * @param outputs The model's forward outputs.
 * @param batch The host batch (for the valid mask and the target boxes).
 * @param logitScale The `logit_scale` parameter (0-dim).
 * @param config The loss settings.
 * @returns See {@link ClocLosses}.
 *
 * @example
 * ```ts ignore
 * const losses = clocLosses(model.forward(batch), batch, model.logitScale, model.config.loss);
 * ```
 */
export function clocLosses(
  outputs: ClocOutputs,
  batch: ClocBatch,
  logitScale: Tensor,
  config: LossConfig,
): ClocLosses {
  const s = clampedScale(logitScale, config.logit_scale_max);
  const clip = clipLoss(outputs.imageFeatures, outputs.textFeatures, s);
  if (outputs.regionFeatures === null || outputs.regionTextEmbeds === null || outputs.predBoxes === null) {
    return { loss: clip, clip, cloc: null, ground: null, lambda: 0 };
  }
  const { batchSize: b, maxRegions: m } = batch;
  const { rows, imagesWithRegions } = validSlots(batch.regionValid, m);
  const lambda = config.region_weight * imagesWithRegions / b;
  if (rows.length === 0) {
    const zero = tensor([0], []);
    return { loss: clip, clip, cloc: zero, ground: zero, lambda };
  }
  const index = tensor(rows, [rows.length], { dtype: "i32" });
  const e = outputs.regionFeatures.shape[2];
  const pick = (t: Tensor, width: number) => gather(reshape(t, [b * m, width]), 0, index);
  const cloc = regionLoss(
    pick(outputs.regionFeatures, e),
    pick(outputs.regionTextEmbeds, e),
    s,
    config.text_filter_threshold,
  );
  const targetBoxes = gather(tensor(batch.regionBoxes, [b * m, 4]), 0, index);
  const ground = mseLoss(pick(outputs.predBoxes, 4), targetBoxes);
  const loss = add(clip, scale(add(cloc, ground), lambda));
  return { loss, clip, cloc, ground, lambda };
}
