/**
 * Training configuration: presets, overrides, and validation before any GPU work.
 *
 * @module
 */

import { type ClocConfig, validateConfig } from "../nn/config.ts";

/** Everything a training run needs to know (saved as the run's `config.json`). */
export interface TrainConfig {
  /** The preset this config started from. */
  preset: string;
  /** "cloc" trains the region losses too; "clip" the image-text loss only (the baseline). */
  mode: "cloc" | "clip";
  /** `mosaic:digits`, `mosaic:fashion`, a region-text `.jsonl` file or a COCO `instances_*.json`. */
  data: string;
  /** Mosaic scenes in the training split (mosaic data only). */
  trainCount: number;
  /** Mosaic scenes in the test split, for the evaluation at the end (mosaic data only). */
  evalCount: number;
  /** Mosaic canvas side in pixels, before the letterbox resize to the model's image size. */
  canvas: number;
  /** Fewest objects in a mosaic scene. */
  minObjects: number;
  /** Most objects in a mosaic scene. */
  maxObjects: number;
  /** Longer side of a mosaic's `small` object, as a fraction of the canvas. */
  smallSize: number;
  /** Longer side of a mosaic's `large` object, as a fraction of the canvas. */
  largeSize: number;
  /** Mosaic objects are placed at multiples of this many canvas pixels (1: anywhere). */
  grid: number;
  /** Mosaic objects all white, captions without colour words. */
  monochrome: boolean;
  /** Tokenizer: "word" (built from the data's texts; small) or "clip" (OpenAI's BPE, 49408 ids). */
  tokenizer: "word" | "clip";
  /** Optimizer steps. */
  steps: number;
  /** Images a batch (B). */
  batchSize: number;
  /** Loader batches summed into one optimizer step (gradient accumulation). */
  accumulate: number;
  /** Region slots per image (M). */
  maxRegions: number;
  /** Peak learning rate. */
  lr: number;
  /** Learning rate at the end of the cosine decay. */
  minLr: number;
  /** Linear warmup steps. */
  warmupSteps: number;
  /** Decoupled weight decay of 2-D and larger parameters. */
  weightDecay: number;
  /** AdamW's beta1 and beta2. */
  betas: [number, number];
  /** AdamW's epsilon. */
  eps: number;
  /** Gradients are scaled down when their global L2 norm exceeds this (0 disables). */
  gradClip: number;
  /**
   * How the linear layers store their matmul operands: "f32", or "f16" (f32 accumulation; needs the
   * adapter's `shader-f16`; parameters, gradients and AdamW stay f32). See `Module.precision`.
   */
  precision: "f32" | "f16";
  /** Seed of the initialisation and of the data order. */
  seed: number;
  /** Metrics are read back (one readback) every this many steps. */
  logEvery: number;
  /** A checkpoint is written every this many steps (and at the end). */
  checkpointEvery: number;
  /** Skip steps whose loss or gradient is NaN or infinite instead of stopping. */
  skipNonfinite: boolean;
  /** Evaluate on the test split at the end. */
  evalAtEnd: boolean;
  /** The model. `vocab_size` and `eot_token_id` are set from the tokenizer. */
  model: ClocConfig;
}

const LOSS = { region_weight: 1.0, text_filter_threshold: 0.999, logit_scale_max: Math.log(100) };

/** The mosaic's own defaults: 1-4 coloured objects placed anywhere (the bigger presets train on these). */
const COLOURED_SCENES = {
  minObjects: 1,
  maxObjects: 4,
  smallSize: 0.25,
  largeSize: 0.45,
  grid: 1,
  monochrome: false,
};

