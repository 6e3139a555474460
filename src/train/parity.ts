/**
 * The end-to-end check against a PyTorch reference bundle (spec "Reference bundles"): load its parameters
 * and batch, run the forward pass, the backward pass and one AdamW step, and compare every `expect.*`,
 * `grad.*` and `step.*` tensor by relative error (max-abs error over the reference's max-abs value).
 *
 * @module
 */

import { backward } from "../tensor/autograd.ts";
import { Rng } from "../tensor/random.ts";
import { getGpu, type Tensor, tidy } from "../tensor/tensor.ts";
import { parseSafetensors, type SafetensorsTensor, toFloat32 } from "../io/safetensors.ts";
import { type ClocConfig, validateConfig } from "../nn/config.ts";
import { Cloc, type ClocBatch } from "../nn/model.ts";
import { clocLosses } from "../nn/losses.ts";
import { AdamW } from "../optim/adamw.ts";
import type { HostTensor, Precision } from "../nn/module.ts";

/** One compared tensor. */
export interface ParityRow {
  /** The bundle's tensor name (`expect.loss`, `grad.visual.proj`, `step.logit_scale`). */
  name: string;
  /** Max-abs error over the reference's max-abs value (the max-abs error where the reference is all 0). */
  relError: number;
  /** Whether `relError <= tolerance`. */
  ok: boolean;
}

/**
 * The largest relative error that passes: one number for every tensor, or one per kind (`expect.*` outputs,
 * `grad.*` gradients, `step.*` parameters after one AdamW step).
 */
export type ParityTolerance = number | { expect: number; grad: number; step: number };

/**
 * The tolerance of the f16-storage path (`precision: "f16"`). Each matmul operand is rounded to 11
 * significant bits, so outputs and gradients move by up to about 5e-3 of their scale (measured on the six
 * bundles). AdamW's first step moves each element by about `lr * sign(g)`, so a gradient element near zero
 * whose sign f16 rounding flips moves by `2 lr` the wrong way: on a parameter initialised with std 0.01-0.02
 * (positional embeddings, corner embeddings) that is up to 5e-2 of its largest value.
 */
export const F16_TOLERANCE: { expect: number; grad: number; step: number } = {
  expect: 1e-2,
  grad: 1e-2,
  step: 1e-1,
};

/** The outcome of {@link runParity}. */
export interface ParityReport {
  /** Every compared tensor, in the bundle's order. */
  rows: ParityRow[];
  /** The tolerance used. */
  tolerance: ParityTolerance;
  /** Whether every row passed. */
  ok: boolean;
  /** The adapter's description. */
  adapter: string;
}

/** Relative error as the spec defines it. */
export function parityError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let maxErr = 0, maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs(actual[i] - expected[i]);
    maxErr = Number.isNaN(e) ? Infinity : Math.max(maxErr, e);
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  return maxRef === 0 ? maxErr : maxErr / maxRef;
}

function hostBatch(tensors: Map<string, SafetensorsTensor>, file: string, config: ClocConfig): ClocBatch {
  const need = (name: string) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`${file}: the bundle has no tensor "${name}"`);
    return t;
  };
  const images = need("input.images");
  const boxes = need("input.region_boxes");
  const [b, m] = boxes.shape;
  const s = config.vision.image_size;
  if (images.shape.join() !== [b, 3, s, s].join()) {
    throw new Error(
      `${file}: input.images has shape [${images.shape}] but the config wants [${b}, 3, ${s}, ${s}]`,
    );
  }
  return {
    batchSize: b,
    maxRegions: m,
    images: toFloat32(images),
    text: need("input.text").data as Int32Array,
    regionBoxes: toFloat32(boxes),
    regionText: need("input.region_text").data as Int32Array,
    regionValid: toFloat32(need("input.region_valid")),
  };
}

