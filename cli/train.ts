/**
 * `deno task train`: trains a CLOC (or CLIP) model and ends with the evaluation table.
 * With no arguments it trains the `cpu-tiny` preset on the built-in digit mosaics.
 *
 * Every option below can also come from a JSON file (`--config run.json`, keys as in the run's config.json);
 * flags override the file, which overrides the preset.
 */

import { parseArgs } from "node:util";
import { requestGpu, setGpu, tuneMatmul } from "../mod.ts";
import {
  flagName,
  PRESETS,
  resolveConfig,
  type TrainConfig,
  type TrainOverrides,
  validateTrainConfig,
} from "../src/train/config.ts";
import { NonFiniteLossError, type StepMetrics, train } from "../src/train/trainer.ts";
import { evaluateRun } from "../src/eval/run.ts";

// name → [flag type, help]; defaults are the cpu-tiny preset's, shown by --help.
const OPTIONS = {
  preset: ["string", `starting point: ${Object.keys(PRESETS).join(", ")}`],
  config: ["string", "JSON file of settings (keys as in a run's config.json)"],
  out: ["string", "run directory (default runs/<date>-<time>)"],
  resume: ["string", "continue the run in this directory from its last checkpoint"],
  mode: ["string", "cloc (region losses too) or clip (the baseline)"],
  data: ["string", "mosaic:digits, mosaic:fashion, FILE.jsonl (region-text) or instances_*.json (COCO)"],
  steps: ["string", "optimizer steps"],
  seed: ["string", "seed of the initialisation and the data order"],
  "batch-size": ["string", "images a batch"],
  accumulate: ["string", "batches summed into one step (gradient accumulation)"],
  "max-regions": ["string", "region slots per image (M)"],
  lr: ["string", "peak learning rate"],
  "min-lr": ["string", "learning rate at the end of the cosine decay"],
  "warmup-steps": ["string", "linear warmup steps"],
  "weight-decay": ["string", "AdamW weight decay (2-D and larger parameters only)"],
  "grad-clip": ["string", "clip the global gradient norm to this (0: off)"],
  precision: [
    "string",
    "f32, or f16: linear layers read f16 copies of inputs and weights (needs shader-f16)",
  ],
  "log-every": ["string", "read metrics back every N steps"],
  "checkpoint-every": ["string", "write a checkpoint every N steps"],
  "train-count": ["string", "mosaic scenes to train on"],
  "eval-count": ["string", "mosaic test scenes to evaluate on"],
  canvas: ["string", "mosaic canvas side in pixels"],
  "min-objects": ["string", "fewest objects in a mosaic scene"],
  "max-objects": ["string", "most objects in a mosaic scene"],
  "small-size": ["string", "longer side of a small mosaic object, as a fraction of the canvas"],
  "large-size": ["string", "longer side of a large mosaic object, as a fraction of the canvas"],
  grid: ["string", "mosaic objects sit at multiples of this many canvas pixels (1: anywhere)"],
  colors: ["boolean", "tint mosaic objects and name their colours (cpu-tiny draws them white)"],
  tokenizer: ["string", "word (from the data's texts) or clip (OpenAI BPE)"],
  "image-size": ["string", "model input side in pixels"],
  "patch-size": ["string", "ViT patch side"],
  width: ["string", "vision width"],
  layers: ["string", "vision layers"],
  heads: ["string", "vision heads"],
  "text-width": ["string", "text width"],
  "text-layers": ["string", "text layers"],
  "text-heads": ["string", "text heads"],
  "context-length": ["string", "text tokens a caption"],
  "embed-dim": ["string", "embedding width"],
  "prompter-heads": ["string", "Prompter heads"],
  prompter: ["string", "region embedding: block (the Prompter) or roialign (the paper's ablation)"],
  act: ["string", "gelu or quick_gelu"],
  "skip-nonfinite": ["boolean", "skip steps with a NaN/Inf loss instead of stopping"],
  "no-eval": ["boolean", "do not evaluate at the end"],
  help: ["boolean", "this text"],
} as const;

type Flags = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K][0] extends "boolean" ? boolean : string };

