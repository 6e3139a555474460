/**
 * `evaluate()`: the paper's evaluation of a CLIP or CLOC model on a data set of images, captions and boxed
 * region captions. It embeds everything in batches (forward only, under `noGrad` and `tidy`, one readback a
 * batch), then computes the metrics of `metrics.ts` on the CPU:
 *
 * - image→text and text→image retrieval R@1, R@5 over the data set's captions;
 * - region recognition: each ground-truth box's region embedding against the text embeddings of the raw
 *   class names (no prompt template), top-1; mean per-class accuracy (mAcc) and overall accuracy;
 * - region-text retrieval R@1, R@10 in both directions over all regions of the data set;
 * - grounding Acc@0.5: the box head's box for each region caption, right when IoU with the box >= 0.5.
 *
 * Region embeddings come from the Prompter (`mode: "cloc"`; the box prompt through its block, or RoIAlign
 * pooling when the model's `prompter.kind` is `"roialign"`), or, for a CLIP model (`mode: "clip"`, whose
 * Prompter is untrained), from the crop baseline: the box cropped from the original image, letterboxed to the
 * model's size and encoded by the image tower. A CLIP model has no grounding (null).
 *
 * Images and boxes go through the training loader's preprocessing (`preprocess.ts`: letterbox to the model's
 * size, padding at the bottom/right, CLIP mean/std), so boxes are compared in the normalised coordinates the
 * model sees. See `metrics.ts` for the tie, duplicate-text and empty-class rules.
 *
 * @module
 */

import type { Cloc } from "../nn/model.ts";
import { getGpu, noGrad, type Tensor, tensor, tidy } from "../tensor/tensor.ts";
import { concat, slice } from "../ops/slice.ts";
import { reshape } from "../ops/reshape.ts";
import { l2Normalize } from "../ops/losses.ts";
import type { Dataset, Sample } from "../data/dataset.ts";
import type { RgbImage } from "../data/image.ts";
import {
  CLIP_MEAN,
  CLIP_STD,
  preprocessInto,
  type PreprocessOptions,
  transformBoxes,
} from "../data/preprocess.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import {
  classificationAccuracy,
  cosineRanks,
  cosineScores,
  groundingAccuracy,
  groupIds,
  recallAtK,
} from "./metrics.ts";

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /**
   * Images a forward pass (and crops a pass for the crop baseline).
   * @default {32}
   */
  batchSize?: number;
  /**
   * The class names of region recognition, encoded as raw text (no template). A region's class is its
   * `label`, or its `text` when it has none; regions whose class is not in the list are left out of
   * recognition (counted in `region_unmatched`).
   * @default the distinct region classes of the data set, sorted
   */
  classNames?: readonly string[];
  /**
   * `"cloc"`: region embeddings from the Prompter (or RoIAlign, by the model's `prompter.kind`) and grounding
   * from the box head; `"clip"`: region embeddings by the crop baseline, no grounding.
   * @default {"cloc"}
   */
  mode?: "cloc" | "clip";
  /**
   * Image normalisation and letterbox placement; must match training.
   * @default the loader's: CLIP mean and std, padding at the bottom/right
   */
  preprocess?: PreprocessOptions;
  /** Called after each batch with the images done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * The metrics of {@link scoreEmbeddings}: fractions in [0, 1] (null where a metric does not apply) and
 * counts, with snake_case keys as `deno task eval --json` prints them.
 *
 * @example
 * ```ts
 * import type { EvalMetrics } from "./evaluate.ts";
 * const show = (r: EvalMetrics) => `${(100 * r.i2t_r1).toFixed(1)}%`;
 * ```
 */
