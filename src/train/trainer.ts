/**
 * The training loop, as a story: config, data, model, optimizer, the schedule as a pure function of the step,
 * then the loop. Every GPU → CPU readback is marked; there is one every `logEvery` steps, none inside a step.
 *
 * A run directory holds `config.json`, `metrics.jsonl`, `model.safetensors` (for evaluation and export),
 * `train_state.safetensors` (parameters, AdamW moments and the loader position: everything needed to resume
 * exactly, in one atomically written file), and the loss curves `loss.png` and `loss.svg`.
 *
 * @module
 */

import { backward } from "../tensor/autograd.ts";
import { Rng } from "../tensor/random.ts";
import { getGpu, keep, type Tensor, tensor, tidy } from "../tensor/tensor.ts";
import { add } from "../ops/binary.ts";
import { scale } from "../ops/unary.ts";
import { sum } from "../ops/reduce.ts";
import { reshape } from "../ops/reshape.ts";
import { concat } from "../ops/slice.ts";
import { Cloc, type ClocBatch } from "../nn/model.ts";
import { clocLosses } from "../nn/losses.ts";
import type { HostTensor } from "../nn/module.ts";
import { AdamW } from "../optim/adamw.ts";
import { saveModel } from "../io/checkpoint.ts";
import { exists, readSafetensorsFile, writeFileAtomic, writeSafetensorsFile } from "../io/files.ts";
import { toFloat32 } from "../io/safetensors.ts";
import type { DataSpec } from "../data/dataset.ts";
import { Loader, type LoaderState } from "../data/loader.ts";
import { MOSAIC_WORDS } from "../data/mosaic.ts";
import { ClipTokenizer, type Tokenizer, tokenizerFromJson, WordTokenizer } from "../data/tokenizer.ts";
import { readRegionJsonl } from "../data/jsonl.ts";
import { readCoco } from "../data/coco.ts";
import { learningRate } from "./schedule.ts";
import { type TrainConfig, validateTrainConfig } from "./config.ts";
import { lineChartPng, lineChartSvg } from "./plot.ts";

/** One logged step of `metrics.jsonl`. */
export interface StepMetrics {
  /** The optimizer step (1-based). */
  step: number;
  /** The total loss. */
  loss: number;
  /** `loss_clip`. */
  loss_clip: number;
  /** `loss_cloc` (0 in CLIP mode). */
  loss_cloc: number;
  /** `loss_ground` (0 in CLIP mode). */
  loss_ground: number;
  /** The global gradient norm before clipping. */
  grad_norm: number;
  /** The learning rate of the step. */
  lr: number;
  /** Images per second over the last logging window. */
  images_per_s: number;
  /** Seconds since the run (or the resumed run) started. */
  elapsed_s: number;
  /** Whether the step was skipped for a non-finite loss (with `skipNonfinite`). */
  skipped: boolean;
}

/** Options of {@link train}. */
export interface TrainOptions {
  /** The run directory (created; an existing run there is refused unless resuming). */
  out: string;
  /** Continue the run in `out` from its last checkpoint. */
  resume?: boolean;
  /** Called after each metrics readback, for progress displays. */
  onLog?: (m: StepMetrics, config: TrainConfig) => void;
  /** Called with a message for anything worth telling the user (checkpoints, skipped records). */
  onMessage?: (message: string) => void;
  /** Stop after the step in progress, save a checkpoint and return (Ctrl-C). */
  signal?: AbortSignal;
  /** Stop after this step (tests use it to simulate an interrupted run). */
  stopAfter?: number;
}

/** What {@link train} returns. */
export interface TrainResult {
  /** The last completed step. */
  step: number;
  /** Every logged step of this process. */
  metrics: StepMetrics[];
  /** Whether the run stopped before `config.steps` (signal or `stopAfter`). */
  interrupted: boolean;
  /** The model (its parameters are the last step's). Dispose it when done. */
  model: Cloc;
  /** The tokenizer the run uses. */
  tokenizer: Tokenizer;
  /** The config, with the tokenizer's vocabulary size filled in. */
  config: TrainConfig;
}

