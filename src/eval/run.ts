/**
 * Evaluating a training run: open its checkpoint (model, tokenizer, `config.json`), choose the evaluation
 * data (the mosaic *test* split, or the run's JSONL/COCO file), evaluate, and save `eval.json` and `eval.md`
 * in the run directory. The work behind `deno task eval` and the evaluation at the end of `deno task train`.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import type { Cloc } from "../nn/model.ts";
import { loadModel } from "../io/checkpoint.ts";
import { writeFileAtomic } from "../io/files.ts";
import { type DataSpec, openDataset } from "../data/dataset.ts";
import type { MosaicOptions } from "../data/mosaic.ts";
import { type Tokenizer, tokenizerFromJson } from "../data/tokenizer.ts";
import { type EvalReport, evaluate } from "./evaluate.ts";
import { formatReport } from "./report.ts";

/**
 * What a run's `config.json` tells the evaluation (the trainer's `TrainConfig` has these fields).
 *
 * @example
 * ```ts
 * import type { RunInfo } from "./run.ts";
 * const info: RunInfo = { mode: "cloc", data: "mosaic:digits", evalCount: 500, canvas: 64 };
 * ```
 */
export interface RunInfo extends SceneOptions {
  /** How the run trained: "cloc" (region losses) or "clip" (the baseline). @default "cloc" */
  mode?: "cloc" | "clip";
  /** The training data: `mosaic:digits`, `mosaic:fashion`, a `.jsonl` or a COCO `.json`. @default "mosaic:digits" */
  data?: string;
  /** Mosaic test scenes to evaluate. @default 1000 */
  evalCount?: number;
}

/** The look of a run's mosaic scenes (canvas, object count, sizes, grid, colours), so test scenes match. */
export type SceneOptions = Pick<
  MosaicOptions,
  "canvas" | "minObjects" | "maxObjects" | "smallSize" | "largeSize" | "grid" | "monochrome"
>;

/**
 * The seed of the mosaic scenes evaluated: fixed, so runs trained with different seeds are scored on the
 * same scenes (drawn from the digit sources' test split, which no training scene uses).
 */
export const EVAL_SEED = 20241003;

/** Mosaic test scenes evaluated when neither the run nor the caller says. */
export const DEFAULT_EVAL_COUNT = 1000;

/**
 * The data set to evaluate on: for `mosaic:digits` / `mosaic:fashion` the test split (scenes built from
 * test-split glyphs, seed {@link EVAL_SEED}); a `.jsonl` file as region-text JSONL; any other `.json` as a
 * COCO instances file.
 *
 * @param data `mosaic:digits`, `mosaic:fashion`, `FILE.jsonl` or `instances.json`.
 * @param options Mosaic scene count, canvas and object counts and sizes (the run's, so test scenes look like training's).
 * @returns The spec for `openDataset`.
 * @throws {RangeError} For a data string that is none of these.
 *
 * @example
 * ```ts
 * import { evalDataSpec } from "./run.ts";
 * const spec = evalDataSpec("mosaic:fashion", { count: 200 });
 * if (spec.kind !== "mosaic" || spec.split !== "test" || spec.count !== 200) throw new Error();
 * ```
 */
export function evalDataSpec(
  data: string,
  options: { count?: number } & SceneOptions = {},
): DataSpec {
  const mosaic = /^mosaic:(.*)$/.exec(data);
  if (mosaic) {
    if (mosaic[1] !== "digits" && mosaic[1] !== "fashion") {
      throw new RangeError(`Unknown mosaic set "${mosaic[1]}": wanted mosaic:digits or mosaic:fashion`);
    }
    const count = options.count ?? DEFAULT_EVAL_COUNT;
    if (!(Number.isInteger(count) && count >= 1)) {
      throw new RangeError(`The mosaic scene count must be an integer >= 1, got ${count}`);
    }
    return {
      kind: "mosaic",
      set: mosaic[1],
      split: "test",
      count,
      seed: EVAL_SEED,
      canvas: options.canvas ?? 64,
      minObjects: options.minObjects,
      maxObjects: options.maxObjects,
      smallSize: options.smallSize,
      largeSize: options.largeSize,
      grid: options.grid,
      monochrome: options.monochrome,
    };
  }
  if (data.endsWith(".jsonl")) return { kind: "jsonl", path: data };
  if (data.endsWith(".json")) return { kind: "coco", path: data };
  throw new RangeError(
    `Cannot tell the data format of "${data}": wanted mosaic:digits, mosaic:fashion, a .jsonl file or a COCO .json`,
  );
}

/** A checkpoint opened for evaluation. */
export interface OpenedRun {
  /** The model. */
  model: Cloc;
  /** The tokenizer saved with it. */
  tokenizer: Tokenizer;
  /** The run directory (where `eval.json` goes). */
  dir: string;
  /** The `.safetensors` file read. */
  file: string;
  /** The run's `config.json`, when the directory has one. */
  info: RunInfo | null;
}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Opens a checkpoint for evaluation: a run directory (its `model.safetensors` and `config.json`) or a
 * `.safetensors` file (with `config.json` read from beside it when present). The tokenizer comes from the
 * checkpoint's `tokenizer` metadata.
 *
 * @param path A run directory or a `.safetensors` file.
 * @returns The model, tokenizer, directory, file and run info.
 * @throws {Error} When the path does not exist, holds no model, or the checkpoint has no tokenizer.
 *
 * @example
 * ```ts ignore
 * const { model, tokenizer, info } = await openRun("runs/x");
 * ```
 */