export interface EvalMetrics {
  /** Image→text Recall@1 (a caption with the same text as the image's own counts). */
  i2t_r1: number;
  /** Image→text Recall@5. */
  i2t_r5: number;
  /** Text→image Recall@1. */
  t2i_r1: number;
  /** Text→image Recall@5. */
  t2i_r5: number;
  /** Region recognition: mean per-class top-1 accuracy (classes with regions only); null without regions. */
  region_macc: number | null;
  /** Region recognition: top-1 accuracy over all matched regions. */
  region_acc: number | null;
  /** Region→text Recall@1 over the distinct region captions. */
  r2t_r1: number | null;
  /** Region→text Recall@10. */
  r2t_r10: number | null;
  /** Text→region Recall@1 over all regions. */
  t2r_r1: number | null;
  /** Text→region Recall@10. */
  t2r_r10: number | null;
  /** Grounding Acc@0.5; null for CLIP (no box head) or without regions. */
  grounding_acc50: number | null;
  /** Images (and captions) evaluated. */
  n_images: number;
  /** Ground-truth regions evaluated. */
  n_regions: number;
  /** Class names of region recognition. */
  n_classes: number;
  /** Regions whose class was not among the class names (left out of recognition). */
  region_unmatched: number;
  /** Distinct captions (the image→text gallery). */
  n_captions: number;
  /** Distinct region captions (the region→text gallery). */
  n_region_texts: number;
}

/**
 * The result of {@link evaluate}: the metrics and how they were obtained.
 *
 * @example
 * ```ts
 * import type { EvalReport } from "./evaluate.ts";
 * const where = (r: EvalReport) => `${r.mode} on ${r.adapter}`;
 * ```
 */
export interface EvalReport extends EvalMetrics {
  /** The GPU adapter that ran the model. */
  adapter: string;
  /** How the model was evaluated. */
  mode: "cloc" | "clip";
  /** Where region embeddings came from: the Prompter's block, RoIAlign, or crops; null without regions. */
  region_method: "prompter" | "roialign" | "crop" | null;
  /** Wall time of the evaluation in seconds. */
  seconds: number;
}

/**
 * Everything {@link embedDataset} computes, on the host: n images with their captions, and R regions in
 * data set order (image by image, each image's regions in order). Embeddings are unnormalised `[rows, E]`.
 *
 * @example
 * ```ts
 * import type { EvalEmbeddings } from "./evaluate.ts";
 * const regionsOf = (x: EvalEmbeddings, image: number) => x.regionImage.filter((i) => i === image).length;
 * ```
 */
export interface EvalEmbeddings {
  /** `[n, E]` image features. */
  images: Float32Array;
  /** `[n, E]` caption text features. */
  captions: Float32Array;
  /** The n captions. */
  captionTexts: string[];
  /** `[R, E]` region embeddings (the Prompter's, RoIAlign's or the crops' image features). */
  regions: Float32Array;
  /** `[R, E]` region caption text features. */
  regionTexts: Float32Array;
  /** The R region captions. */
  regionTextStrings: string[];
  /** The R region classes (label, or text when there is none). */
  regionClasses: string[];
  /** The image index of each region. */
  regionImage: number[];
  /** `[R, 4]` ground-truth boxes, normalised to the model's letterboxed input. */
  gtBoxes: Float32Array;
  /** `[R, 4]` the box head's boxes for each region caption; null in CLIP mode. */
  predBoxes: Float32Array | null;
}