/** Built-in starting points. `cpu-tiny` is the default: it trains in minutes on 2 CPU cores. */
export const PRESETS: Record<string, TrainConfig> = {
  "cpu-tiny": {
    preset: "cpu-tiny",
    mode: "cloc",
    data: "mosaic:digits",
    trainCount: 20000,
    evalCount: 500,
    canvas: 64,
    minObjects: 1,
    maxObjects: 3,
    smallSize: 0.25,
    largeSize: 0.5,
    grid: 16,
    monochrome: true,
    tokenizer: "word",
    steps: 1000,
    batchSize: 32,
    accumulate: 1,
    maxRegions: 4,
    lr: 2e-3,
    minLr: 1e-4,
    warmupSteps: 100,
    weightDecay: 0.1,
    betas: [0.9, 0.98],
    eps: 1e-6,
    gradClip: 1.0,
    precision: "f32",
    seed: 0,
    logEvery: 20,
    checkpointEvery: 200,
    skipNonfinite: false,
    evalAtEnd: true,
    model: {
      embed_dim: 64,
      act: "gelu",
      vision: { image_size: 32, patch_size: 8, width: 64, layers: 2, heads: 4, mlp_ratio: 4 },
      text: {
        vocab_size: 0,
        context_length: 32,
        width: 64,
        layers: 2,
        heads: 4,
        mlp_ratio: 4,
        eot_token_id: 0,
      },
      prompter: { heads: 4, mlp_ratio: 4 },
      loss: LOSS,
    },
  },
  small: {
    preset: "small",
    mode: "cloc",
    data: "mosaic:digits",
    trainCount: 100000,
    evalCount: 2000,
    canvas: 64,
    ...COLOURED_SCENES,
    tokenizer: "word",
    steps: 5000,
    batchSize: 64,
    accumulate: 1,
    maxRegions: 4,
    lr: 1e-3,
    minLr: 1e-5,
    warmupSteps: 250,
    weightDecay: 0.1,
    betas: [0.9, 0.98],
    eps: 1e-6,
    gradClip: 1.0,
    precision: "f32",
    seed: 0,
    logEvery: 25,
    checkpointEvery: 500,
    skipNonfinite: false,
    evalAtEnd: true,
    model: {
      embed_dim: 128,
      act: "gelu",
      vision: { image_size: 64, patch_size: 8, width: 192, layers: 6, heads: 6, mlp_ratio: 4 },
      text: {
        vocab_size: 0,
        context_length: 32,
        width: 128,
        layers: 4,
        heads: 4,
        mlp_ratio: 4,
        eot_token_id: 0,
      },
      prompter: { heads: 6, mlp_ratio: 4 },
      loss: LOSS,
    },
  },
  b16: {
    preset: "b16",
    mode: "cloc",
    data: "mosaic:digits",
    trainCount: 1000000,
    evalCount: 5000,
    canvas: 224,
    ...COLOURED_SCENES,
    tokenizer: "clip",
    steps: 20000,
    batchSize: 256,
    accumulate: 1,
    maxRegions: 4,
    lr: 5e-4,
    minLr: 1e-6,
    warmupSteps: 2000,
    weightDecay: 0.2,
    betas: [0.9, 0.98],
    eps: 1e-6,
    gradClip: 1.0,
    precision: "f32",
    seed: 0,
    logEvery: 50,
    checkpointEvery: 1000,
    skipNonfinite: false,
    evalAtEnd: true,
    model: {
      embed_dim: 512,
      act: "gelu",
      vision: { image_size: 224, patch_size: 16, width: 768, layers: 12, heads: 12, mlp_ratio: 4 },
      text: {
        vocab_size: 0,
        context_length: 77,
        width: 512,
        layers: 12,
        heads: 8,
        mlp_ratio: 4,
        eot_token_id: 0,
      },
      prompter: { heads: 12, mlp_ratio: 4 },
      loss: LOSS,
    },
  },
};

/** A partial config: every field optional, the model's nested objects too. */
export type TrainOverrides = Partial<Omit<TrainConfig, "model">> & {
  model?: Partial<Omit<ClocConfig, "vision" | "text" | "prompter" | "loss">> & {
    vision?: Partial<ClocConfig["vision"]>;
    text?: Partial<ClocConfig["text"]>;
    prompter?: Partial<ClocConfig["prompter"]>;
    loss?: Partial<ClocConfig["loss"]>;
  };
};

/**
 * A preset with overrides applied on top (objects merge, other values replace).
 *
 * @param preset A key of {@link PRESETS}.
 * @param overrides Values to change (from a JSON config file, then from flags).
 * @returns A new config (not yet validated: see {@link validateTrainConfig}).
 * @throws {RangeError} For an unknown preset, listing the known ones.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * const c = resolveConfig("cpu-tiny", { steps: 10, model: { vision: { layers: 1 } } });
 * console.log(c.steps, c.model.vision.layers, c.model.vision.width); // 10 1 64
 * ```
 */