export async function openRun(path: string): Promise<OpenedRun> {
  const stat = await statOrNull(path);
  if (stat === null) {
    throw new Error(
      `Checkpoint not found: "${path}" does not exist: wanted a run directory holding model.safetensors, or a .safetensors file`,
    );
  }
  const file = stat.isDirectory ? join(path, "model.safetensors") : path;
  const dir = stat.isDirectory ? path : dirname(path);
  if (stat.isDirectory && (await statOrNull(file)) === null) {
    throw new Error(
      `Checkpoint not found: the directory "${path}" has no model.safetensors: is it a training run directory?`,
    );
  }
  let info: RunInfo | null = null;
  const configFile = join(dir, "config.json");
  if ((await statOrNull(configFile)) !== null) {
    try {
      info = JSON.parse(await Deno.readTextFile(configFile)) as RunInfo;
    } catch (e) {
      throw new Error(`${configFile}: not valid JSON: ${(e as Error).message}`);
    }
  }
  const { model, metadata } = await loadModel(file);
  if (!metadata.tokenizer) {
    model.dispose();
    throw new Error(
      `${file}: no "tokenizer" in the checkpoint's metadata: cannot encode captions the way the model was trained`,
    );
  }
  let tokenizer: Tokenizer;
  try {
    tokenizer = tokenizerFromJson(JSON.parse(metadata.tokenizer));
  } catch (e) {
    model.dispose();
    throw new Error(`${file}: the checkpoint's tokenizer cannot be read: ${(e as Error).message}`);
  }
  return { model, tokenizer, dir, file, info };
}

/** Options of {@link evaluateRun}. */
export interface EvaluateRunOptions {
  /** Evaluation data, overriding the run's (`mosaic:digits`, `FILE.jsonl`, `coco.json`). */
  data?: string;
  /** Mosaic test scenes, overriding the run's `evalCount`. */
  count?: number;
  /** Mode, overriding the run's. */
  mode?: "cloc" | "clip";
  /** Images a forward pass. @default 32 */
  batchSize?: number;
  /** Class names for region recognition (see `EvaluateOptions.classNames` in evaluate.ts). */
  classNames?: readonly string[];
  /** Progress and status lines. */
  log?: (message: string) => void;
  /** Write `eval.json` and `eval.md` into the run directory. @default true */
  save?: boolean;
}

/**
 * Evaluates a trained model on its run's evaluation data and saves `eval.json` (the report) and `eval.md`
 * (the table) in the run directory.
 *
 * @param model The model.
 * @param tokenizer Its tokenizer.
 * @param info The run's config (mode, data, mosaic count and canvas); the trainer's config fits.
 * @param dir The run directory.
 * @param options Overrides, logging, or a plain `log` function.
 * @returns The report and its markdown.
 *
 * @example
 * ```ts ignore
 * const { report, markdown } = await evaluateRun(model, tokenizer, config, "runs/x", console.log);
 * ```
 */
export async function evaluateRun(
  model: Cloc,
  tokenizer: Tokenizer,
  info: RunInfo | null,
  dir: string,
  options: EvaluateRunOptions | ((message: string) => void) = {},
): Promise<{ report: EvalReport; markdown: string; spec: DataSpec }> {
  const o: EvaluateRunOptions = typeof options === "function" ? { log: options } : options;
  const log = o.log ?? (() => {});
  const data = o.data ?? info?.data ?? "mosaic:digits";
  const mode = o.mode ?? info?.mode ?? "cloc";
  const spec = evalDataSpec(data, { ...info, count: o.count ?? info?.evalCount });
  if (spec.kind !== "mosaic" && (await statOrNull(spec.path)) === null) {
    throw new Error(`Evaluation data not found: "${spec.path}" does not exist`);
  }
  const { dataset, bad } = await openDataset(spec);
  if (bad && bad.count > 0) log(bad.summary());
  const what = spec.kind === "mosaic" ? `${spec.count} mosaic:${spec.set} test scenes` : spec.path;
  log(`evaluating (${mode}) on ${what}`);
  let lastShown = 0;
  const report = await evaluate(model, dataset, tokenizer, {
    mode,
    batchSize: o.batchSize,
    classNames: o.classNames,
    onProgress: (done, total) => {
      if (done === total || done - lastShown >= total / 10) {
        lastShown = done;
        log(`  ${done}/${total} images`);
      }
    },
  });
  const markdown = formatReport(report, basename(dir) || dir);
  if (o.save ?? true) {
    const enc = new TextEncoder();
    await Deno.mkdir(dir, { recursive: true });
    await writeFileAtomic(join(dir, "eval.json"), enc.encode(JSON.stringify(report, null, 2) + "\n"));
    await writeFileAtomic(join(dir, "eval.md"), enc.encode(markdown));
  }
  return { report, markdown, spec };
}