/** A growable f32 buffer. */
class Rows {
  #data = new Float32Array(1024);
  #length = 0;
  push(values: ArrayLike<number>): void {
    if (this.#length + values.length > this.#data.length) {
      const grown = new Float32Array(Math.max(this.#data.length * 2, this.#length + values.length));
      grown.set(this.#data.subarray(0, this.#length));
      this.#data = grown;
    }
    this.#data.set(values, this.#length);
    this.#length += values.length;
  }
  get values(): Float32Array {
    return this.#data.slice(0, this.#length);
  }
}

/** The class of a region for recognition: its label, or its text. */
function classOf(region: Sample["regions"][number]): string {
  return region.label ?? region.text;
}

/**
 * The pixels of a box, for the crop baseline: the box is rounded outwards to whole pixels, clamped to the
 * image, and kept at least one pixel wide and high.
 *
 * @param image The source image.
 * @param box `[x0, y0, x1, y1]` in pixels of `image`.
 * @returns A new image of the box's pixels.
 *
 * @example
 * ```ts
 * import { cropImage } from "./evaluate.ts";
 * const img = { width: 4, height: 2, data: Uint8Array.from({ length: 24 }, (_, i) => i) };
 * const c = cropImage(img, [1.5, 0, 3, 1]);
 * if (c.width !== 2 || c.height !== 1 || c.data[0] !== 3) throw new Error(`${c.width}x${c.height}`);
 * ```
 */
export function cropImage(image: RgbImage, box: readonly number[]): RgbImage {
  const x0 = Math.min(image.width - 1, Math.max(0, Math.floor(box[0])));
  const y0 = Math.min(image.height - 1, Math.max(0, Math.floor(box[1])));
  const x1 = Math.max(x0 + 1, Math.min(image.width, Math.ceil(box[2])));
  const y1 = Math.max(y0 + 1, Math.min(image.height, Math.ceil(box[3])));
  const w = x1 - x0, h = y1 - y0;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const from = ((y0 + y) * image.width + x0) * 3;
    data.set(image.data.subarray(from, from + w * 3), y * w * 3);
  }
  return { width: w, height: h, data };
}

/** Flattens tensors into one 1-D tensor, so a batch needs one readback. */
function flatten(parts: Tensor[]): Tensor {
  return concat(parts.map((p) => reshape(p, [p.size])), 0);
}

/** Text features of texts, in chunks of `chunk` (one readback a chunk). */
async function embedTexts(
  model: Cloc,
  tokenizer: Tokenizer,
  texts: readonly string[],
  chunk: number,
): Promise<Float32Array> {
  const ctx = model.config.text.context_length, e = model.config.embed_dim;
  const out = new Float32Array(texts.length * e);
  for (let start = 0; start < texts.length; start += chunk) {
    const part = texts.slice(start, start + chunk);
    const ids = new Int32Array(part.length * ctx);
    part.forEach((t, i) => tokenizer.encodeInto(t, ctx, ids, i * ctx));
    const features = noGrad(() => tidy(() => model.text.features(ids, part.length)));
    out.set(await features.toArray() as Float32Array, start * e); // readback: once per chunk
    features.dispose();
  }
  return out;
}

/** Image-tower features of crops, in chunks of `chunk` (one readback a chunk). */
async function embedCrops(
  model: Cloc,
  crops: RgbImage[],
  chunk: number,
  pre: PreprocessOptions,
): Promise<Float32Array> {
  const s = model.config.vision.image_size, e = model.config.embed_dim;
  const out = new Float32Array(crops.length * e);
  for (let start = 0; start < crops.length; start += chunk) {
    const part = crops.slice(start, start + chunk);
    const pixels = new Float32Array(part.length * 3 * s * s);
    part.forEach((c, i) => preprocessInto(c, s, pixels, i * 3 * s * s, pre));
    const features = noGrad(() =>
      tidy(() => model.visual.features(model.visual.tokens(tensor(pixels, [part.length, 3, s, s]))))
    );
    out.set(await features.toArray() as Float32Array, start * e); // readback: once per chunk
    features.dispose();
  }
  return out;
}

/**
 * Runs the model over a data set in batches (forward only, one readback a batch) and returns every
 * embedding on the host: image, caption, region and region-caption features, and the box head's boxes.
 * Each batch gives every image as many region slots as its image with the most regions (padding slots are
 * computed and dropped), so no region is left out.
 *
 * @param model The model.
 * @param dataset Images with captions and regions.
 * @param tokenizer The model's tokenizer.
 * @param options `batchSize`, `mode`, `preprocess`, `onProgress` as in {@link EvaluateOptions}.
 * @returns The embeddings.
 *
 * @example
 * ```ts
 * import { Cloc, requestGpu, Rng, setGpu, TINY_CONFIG } from "../../mod.ts";
 * import { MOSAIC_WORDS, MosaicDataset } from "../data/mosaic.ts";
 * import { WordTokenizer } from "../data/tokenizer.ts";
 * import { embedDataset } from "./evaluate.ts";
 * setGpu(await requestGpu());
 * const model = new Cloc(TINY_CONFIG, new Rng(0));
 * const data = await MosaicDataset.open("digits", "test", 3, { canvas: 32 });
 * const x = await embedDataset(model, data, WordTokenizer.fromTexts(MOSAIC_WORDS, { vocabSize: 64 }));
 * if (x.images.length !== 3 * TINY_CONFIG.embed_dim) throw new Error("3 image rows");
 * model.dispose();
 * ```
 */
export async function embedDataset(
  model: Cloc,
  dataset: Dataset,
  tokenizer: Tokenizer,
  options: Pick<EvaluateOptions, "batchSize" | "mode" | "preprocess" | "onProgress"> = {},
): Promise<EvalEmbeddings> {
  const batchSize = options.batchSize ?? 32;
  const mode = options.mode ?? "cloc";
  const onProgress = options.onProgress;
  const pre: PreprocessOptions = {
    mean: options.preprocess?.mean ?? CLIP_MEAN,
    std: options.preprocess?.std ?? CLIP_STD,
    pad: options.preprocess?.pad ?? "corner",
    padColor: options.preprocess?.padColor,
  };
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new RangeError(`evaluate: batchSize must be an integer >= 1, got ${batchSize}`);
  }
  if (mode !== "cloc" && mode !== "clip") {
    throw new RangeError(`evaluate: mode must be "cloc" or "clip", got ${JSON.stringify(mode)}`);
  }
  const { vocab_size: vocab, eot_token_id: eot } = model.config.text;
  if (tokenizer.vocabSize > vocab || tokenizer.eotId !== eot) {
    throw new RangeError(
      `evaluate: the tokenizer (${tokenizer.vocabSize} ids, EOT ${tokenizer.eotId}) does not match the model ` +
        `(text.vocab_size ${vocab}, text.eot_token_id ${eot}): use the tokenizer saved with the checkpoint`,
    );
  }
  const { image_size: s } = model.config.vision;
  const { context_length: ctx } = model.config.text;
  const e = model.config.embed_dim;
  const n = dataset.length;
  const images = new Float32Array(n * e), captions = new Float32Array(n * e);
  const captionTexts: string[] = [];
  const regions = new Rows(), regionTexts = new Rows(), gtBoxes = new Rows(), predBoxes = new Rows();
  const regionTextStrings: string[] = [], regionClasses: string[] = [], regionImage: number[] = [];
  const emptyText = tokenizer.encode("", ctx);

  for (let start = 0; start < n; start += batchSize) {
    const end = Math.min(n, start + batchSize);
    const b = end - start;
    const samples = await Promise.all(Array.from({ length: b }, (_, i) => dataset.get(start + i)));
    const m = Math.max(0, ...samples.map((x) => x.regions.length)); // region slots this batch
    const pixels = new Float32Array(b * 3 * s * s);
    const text = new Int32Array((b + b * m) * ctx); // captions, then region captions [B, M]
    const boxes = new Float32Array(b * m * 4);
    const slots: number[] = []; // b * m + k of every real region, in data set order
    samples.forEach((sample, i) => {
      const lb = preprocessInto(sample.image, s, pixels, i * 3 * s * s, pre);
      tokenizer.encodeInto(sample.caption, ctx, text, i * ctx);
      captionTexts.push(sample.caption);
      const normalised = transformBoxes(sample.regions.map((r) => r.box), lb, s);
      for (let k = 0; k < m; k++) {
        const slot = i * m + k;
        const region = sample.regions[k];
        if (region) {
          boxes.set(normalised[k], slot * 4);
          tokenizer.encodeInto(region.text, ctx, text, (b + slot) * ctx);
          slots.push(slot);
          regionTextStrings.push(region.text);
          regionClasses.push(classOf(region));
          regionImage.push(start + i);
          gtBoxes.push(normalised[k]);
        } else {
          boxes.set([0, 0, 1, 1], slot * 4);
          text.set(emptyText, (b + slot) * ctx);
        }
      }
    });

    const withRegions = mode === "cloc" && m > 0;
    const flat = noGrad(() =>
      tidy(() => {
        const tokens = model.visual.tokens(tensor(pixels, [b, 3, s, s])); // [B, N, W]
        const textOut = model.text.features(text, b + b * m); // [B + B*M, E]
        const parts = [model.visual.features(tokens), textOut];
        if (withRegions) {
          const kv = model.prompter.imageKeysValues(tokens);
          parts.push(model.prompter.regions(tokens, kv, boxes, b, m)); // [B, M, E]
          const prompts = reshape(l2Normalize(slice(textOut, 0, b, b + b * m)), [b, m, e]);
          parts.push(model.prompter.predictBoxes(kv, prompts)); // [B, M, 4]
        }
        return flatten(parts);
      })
    );
    const host = await flat.toArray() as Float32Array; // readback: once per batch
    flat.dispose();

    images.set(host.subarray(0, b * e), start * e);
    captions.set(host.subarray(b * e, 2 * b * e), start * e);
    const textRows = b * e; // region-caption rows start after the B caption rows of textOut
    const regionAt = (2 * b + b * m) * e, boxAt = regionAt + b * m * e;
    for (const slot of slots) {
      regionTexts.push(host.subarray(b * e + textRows + slot * e, b * e + textRows + (slot + 1) * e));
      if (withRegions) {
        regions.push(host.subarray(regionAt + slot * e, regionAt + (slot + 1) * e));
        predBoxes.push(host.subarray(boxAt + slot * 4, boxAt + slot * 4 + 4));
      }
    }
    if (mode === "clip" && slots.length > 0) {
      const crops = samples.flatMap((sample) => sample.regions.map((r) => cropImage(sample.image, r.box)));
      regions.push(await embedCrops(model, crops, batchSize, pre));
    }
    onProgress?.(end, n);
  }
  return {
    images,
    captions,
    captionTexts,
    regions: regions.values,
    regionTexts: regionTexts.values,
    regionTextStrings,
    regionClasses,
    regionImage,
    gtBoxes: gtBoxes.values,
    predBoxes: mode === "cloc" ? predBoxes.values : null,
  };
}

/** 0, 1, ..., n - 1. */
function range(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i);
}