function usage(): string {
  const preset = PRESETS["cpu-tiny"];
  const defaults: Record<string, unknown> = {
    preset: "cpu-tiny",
    ...Object.fromEntries(Object.entries(preset).map(([k, v]) => [flagName(k), v])),
    "image-size": preset.model.vision.image_size,
    "patch-size": preset.model.vision.patch_size,
    width: preset.model.vision.width,
    layers: preset.model.vision.layers,
    heads: preset.model.vision.heads,
    "text-width": preset.model.text.width,
    "text-layers": preset.model.text.layers,
    "text-heads": preset.model.text.heads,
    "context-length": preset.model.text.context_length,
    "embed-dim": preset.model.embed_dim,
    "prompter-heads": preset.model.prompter.heads,
    prompter: "block",
    act: preset.model.act,
  };
  const lines = Object.entries(OPTIONS).map(([name, [, help]]) => {
    const d = defaults[name];
    const shown = d === undefined || typeof d === "object" ? "" : ` (default: ${d})`;
    return `  --${name.padEnd(18)} ${help}${shown}`;
  });
  return `Usage: deno task train [options]\n\nTrains CLOC on the built-in digit mosaics by default, then evaluates it.\n\n${
    lines.join("\n")
  }`;
}

function num(flags: Flags, name: keyof Flags): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || v.trim() === "" || !Number.isFinite(n)) {
    throw new RangeError(`--${name} must be a number, got "${v}"`);
  }
  return n;
}

async function configFrom(flags: Flags): Promise<TrainConfig> {
  let fromFile: TrainOverrides = {};
  if (flags.config) {
    try {
      fromFile = JSON.parse(await Deno.readTextFile(flags.config));
    } catch (e) {
      throw new Error(`--config ${flags.config}: ${(e as Error).message}`);
    }
  }
  const fromFlags: TrainOverrides = {
    mode: flags.mode as TrainConfig["mode"] | undefined,
    data: flags.data,
    steps: num(flags, "steps"),
    seed: num(flags, "seed"),
    batchSize: num(flags, "batch-size"),
    accumulate: num(flags, "accumulate"),
    maxRegions: num(flags, "max-regions"),
    lr: num(flags, "lr"),
    minLr: num(flags, "min-lr"),
    warmupSteps: num(flags, "warmup-steps"),
    weightDecay: num(flags, "weight-decay"),
    gradClip: num(flags, "grad-clip"),
    precision: flags.precision as TrainConfig["precision"] | undefined,
    logEvery: num(flags, "log-every"),
    checkpointEvery: num(flags, "checkpoint-every"),
    trainCount: num(flags, "train-count"),
    evalCount: num(flags, "eval-count"),
    canvas: num(flags, "canvas"),
    minObjects: num(flags, "min-objects"),
    maxObjects: num(flags, "max-objects"),
    smallSize: num(flags, "small-size"),
    largeSize: num(flags, "large-size"),
    grid: num(flags, "grid"),
    monochrome: flags.colors ? false : undefined,
    tokenizer: flags.tokenizer as TrainConfig["tokenizer"] | undefined,
    skipNonfinite: flags["skip-nonfinite"] || undefined,
    evalAtEnd: flags["no-eval"] ? false : undefined,
    model: {
      embed_dim: num(flags, "embed-dim"),
      act: flags.act as TrainConfig["model"]["act"] | undefined,
      vision: {
        image_size: num(flags, "image-size"),
        patch_size: num(flags, "patch-size"),
        width: num(flags, "width"),
        layers: num(flags, "layers"),
        heads: num(flags, "heads"),
      },
      text: {
        width: num(flags, "text-width"),
        layers: num(flags, "text-layers"),
        heads: num(flags, "text-heads"),
        context_length: num(flags, "context-length"),
      },
      prompter: {
        heads: num(flags, "prompter-heads"),
        kind: flags.prompter as "block" | "roialign" | undefined,
      },
    },
  };
  const preset = flags.preset ?? (fromFile as { preset?: string }).preset ?? "cpu-tiny";
  return resolveConfig(preset, fromFile, fromFlags);
}