/** Why a run stopped for a non-finite loss. */
export class NonFiniteLossError extends Error {
  /**
   * The error of a run that stopped at `step`.
   * @param step The first step whose loss or gradient was not finite.
   * @param message What happened and what to do.
   */
  constructor(readonly step: number, message: string) {
    super(message);
    this.name = "NonFiniteLossError";
  }
}

// ---------------------------------------------------------------------------------------------------------
// Data and tokenizer

/** The data set of a config's `data` string. */
export function dataSpec(config: TrainConfig, split: "train" | "test"): DataSpec {
  const mosaic = /^mosaic:(digits|fashion)$/.exec(config.data);
  if (mosaic) {
    const count = split === "train" ? config.trainCount : config.evalCount;
    return {
      kind: "mosaic",
      set: mosaic[1] as "digits" | "fashion",
      split,
      count,
      seed: config.seed,
      canvas: config.canvas,
      minObjects: config.minObjects,
      maxObjects: config.maxObjects,
      smallSize: config.smallSize,
      largeSize: config.largeSize,
      grid: config.grid,
      monochrome: config.monochrome,
      // Training sees region captions of every detail, down to the bare class name (see MosaicOptions).
      regionText: split === "train" ? "mixed" : "full",
    };
  }
  if (config.data.endsWith(".jsonl")) return { kind: "jsonl", path: config.data };
  return { kind: "coco", path: config.data };
}

/** The tokenizer of a config: OpenAI's BPE, or a word vocabulary from the data's texts. */
export async function makeTokenizer(config: TrainConfig): Promise<Tokenizer> {
  if (config.tokenizer === "clip") return new ClipTokenizer();
  if (config.data.startsWith("mosaic:")) return WordTokenizer.fromTexts(MOSAIC_WORDS);
  const texts: string[] = [];
  if (config.data.endsWith(".jsonl")) {
    const file = await readRegionJsonl(config.data, { images: "none" });
    for (const r of file.records) texts.push(r.caption, ...r.regions.map((g) => g.text));
  } else {
    const coco = await readCoco(config.data, { images: "none" });
    for (const r of coco.records) texts.push(r.caption, ...r.regions.map((g) => g.text));
  }
  return WordTokenizer.fromTexts(texts);
}

// ---------------------------------------------------------------------------------------------------------
// One step

/**
 * Records one optimizer step: forward, losses, backward over `batches` (gradient accumulation), then
 * gradient clipping and the AdamW update in one {@link AdamW.step}, which the GPU skips when the loss or the
 * gradient norm is not finite.
 * @returns `[5]`: loss, loss_clip, loss_cloc, loss_ground, grad_norm (read later, with other steps').
 */