/** Rows `rows` of an `[n, dim]` array. */
function pickRows(x: Float32Array, dim: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * dim);
  for (let i = 0; i < rows.length; i++) out.set(x.subarray(rows[i] * dim, (rows[i] + 1) * dim), i * dim);
  return out;
}

/**
 * Evaluates a model on a data set: image-text retrieval, region recognition, region-text retrieval and
 * grounding, as the CLOC paper defines them (see the module doc and `docs/eval.md`).
 *
 * @param model The model (a CLOC model, or one trained as CLIP with `mode: "clip"`).
 * @param dataset Images with captions and regions (boxes in pixels of each image).
 * @param tokenizer The tokenizer the model was trained with.
 * @param options Batch size, class names, mode, preprocessing, progress.
 * @returns The report.
 * @throws {RangeError} For an empty data set, a bad batch size, or a tokenizer that does not match the model.
 *
 * @example A tiny random model on a few mosaic scenes
 * ```ts
 * import { Cloc, requestGpu, Rng, setGpu, TINY_CONFIG } from "../../mod.ts";
 * import { MOSAIC_WORDS, MosaicDataset } from "../data/mosaic.ts";
 * import { WordTokenizer } from "../data/tokenizer.ts";
 * import { evaluate } from "./evaluate.ts";
 * setGpu(await requestGpu());
 * const tokenizer = WordTokenizer.fromTexts(MOSAIC_WORDS, { vocabSize: 64 });
 * const model = new Cloc(TINY_CONFIG, new Rng(0));
 * const data = await MosaicDataset.open("digits", "test", 4, { canvas: 32 });
 * const report = await evaluate(model, data, tokenizer, { batchSize: 4 });
 * if (report.n_images !== 4 || !(report.i2t_r5 >= 0 && report.i2t_r5 <= 1)) throw new Error("report");
 * model.dispose();
 * ```
 */