export function resolveConfig(preset: string, ...overrides: TrainOverrides[]): TrainConfig {
  const base = PRESETS[preset];
  if (base === undefined) {
    throw new RangeError(`Unknown preset "${preset}": choose one of ${Object.keys(PRESETS).join(", ")}`);
  }
  let config = structuredClone(base) as unknown as Record<string, unknown>;
  for (const o of overrides) config = merge(config, o as Record<string, unknown>);
  return config as unknown as TrainConfig;
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined) continue;
    const prev = out[k];
    const isObject = (x: unknown) => x !== null && typeof x === "object" && !Array.isArray(x);
    out[k] = isObject(prev) && isObject(v)
      ? merge(prev as Record<string, unknown>, v as Record<string, unknown>)
      : v;
  }
  return out;
}

/**
 * Checks a training config before any GPU work, listing every problem with what to change. The model's
 * `vocab_size` and `eot_token_id` may still be 0 here (the tokenizer sets them).
 *
 * @param config The config.
 * @returns The same config.
 * @throws {RangeError} Naming each bad setting.
 *
 * @example
 * ```ts
 * import { resolveConfig, validateTrainConfig } from "./config.ts";
 * validateTrainConfig(resolveConfig("cpu-tiny"));
 * ```
 */
export function validateTrainConfig(config: TrainConfig): TrainConfig {
  const problems: string[] = [];
  const int = (name: keyof TrainConfig, min: number) => {
    const v = config[name] as number;
    if (!Number.isInteger(v) || v < min) {
      problems.push(`--${flagName(name)} must be an integer >= ${min}, got ${v}`);
    }
  };
  const pos = (name: keyof TrainConfig, min = 0) => {
    const v = config[name] as number;
    if (typeof v !== "number" || !(v >= min) || !Number.isFinite(v)) {
      problems.push(`--${flagName(name)} must be a number >= ${min}, got ${v}`);
    }
  };
  int("steps", 1);
  int("batchSize", 2);
  int("accumulate", 1);
  int("maxRegions", 0);
  int("warmupSteps", 0);
  int("logEvery", 1);
  int("checkpointEvery", 1);
  int("trainCount", 1);
  int("evalCount", 1);
  int("canvas", 8);
  int("minObjects", 1);
  int("maxObjects", 1);
  int("grid", 1);
  if (config.maxObjects < config.minObjects || config.maxObjects > 8) {
    problems.push(
      `--max-objects must be between --min-objects (${config.minObjects}) and 8 (the mosaic's colours), got ${config.maxObjects}`,
    );
  }
  if (!(config.smallSize > 0 && config.smallSize <= config.largeSize && config.largeSize <= 1)) {
    problems.push(
      `object sizes must satisfy 0 < --small-size <= --large-size <= 1, got ${config.smallSize} and ${config.largeSize}`,
    );
  }
  pos("lr");
  pos("minLr");
  pos("weightDecay");
  pos("gradClip");
  pos("eps");
  if (config.precision !== "f32" && config.precision !== "f16") {
    problems.push(`--precision must be "f32" or "f16", got "${config.precision}"`);
  }
  if (config.mode !== "cloc" && config.mode !== "clip") {
    problems.push(`--mode must be "cloc" or "clip", got "${config.mode}"`);
  }
  if (config.tokenizer !== "word" && config.tokenizer !== "clip") {
    problems.push(`--tokenizer must be "word" or "clip", got "${config.tokenizer}"`);
  }
  if (!/^mosaic:(digits|fashion)$/.test(config.data) && !/\.(jsonl|json)$/.test(config.data)) {
    problems.push(
      `--data must be mosaic:digits, mosaic:fashion, a .jsonl file or a COCO .json file, got "${config.data}"`,
    );
  }
  const b = config.betas;
  if (!Array.isArray(b) || b.length !== 2 || !b.every((x) => x >= 0 && x < 1)) {
    problems.push(`betas must be two numbers in [0, 1), got ${JSON.stringify(b)}`);
  }
  try {
    // The tokenizer fills these in; check the rest of the model now.
    const text = {
      ...config.model.text,
      vocab_size: Math.max(config.model.text.vocab_size, 2),
      eot_token_id: 1,
    };
    validateConfig({ ...config.model, text });
  } catch (e) {
    problems.push((e as Error).message.replace(/^Invalid model config: /, "model: "));
  }
  if (problems.length > 0) throw new RangeError(`Cannot train with this config: ${problems.join("; ")}`);
  return config;
}

/** `batchSize` → `batch-size`. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
