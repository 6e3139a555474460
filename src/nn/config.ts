/**
 * The model's configuration, exactly as `spec/model.md` writes it (snake_case keys, so a checkpoint's
 * `config` metadata is this object as JSON), with validation that says what to change.
 *
 * @module
 */

/** The image tower. */
export interface VisionConfig {
  /** Side of the square input image in pixels. */
  image_size: number;
  /** Side of a square patch; must divide `image_size`. */
  patch_size: number;
  /** Token width W; must be even (the box prompt's sine code splits it in two) and divisible by `heads`. */
  width: number;
  /** Residual blocks. */
  layers: number;
  /** Attention heads. */
  heads: number;
  /** MLP hidden width = mlp_ratio * width. */
  mlp_ratio: number;
}

/** The text tower. */
export interface TextConfig {
  /** Token ids are in [0, vocab_size). */
  vocab_size: number;
  /** Tokens per caption (ctx). */
  context_length: number;
  /** Token width V; divisible by `heads`. */
  width: number;
  /** Residual blocks. */
  layers: number;
  /** Attention heads. */
  heads: number;
  /** MLP hidden width = mlp_ratio * width. */
  mlp_ratio: number;
  /** The id whose first occurrence is the pooled position. */
  eot_token_id: number;
}

/** The Prompter: one block of the vision width. */
export interface PrompterConfig {
  /** Attention heads; must divide the vision width. */
  heads: number;
  /** MLP hidden width = mlp_ratio * vision width. */
  mlp_ratio: number;
  /**
   * How a box becomes a region embedding: `"block"` is the spec's Prompter (box prompt through the block);
   * `"roialign"` is the paper's ablation: RoIAlign-pooled patch tokens inside the box, then `ln_post` and
   * `proj`. Grounding uses the block in both. @default "block"
   */
  kind?: "block" | "roialign";
}

/** Loss settings. */
export interface LossConfig {
  /** Weight of the region losses (scaled by the share of images with regions). */
  region_weight: number;
  /** Off-diagonal region-text pairs whose caption similarity exceeds this leave the denominators. */
  text_filter_threshold: number;
  /** The upper clamp of `logit_scale` (ln 100). */
  logit_scale_max: number;
}

/** The whole model (see spec/model.md). */
export interface ClocConfig {
  /** Width E of the shared embedding space. */
  embed_dim: number;
  /** MLP activation: exact "gelu" (erf) or OpenAI's "quick_gelu". */
  act: "gelu" | "quick_gelu";
  /** The image tower. */
  vision: VisionConfig;
  /** The text tower. */
  text: TextConfig;
  /** The Prompter. */
  prompter: PrompterConfig;
  /** The losses. */
  loss: LossConfig;
}

/**
 * The spec's example configuration (the golden bundle's).
 *
 * @example
 * ```ts
 * import { TINY_CONFIG } from "./config.ts";
 * console.log(TINY_CONFIG.vision.width); // 32
 * ```
 */
export const TINY_CONFIG: ClocConfig = {
  embed_dim: 24,
  act: "gelu",
  vision: { image_size: 32, patch_size: 8, width: 32, layers: 2, heads: 2, mlp_ratio: 4 },
  text: { vocab_size: 64, context_length: 8, width: 32, layers: 2, heads: 2, mlp_ratio: 4, eot_token_id: 63 },
  prompter: { heads: 1, mlp_ratio: 4 },
  loss: { region_weight: 1.0, text_filter_threshold: 0.9, logit_scale_max: Math.log(100) },
};

/**
 * Checks a configuration before any GPU work, listing every problem with what to change.
 *
 * @param config A configuration (for example parsed from JSON).
 * @returns The same configuration, typed.
 * @throws {RangeError} Naming each bad field.
 *
 * @example
 * ```ts
 * import { TINY_CONFIG, validateConfig } from "./config.ts";
 * validateConfig(TINY_CONFIG);
 * try {
 *   validateConfig({ ...TINY_CONFIG, vision: { ...TINY_CONFIG.vision, patch_size: 5 } });
 * } catch (e) {
 *   console.log((e as Error).message); // vision.image_size 32 is not divisible by vision.patch_size 5 ...
 * }
 * ```
 */
export function validateConfig(config: ClocConfig): ClocConfig {
  const problems: string[] = [];
  const positive = (path: string, v: unknown) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      problems.push(`${path} must be a positive integer, got ${JSON.stringify(v)}`);
    }
  };
  if (typeof config !== "object" || config === null) {
    throw new RangeError("The model config must be an object");
  }
  positive("embed_dim", config.embed_dim);
  if (config.act !== "gelu" && config.act !== "quick_gelu") {
    problems.push(`act must be "gelu" or "quick_gelu", got ${JSON.stringify(config.act)}`);
  }
  const v = config.vision ?? {} as VisionConfig;
  const t = config.text ?? {} as TextConfig;
  const p = config.prompter ?? {} as PrompterConfig;
  for (const key of ["image_size", "patch_size", "width", "layers", "heads", "mlp_ratio"] as const) {
    positive(`vision.${key}`, v[key]);
  }
  for (const key of ["vocab_size", "context_length", "width", "layers", "heads", "mlp_ratio"] as const) {
    positive(`text.${key}`, t[key]);
  }
  positive("prompter.heads", p.heads);
  positive("prompter.mlp_ratio", p.mlp_ratio);
  if (p.kind !== undefined && p.kind !== "block" && p.kind !== "roialign") {
    problems.push(`prompter.kind must be "block" or "roialign", got ${JSON.stringify(p.kind)}`);
  }
  if (v.image_size % v.patch_size !== 0) {
    problems.push(
      `vision.image_size ${v.image_size} is not divisible by vision.patch_size ${v.patch_size}: pick a patch size that divides it`,
    );
  }
  if (v.width % v.heads !== 0) {
    problems.push(`vision.width ${v.width} is not divisible by vision.heads ${v.heads}`);
  }
  if (v.width % 2 !== 0) {
    problems.push(`vision.width ${v.width} must be even (the box prompt's sine code splits it in two)`);
  }
  if (v.width % p.heads !== 0) {
    problems.push(`vision.width ${v.width} is not divisible by prompter.heads ${p.heads}`);
  }
  if (t.width % t.heads !== 0) {
    problems.push(`text.width ${t.width} is not divisible by text.heads ${t.heads}`);
  }
  if (!Number.isInteger(t.eot_token_id) || t.eot_token_id < 0 || t.eot_token_id >= t.vocab_size) {
    problems.push(`text.eot_token_id ${t.eot_token_id} must be an id below text.vocab_size ${t.vocab_size}`);
  }
  const loss = config.loss ?? {} as LossConfig;
  if (!(loss.region_weight >= 0)) problems.push(`loss.region_weight must be >= 0, got ${loss.region_weight}`);
  if (typeof loss.text_filter_threshold !== "number") {
    problems.push("loss.text_filter_threshold must be a number");
  }
  if (typeof loss.logit_scale_max !== "number") problems.push("loss.logit_scale_max must be a number");
  if (problems.length > 0) throw new RangeError(`Invalid model config: ${problems.join("; ")}`);
  return config;
}