function recordStep(
  model: Cloc,
  optimizer: AdamW,
  batches: ClocBatch[],
  config: TrainConfig,
  lr: number,
): Tensor {
  return tidy(() => {
    optimizer.zeroGrad();
    let parts: Tensor | null = null;
    for (const batch of batches) {
      const out = model.forward(batch, config.mode);
      const losses = clocLosses(out, batch, model.logitScale, config.model.loss);
      backward(scale(losses.loss, 1 / batches.length));
      const zero = tensor([0], [1]);
      const these = concat([
        reshape(losses.loss, [1]),
        reshape(losses.clip, [1]),
        losses.cloc ? reshape(losses.cloc, [1]) : zero,
        losses.ground ? reshape(losses.ground, [1]) : zero,
      ], 0);
      parts = parts === null ? these : add(parts, these);
    }
    // The gate is finite only when every loss part is; the GPU skips the update otherwise, and also when
    // the gradient norm (returned before clipping) is not finite.
    const norm = optimizer.step(lr, {
      gate: sum(parts!),
      maxNorm: config.gradClip > 0 ? config.gradClip : undefined,
    });
    // Free the gradients now rather than at the next step, which then gets this step's pool buffers back in
    // the same order, and with them its cached bind groups.
    optimizer.zeroGrad();
    return concat([scale(parts!, 1 / batches.length), reshape(norm, [1])], 0);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Checkpoints

interface TrainState {
  step: number;
  loader: LoaderState;
  adamSteps: number[];
  elapsed: number;
}

async function saveCheckpoint(
  dir: string,
  model: Cloc,
  optimizer: AdamW,
  tokenizer: Tokenizer,
  config: TrainConfig,
  state: TrainState,
): Promise<void> {
  // CPU-GPU sync point: parameters and moments are read back to be written.
  const tensors = new Map<string, { dtype: "F32"; shape: readonly number[]; data: Float32Array }>();
  const { m, v } = optimizer.state();
  const named = model.namedParameters();
  for (let i = 0; i < named.length; i++) {
    const [name, p] = named[i];
    tensors.set(name, { dtype: "F32", shape: p.shape, data: (await p.toArray()) as Float32Array });
    tensors.set(`adamw.m.${name}`, {
      dtype: "F32",
      shape: p.shape,
      data: (await m[i].toArray()) as Float32Array,
    });
    tensors.set(`adamw.v.${name}`, {
      dtype: "F32",
      shape: p.shape,
      data: (await v[i].toArray()) as Float32Array,
    });
  }
  const metadata = {
    format: "pt",
    config: JSON.stringify(config.model),
    train_config: JSON.stringify(config),
    tokenizer: JSON.stringify(tokenizer.toJSON()),
    state: JSON.stringify(state),
  };
  // One file holds everything a resume needs, so a crash mid-save leaves the previous one whole.
  await writeSafetensorsFile(`${dir}/train_state.safetensors`, tensors, metadata);
  await saveModel(`${dir}/model.safetensors`, model, {
    tokenizer: metadata.tokenizer,
    step: `${state.step}`,
  });
}

async function loadCheckpoint(dir: string) {
  const path = `${dir}/train_state.safetensors`;
  const { tensors, metadata } = await readSafetensorsFile(path);
  for (const key of ["train_config", "tokenizer", "state"]) {
    if (!metadata[key]) {
      throw new Error(`${path}: no "${key}" in the metadata: not a clocgpu training checkpoint`);
    }
  }
  const config = JSON.parse(metadata.train_config) as TrainConfig;
  const tokenizer = tokenizerFromJson(JSON.parse(metadata.tokenizer));
  const state = JSON.parse(metadata.state) as TrainState;
  const host = (name: string): HostTensor => {
    const t = tensors.get(name);
    if (!t) throw new Error(`${path}: tensor "${name}" is missing`);
    return { shape: t.shape, data: toFloat32(t, name) };
  };
  return { config, tokenizer, state, host, path, names: [...tensors.keys()] };
}

// ---------------------------------------------------------------------------------------------------------
// Plots and metrics files

/** Writes `loss.svg` and `loss.png` of a run's metrics. */
export async function writeLossPlots(
  dir: string,
  metrics: StepMetrics[],
  mode: "cloc" | "clip",
): Promise<void> {
  const line = (name: string, key: keyof StepMetrics) => ({
    name,
    points: metrics.filter((m) => !m.skipped).map((m) => [m.step, m[key] as number] as [number, number]),
  });
  const series = [line("loss", "loss"), line("loss_clip", "loss_clip")];
  if (mode === "cloc") series.push(line("loss_cloc", "loss_cloc"), line("loss_ground", "loss_ground"));
  const options = { title: "training loss", xLabel: "step" };
  await writeFileAtomic(`${dir}/loss.svg`, new TextEncoder().encode(lineChartSvg(series, options)));
  await writeFileAtomic(`${dir}/loss.png`, lineChartPng(series, options));
}

async function readMetrics(path: string, upTo: number): Promise<StepMetrics[]> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return [];
  }
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as StepMetrics).filter((m) =>
    m.step <= upTo
  );
}

// ---------------------------------------------------------------------------------------------------------
// The loop