/** A one-line progress display: redrawn in place on a terminal, a line every log otherwise. */
function progress(m: StepMetrics, config: TrainConfig, tty: boolean): void {
  const remaining = (config.steps - m.step) * config.batchSize * config.accumulate /
    Math.max(m.images_per_s, 1e-9);
  const eta = remaining > 90
    ? `${Math.floor(remaining / 60)}m${String(Math.round(remaining % 60)).padStart(2, "0")}s`
    : `${Math.round(remaining)}s`;
  const parts = config.mode === "cloc"
    ? `loss ${m.loss.toFixed(3)} (clip ${m.loss_clip.toFixed(3)} cloc ${m.loss_cloc.toFixed(3)} ground ${
      m.loss_ground.toFixed(4)
    })`
    : `loss ${m.loss.toFixed(3)}`;
  const width = 24, done = Math.round((width * m.step) / config.steps);
  const bar = tty ? `[${"#".repeat(done)}${".".repeat(width - done)}] ` : "";
  const line = `${bar}step ${m.step}/${config.steps} ${parts} lr ${m.lr.toExponential(2)} ` +
    `${m.images_per_s.toFixed(1)} img/s ETA ${eta}${m.skipped ? " (skipped: not finite)" : ""}`;
  if (tty) Deno.stdout.writeSync(new TextEncoder().encode(`\r\x1b[2K${line}`));
  else console.log(line);
}

async function main(): Promise<number> {
  const { values: flags } = parseArgs({
    args: Deno.args,
    options: Object.fromEntries(Object.entries(OPTIONS).map(([k, [type]]) => [k, { type }])) as Record<
      string,
      { type: "string" | "boolean" }
    >,
  }) as { values: Flags };
  if (flags.help) {
    console.log(usage());
    return 0;
  }
  // Everything that can be checked is checked before the GPU is touched.
  const config = await configFrom(flags);
  const resume = flags.resume !== undefined;
  const out = flags.resume ?? flags.out ??
    `runs/${new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-")}`;
  if (!resume) validateTrainConfig(config);
  if (!resume && /\.(jsonl|json)$/.test(config.data)) {
    try {
      await Deno.stat(config.data);
    } catch {
      throw new Error(`--data ${config.data}: no such file`);
    }
  }

  const gpu = await requestGpu();
  setGpu(gpu);
  await tuneMatmul(gpu); // tile sizes for this adapter (about a second)
  console.log(
    `adapter: ${gpu.info.description || gpu.info.vendor}${gpu.isFallbackAdapter ? " (software)" : ""}`,
  );
  console.log(`run directory: ${out}`);
  const tty = Deno.stdout.isTerminal();
  const stop = new AbortController();
  const onSigint = () => {
    if (stop.signal.aborted) Deno.exit(130); // a second Ctrl-C: give up at once
    console.log("\nstopping after this step and saving a checkpoint (Ctrl-C again to quit at once)");
    stop.abort();
  };
  Deno.addSignalListener("SIGINT", onSigint);
  const started = performance.now();
  try {
    const result = await train(config, {
      out,
      resume,
      signal: stop.signal,
      onLog: (m, c) => progress(m, c, tty),
      onMessage: (message) => console.log(tty ? `\r\x1b[2K${message}` : message),
    });
    if (tty) console.log();
    const minutes = (performance.now() - started) / 60000;
    console.log(`trained ${result.step} steps in ${minutes.toFixed(1)} min; loss curves in ${out}/loss.png`);
    if (!result.interrupted && result.config.evalAtEnd) {
      const report = await evaluateRun(
        result.model,
        result.tokenizer,
        result.config,
        out,
        (m) => console.log(m),
      );
      console.log(report.markdown);
    }
    result.model.dispose();
    return result.interrupted ? 130 : 0;
  } catch (e) {
    if (tty) console.log();
    if (e instanceof NonFiniteLossError) {
      console.error(e.message);
      return 1;
    }
    throw e;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    gpu.destroy();
  }
}

try {
  Deno.exit(await main());
} catch (e) {
  console.error(`error: ${(e as Error).message}`);
  Deno.exit(1);
}