export async function evaluate(
  model: Cloc,
  dataset: Dataset,
  tokenizer: Tokenizer,
  options: EvaluateOptions = {},
): Promise<EvalReport> {
  const started = performance.now();
  const mode = options.mode ?? "cloc";
  if (dataset.length === 0) throw new RangeError("evaluate: the data set is empty: nothing to evaluate");
  const x = await embedDataset(model, dataset, tokenizer, options);
  const names = options.classNames ? [...options.classNames] : [...new Set(x.regionClasses)].sort();
  const classes = x.regionClasses.length > 0 && names.length > 0
    ? {
      names,
      embeddings: await embedTexts(model, tokenizer, names, Math.max(options.batchSize ?? 32, 64)),
    }
    : { names, embeddings: new Float32Array(0) };
  const metrics = scoreEmbeddings(x, classes, model.config.embed_dim);
  const gpu = getGpu();
  const kind = model.config.prompter.kind ?? "block";
  return {
    ...metrics,
    adapter: gpu.info.description || [gpu.info.vendor, gpu.info.architecture].filter(Boolean).join(" ") ||
      "unknown",
    mode,
    region_method: metrics.n_regions === 0
      ? null
      : mode === "clip"
      ? "crop"
      : kind === "roialign"
      ? "roialign"
      : "prompter",
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * The metrics of embedded data (pure CPU): retrieval both ways over images and captions, region recognition
 * against the class-name embeddings, region-text retrieval both ways, and grounding when boxes were predicted.
 * Galleries of texts hold each distinct text once; ties count against the query (see `metrics.ts`).
 *
 * @param x The embeddings (from {@link embedDataset}, or made by hand).
 * @param classes Class names and their text embeddings `[K, dim]`; a region whose class is not among them is
 *   left out of recognition.
 * @param dim The embedding width E.
 * @returns The metrics.
 * @throws {RangeError} For no images.
 *
 * @example Two images with their own captions and one region each, embedded perfectly
 * ```ts
 * import { scoreEmbeddings } from "./evaluate.ts";
 * const eye = new Float32Array([1, 0, 0, 1]);
 * const m = scoreEmbeddings({
 *   images: eye, captions: eye, captionTexts: ["a seven", "a two"],
 *   regions: eye, regionTexts: eye, regionTextStrings: ["seven", "two"], regionClasses: ["seven", "two"],
 *   regionImage: [0, 1], gtBoxes: new Float32Array([0, 0, 1, 1, 0, 0, .5, .5]),
 *   predBoxes: new Float32Array([0, 0, 1, 1, .5, .5, 1, 1]),
 * }, { names: ["seven", "two"], embeddings: eye }, 2);
 * if (m.i2t_r1 !== 1 || m.region_macc !== 1 || m.grounding_acc50 !== 0.5) throw new Error(JSON.stringify(m));
 * ```
 */
export function scoreEmbeddings(
  x: EvalEmbeddings,
  classes: { names: readonly string[]; embeddings: Float32Array },
  dim: number,
): EvalMetrics {
  const n = x.captionTexts.length;
  if (n === 0) throw new RangeError("scoreEmbeddings: no images to score");
  // Image-text retrieval: the gallery of texts holds each distinct caption once.
  const cap = groupIds(x.captionTexts);
  const i2t = cosineRanks(
    x.images,
    pickRows(x.captions, dim, cap.first),
    dim,
    cap.ids,
    range(cap.first.length),
  );
  const t2i = cosineRanks(x.captions, x.images, dim, cap.ids, cap.ids);

  // Region metrics.
  const r = x.regionTextStrings.length;
  const txt = groupIds(x.regionTextStrings);
  let recognition = null, r2t = null, t2r = null, grounding: number | null = null;
  let unmatched = 0;
  if (r > 0) {
    const index = new Map(classes.names.map((c, i) => [c, i]));
    const labels = x.regionClasses.map((c) => index.get(c) ?? -1);
    unmatched = labels.filter((l) => l === -1).length;
    if (classes.names.length > 0) {
      const scores = cosineScores(x.regions, classes.embeddings, dim);
      recognition = classificationAccuracy(scores, labels, classes.names.length);
    }
    r2t = cosineRanks(
      x.regions,
      pickRows(x.regionTexts, dim, txt.first),
      dim,
      txt.ids,
      range(txt.first.length),
    );
    t2r = cosineRanks(x.regionTexts, x.regions, dim, txt.ids, txt.ids);
    if (x.predBoxes) {
      // A caption repeated within one image may ground to any of its boxes.
      const same = groupIds(x.regionImage.map((img, i) => `${img}\n${x.regionTextStrings[i]}`));
      grounding = groundingAccuracy(x.predBoxes, x.gtBoxes, { groups: same.ids });
    }
  }
  return {
    i2t_r1: recallAtK(i2t, 1)!,
    i2t_r5: recallAtK(i2t, 5)!,
    t2i_r1: recallAtK(t2i, 1)!,
    t2i_r5: recallAtK(t2i, 5)!,
    region_macc: recognition?.macc ?? null,
    region_acc: recognition?.acc ?? null,
    r2t_r1: r2t ? recallAtK(r2t, 1) : null,
    r2t_r10: r2t ? recallAtK(r2t, 10) : null,
    t2r_r1: t2r ? recallAtK(t2r, 1) : null,
    t2r_r10: t2r ? recallAtK(t2r, 10) : null,
    grounding_acc50: grounding,
    n_images: n,
    n_regions: r,
    n_classes: classes.names.length,
    region_unmatched: unmatched,
    n_captions: cap.distinct.length,
    n_region_texts: txt.distinct.length,
  };
}
