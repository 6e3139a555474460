/**
 * `roiAlign`: RoIAlign pooling (Mask R-CNN; torchvision's `roi_align` with `aligned=True`) of boxes over a
 * channels-last feature map, with its backward. The kernels are `shaders/roi_align.wgsl`. The backward saves
 * only the boxes; it gathers each feature element's gradient from every bin of every box of its image
 * (no atomics, a fixed order, so the gradient is the same on every run). No gradient flows to the boxes.
 *
 * The map is channels-last (`[B, H, W, C]`) because that is how a ViT's patch tokens already lie
 * (`T_img[:, 1:]` is `[B, g*g, W]` in row-major grid order): no transpose is needed.
 *
 * @module
 */

import code from "../../shaders/roi_align.wgsl" with { type: "text" };
import { params } from "../gpu/device.ts";
import { empty, formatShape, type Tensor } from "../tensor/tensor.ts";
import { expectF32, gradNode, grid1d } from "./_op.ts";

const FILE = "roi_align.wgsl";
/** The kernel keeps P per-bin weights in registers (`MAX_BINS` in the WGSL file). */
const MAX_BINS = 8;

/** Options of {@link roiAlign}. */
export interface RoiAlignOptions {
  /**
   * Bins per side, P: the output has P x P bins per box (at most 8).
   * @default {2}
   */
  outputSize?: number;
  /**
   * Bilinear samples per side of a bin, S: each bin averages S x S samples.
   * @default {2}
   */
  samplingRatio?: number;
}

/**
 * RoIAlign: for each box, P x P bins, each the mean of S x S bilinear samples of the feature map taken on a
 * regular grid inside the bin (torchvision's `roi_align(..., aligned=True)` with a fixed sampling ratio).
 * Boxes are `(x0, y0, x1, y1)` normalised to the map (0 = its left/top edge, 1 = its right/bottom edge);
 * box `m` of image `b` pools from image `b`'s map. Samples outside `[-1, size]` read 0, as in torchvision.
 * The gradient flows to `features` only.
 *
 * @param features The feature map `[B, H, W, C]` (channels last), f32.
 * @param boxes `[B, M, 4]` normalised boxes, f32 (treated as data: no gradient).
 * @param options Bins and samples per side.
 * @returns `[B, M, P, P, C]`.
 *
 * @example One box over the whole of a 2 x 2 map, one bin: the mean of 2 x 2 samples
 * ```ts
 * import { requestGpu, setGpu, tensor } from "../../mod.ts";
 * import { roiAlign } from "./roi_align.ts";
 * setGpu(await requestGpu());
 * const map = tensor([1, 2, 3, 4], [1, 2, 2, 1]);
 * const out = roiAlign(map, tensor([0, 0, 1, 1], [1, 1, 4]), { outputSize: 1 });
 * console.log(out.shape, await out.toArray()); // [1, 1, 1, 1, 1] [2.5]
 * ```
 */
export function roiAlign(features: Tensor, boxes: Tensor, options: RoiAlignOptions = {}): Tensor {
  const p = options.outputSize ?? 2;
  const s = options.samplingRatio ?? 2;
  expectF32("roiAlign", features, boxes);
  if (features.rank !== 4) {
    throw new RangeError(
      `roiAlign: features must be a channels-last map [B, H, W, C], got ${formatShape(features.shape)}`,
    );
  }
  const [b, h, w, c] = features.shape;
  if (boxes.rank !== 3 || boxes.shape[0] !== b || boxes.shape[2] !== 4) {
    throw new RangeError(
      `roiAlign: boxes must be [B, M, 4] with B = ${b} (the features' batch), got ${
        formatShape(boxes.shape)
      } for features ${formatShape(features.shape)}`,
    );
  }
  if (h === 0 || w === 0) {
    throw new RangeError(`roiAlign: the feature map ${formatShape(features.shape)} has no pixels to sample`);
  }
  if (!(Number.isInteger(p) && p >= 1 && p <= MAX_BINS)) {
    throw new RangeError(`roiAlign: outputSize must be an integer in [1, ${MAX_BINS}], got ${p}`);
  }
  if (!(Number.isInteger(s) && s >= 1)) {
    throw new RangeError(`roiAlign: samplingRatio must be an integer >= 1, got ${s}`);
  }
  const m = boxes.shape[1];
  const shape = [b, m, p, p, c];
  const sizes = [h, w, c, m, p, s];

  // d/dfeatures[b, i, j, c] = sum over boxes of image b and bins of dout * (the bin's bilinear weight of (i, j))
  const node = gradNode("roiAlign", [features, boxes], (dout) => {
    const dfeatures = empty(features.shape);
    if (dfeatures.size > 0) {
      features.gpu.dispatch({
        kernel: { file: FILE, code, entry: "roi_align_backward" },
        inputs: [dout.buffer, boxes.buffer],
        outputs: [dfeatures.buffer],
        params: params([dfeatures.size, ...sizes]),
        workgroups: grid1d(dfeatures.size),
      });
    }
    return [dfeatures, null];
  });
  const out = empty(shape, "f32", node);
  if (out.size > 0) {
    features.gpu.dispatch({
      kernel: { file: FILE, code, entry: "roi_align_forward" },
      inputs: [features.buffer, boxes.buffer],
      outputs: [out.buffer],
      params: params([out.size, ...sizes]),
      workgroups: grid1d(out.size),
    });
  }
  return out;
}