/**
 * Trains a model as `config` says, writing the run directory as it goes. With `resume`, continues the run in
 * `out` exactly: the same data order, schedule and optimizer state, so the losses of the steps after the
 * checkpoint are the ones an uninterrupted run would have had.
 *
 * @param config The training config (ignored, except `steps`, when resuming: the run's own is used).
 * @param options See {@link TrainOptions}.
 * @returns See {@link TrainResult}.
 * @throws {NonFiniteLossError} When a loss is NaN or infinite (and `skipNonfinite` is off); the last good
 *   checkpoint stays in `out`.
 *
 * @example
 * ```ts ignore
 * const result = await train(resolveConfig("cpu-tiny", { steps: 100 }), { out: "runs/demo" });
 * ```
 */
export async function train(config: TrainConfig, options: TrainOptions): Promise<TrainResult> {
  const { out } = options;
  const say = options.onMessage ?? (() => {});
  const gpu = getGpu();

  // 1. Config and run directory.
  let tokenizer: Tokenizer;
  let start = 0;
  let resumed: Awaited<ReturnType<typeof loadCheckpoint>> | null = null;
  if (options.resume) {
    resumed = await loadCheckpoint(out);
    config = {
      ...resumed.config,
      precision: resumed.config.precision ?? "f32", // runs saved before the setting existed ran in f32
      steps: config.steps ?? resumed.config.steps,
    };
    tokenizer = resumed.tokenizer;
    start = resumed.state.step;
    say(`resuming ${out} at step ${start}`);
  } else {
    validateTrainConfig(config);
    if (await exists(`${out}/train_state.safetensors`)) {
      throw new Error(`${out} already holds a run: pass --resume to continue it, or choose another --out`);
    }
    tokenizer = await makeTokenizer(config);
    config = structuredClone(config);
    config.model.text.vocab_size = tokenizer.vocabSize;
    config.model.text.eot_token_id = tokenizer.eotId;
    validateTrainConfig(config);
  }
  await Deno.mkdir(out, { recursive: true });
  await writeFileAtomic(
    `${out}/config.json`,
    new TextEncoder().encode(JSON.stringify(config, null, 2) + "\n"),
  );

  // 2. Data.
  const loader = await Loader.open(dataSpec(config, "train"), tokenizer, {
    batchSize: config.batchSize,
    imageSize: config.model.vision.image_size,
    contextLength: config.model.text.context_length,
    maxRegions: config.maxRegions,
    seed: config.seed,
    resume: resumed?.state.loader,
  });

  // 3. Model and optimizer.
  const model = new Cloc(config.model, new Rng(config.seed));
  model.setPrecision(config.precision); // refuses f16 on an adapter without shader-f16, naming it
  const named = model.namedParameters();
  const optimizer = new AdamW(named.map(([name, tensor]) => ({ name, tensor })), {
    lr: config.lr,
    betas: config.betas,
    eps: config.eps,
    weightDecay: config.weightDecay,
    clamp: { logit_scale: [0, config.model.loss.logit_scale_max] },
  });
  if (resumed) {
    model.loadParameters(new Map(named.map(([name]) => [name, resumed!.host(name)])), {
      source: resumed.path,
    });
    optimizer.loadState({
      step: start,
      steps: resumed.state.adamSteps,
      m: named.map(([name]) => resumed!.host(`adamw.m.${name}`).data),
      v: named.map(([name]) => resumed!.host(`adamw.v.${name}`).data),
    });
  }
  say(
    `model: ${model.parameterCount().toLocaleString("en")} parameters, mode ${config.mode}, ` +
      `${loader.length} training images, ${loader.stepsPerEpoch} steps an epoch`,
  );

  // 4. The schedule: a pure function of the step.
  const lrAt = (step: number) =>
    learningRate(step, {
      lr: config.lr,
      minLr: config.minLr,
      warmupSteps: config.warmupSteps,
      totalSteps: config.steps,
    });

  // 5. The loop.
  const metrics = await readMetrics(`${out}/metrics.jsonl`, start);
  const metricsFile = await Deno.open(`${out}/metrics.jsonl`, { create: true, write: true, truncate: true });
  await metricsFile.write(new TextEncoder().encode(metrics.map((m) => JSON.stringify(m) + "\n").join("")));
  const newMetrics: StepMetrics[] = [];
  const pending: { step: number; lr: number; values: Tensor }[] = [];
  const elapsedBefore = resumed?.state.elapsed ?? 0;
  const started = performance.now();
  let windowStart = performance.now(), windowImages = 0;
  let lastCheckpoint = start;
  let step = start;
  const elapsed = () => elapsedBefore + (performance.now() - started) / 1000;

  const readPending = async () => {
    if (pending.length === 0) return;
    // CPU-GPU sync point: every pending step's metrics in one readback.
    const all = tidy(() => concat(pending.map((p) => p.values), 0));
    const values = await all.toArray();
    all.dispose();
    const seconds = (performance.now() - windowStart) / 1000;
    const rate = windowImages / Math.max(seconds, 1e-9);
    for (let i = 0; i < pending.length; i++) {
      const [loss, clip, cloc, ground, norm] = values.subarray(5 * i, 5 * i + 5);
      const finite = Number.isFinite(loss) && Number.isFinite(norm);
      const m: StepMetrics = {
        step: pending[i].step,
        loss,
        loss_clip: clip,
        loss_cloc: cloc,
        loss_ground: ground,
        grad_norm: norm,
        lr: pending[i].lr,
        images_per_s: rate,
        elapsed_s: elapsed(),
        skipped: !finite,
      };
      pending[i].values.dispose();
      if (!finite && !config.skipNonfinite) {
        pending.splice(0);
        throw new NonFiniteLossError(
          m.step,
          `Step ${m.step}: the loss is ${loss} and the gradient norm ${norm}, not finite. The update was not ` +
            `applied and the last good checkpoint (step ${lastCheckpoint}) is kept in ${out}. Lower --lr, ` +
            "raise --grad-clip, or pass --skip-nonfinite to skip such steps",
        );
      }
      metrics.push(m);
      newMetrics.push(m);
      await metricsFile.write(new TextEncoder().encode(JSON.stringify(m) + "\n"));
    }
    pending.splice(0);
    windowStart = performance.now();
    windowImages = 0;
    options.onLog?.(metrics[metrics.length - 1], config);
  };

  const checkpoint = async () => {
    await readPending(); // never save a step whose loss was not checked
    await saveCheckpoint(out, model, optimizer, tokenizer, config, {
      step,
      loader: loader.state,
      adamSteps: optimizer.state().steps,
      elapsed: elapsed(),
    });
    lastCheckpoint = step;
    await writeLossPlots(out, metrics, config.mode);
    say(`checkpoint at step ${step} in ${out}`);
  };

  let interrupted = false;
  try {
    while (step < config.steps) {
      if (options.signal?.aborted || (options.stopAfter !== undefined && step >= options.stopAfter)) {
        interrupted = true;
        break;
      }
      const batches: ClocBatch[] = [];
      for (let k = 0; k < config.accumulate; k++) batches.push(await loader.next());
      step++;
      const lr = lrAt(step);
      pending.push({ step, lr, values: keep(recordStep(model, optimizer, batches, config, lr)) });
      gpu.flush(); // one submit a step: the GPU runs it while the CPU records the next
      windowImages += config.batchSize * config.accumulate;
      if (step % config.logEvery === 0 || step === config.steps) await readPending();
      if (step % config.checkpointEvery === 0 || step === config.steps) await checkpoint();
    }
    if (interrupted && step > lastCheckpoint) await checkpoint();
  } finally {
    for (const p of pending) p.values.dispose();
    metricsFile.close();
    loader.close();
    optimizer.zeroGrad();
    optimizer.dispose();
    const bad = loader.bad.length;
    if (bad > 0) say(`${bad} bad record(s) were skipped: ${loader.report()}`);
  }
  return { step, metrics: newMetrics, interrupted, model, tokenizer, config };
}