/**
 * Runs a reference bundle and compares every `expect.*`, `grad.*` and `step.*` tensor.
 *
 * @param bytes The bundle's bytes (a safetensors file).
 * @param file The file's name, for messages.
 * @param tolerance Largest relative error that passes (see {@link ParityTolerance}).
 * @param precision The model's {@link Module.precision}: `"f16"` checks the f16-storage path (which the
 * spec's float32 reference matches only to about 1e-2).
 * @returns See {@link ParityReport}.
 *
 * @example
 * ```ts ignore
 * const report = await runParity(await Deno.readFile("tiny.safetensors"), "tiny.safetensors");
 * console.log(report.ok);
 * ```
 */
export async function runParity(
  bytes: Uint8Array,
  file: string,
  tolerance: ParityTolerance = 1e-3,
  precision: Precision = "f32",
): Promise<ParityReport> {
  const { tensors, metadata } = parseSafetensors(bytes, file);
  if (!metadata.config) throw new Error(`${file}: no __metadata__.config: is this a reference bundle?`);
  const config = validateConfig(JSON.parse(metadata.config) as ClocConfig);
  const opt = JSON.parse(metadata.optimizer ?? "{}");
  const model = new Cloc(config, new Rng(0));
  model.setPrecision(precision);
  const values = new Map<string, HostTensor>();
  for (const [name, t] of tensors) {
    if (!/^(input|expect|grad|step)\./.test(name)) values.set(name, { shape: t.shape, data: toFloat32(t) });
  }
  model.loadParameters(values, { source: file });
  const batch = hostBatch(tensors, file, config);

  const actual = new Map<string, Tensor>();
  tidy(() => {
    const out = model.forward(batch);
    const losses = clocLosses(out, batch, model.logitScale, config.loss);
    backward(losses.loss);
    const found: Record<string, Tensor | null> = {
      "expect.image_embeds": out.imageFeatures,
      "expect.text_embeds": out.textFeatures,
      "expect.region_embeds": out.regionFeatures,
      "expect.region_text_embeds": out.regionTextEmbeds,
      "expect.pred_boxes": out.predBoxes,
      "expect.loss_clip": losses.clip,
      "expect.loss_cloc": losses.cloc,
      "expect.loss_ground": losses.ground,
      "expect.loss": losses.loss,
    };
    for (const [name, t] of Object.entries(found)) if (t) actual.set(name, t);
    return [...actual.values()];
  });

  const rows: ParityRow[] = [];
  const compare = (name: string, got: ArrayLike<number>) => {
    const relError = parityError(got, toFloat32(tensors.get(name)!));
    const kind = name.split(".")[0] as "expect" | "grad" | "step";
    rows.push({
      name,
      relError,
      ok: relError <= (typeof tolerance === "number" ? tolerance : tolerance[kind]),
    });
  };
  for (const name of tensors.keys()) {
    if (name.startsWith("expect.")) {
      const t = actual.get(name);
      if (!t) throw new Error(`${file}: the model computes nothing for "${name}"`);
      compare(name, await t.toArray());
    }
  }
  for (const [name, p] of model.namedParameters()) {
    if (tensors.has(`grad.${name}`)) {
      compare(`grad.${name}`, p.grad ? await p.grad.toArray() : new Float32Array(p.size));
    }
  }
  for (const t of actual.values()) t.dispose();

  const [b1, b2] = opt.betas ?? [0.9, 0.98];
  const clampRange: [number, number] = opt.logit_scale_clamp_after_step ?? [0, config.loss.logit_scale_max];
  const optimizer = new AdamW(model.namedParameters().map(([name, tensor]) => ({ name, tensor })), {
    lr: opt.lr ?? 1e-3,
    betas: [b1, b2],
    eps: opt.eps ?? 1e-6,
    weightDecay: opt.weight_decay ?? 0.2,
    clamp: { logit_scale: clampRange },
  });
  optimizer.step().dispose();
  for (const [name, p] of model.namedParameters()) {
    if (tensors.has(`step.${name}`)) compare(`step.${name}`, await p.toArray());
  }
  optimizer.dispose?.();
  model.dispose();
  return {
    rows,
    tolerance,
    ok: rows.every((r) => r.ok),
    adapter: getGpu().info.description || getGpu().info.vendor,
  };
}
