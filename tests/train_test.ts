import { assert, assertEquals } from "./_assert.ts";
import { gpu } from "./_harness.ts";
import { resolveConfig, type TrainOverrides, validateTrainConfig } from "../src/train/config.ts";
import { NonFiniteLossError, train } from "../src/train/trainer.ts";
import { loadModel } from "../src/io/checkpoint.ts";
import { readSafetensorsFile } from "../src/io/files.ts";

/** A model and data small enough for a few steps a second on the software driver. */
const MICRO: TrainOverrides = {
  trainCount: 64,
  evalCount: 16,
  canvas: 32,
  batchSize: 8,
  steps: 6,
  warmupSteps: 2,
  logEvery: 1,
  checkpointEvery: 3,
  evalAtEnd: false,
  model: {
    embed_dim: 16,
    vision: { image_size: 16, patch_size: 8, width: 16, layers: 1, heads: 2 },
    text: { width: 16, layers: 1, heads: 2, context_length: 32 },
    prompter: { heads: 2 },
  },
};

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "clocgpu-train-" });
}

Deno.test("train() resumed from step 3 gives the same losses for steps 4-6 as an uninterrupted run", async () => {
  await gpu();
  const config = resolveConfig("cpu-tiny", MICRO);
  const whole = await tempDir(), parts = await tempDir();
  const a = await train(config, { out: whole });
  a.model.dispose();
  const first = await train(config, { out: parts, stopAfter: 3 });
  first.model.dispose();
  assert(first.interrupted && first.step === 3, `stopped at ${first.step}`);
  const second = await train(config, { out: parts, resume: true });
  second.model.dispose();
  const tail = (ms: typeof a.metrics) =>
    ms.filter((m) => m.step > 3).map((m) => [m.step, m.loss, m.loss_cloc, m.grad_norm]);
  assertEquals(tail(second.metrics), tail(a.metrics), "losses after resuming");
  const lines = (await Deno.readTextFile(`${parts}/metrics.jsonl`)).trim().split("\n");
  assertEquals(lines.length, 6, "metrics.jsonl has each step once");
  for (const f of ["config.json", "model.safetensors", "train_state.safetensors", "loss.png", "loss.svg"]) {
    await Deno.stat(`${parts}/${f}`);
  }
  await Deno.remove(whole, { recursive: true });
  await Deno.remove(parts, { recursive: true });
});

Deno.test("a training process killed mid-run leaves a checkpoint that loads and resumes", async () => {
  const out = await tempDir();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./_train_child.ts", import.meta.url).pathname,
      out,
      JSON.stringify({ ...MICRO, steps: 400, checkpointEvery: 2 }),
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Kill it (SIGKILL: no chance to clean up) once a checkpoint exists and a few more steps have run.
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    try {
      const text = await Deno.readTextFile(`${out}/metrics.jsonl`);
      if (text.trim().split("\n").length >= 5) break;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  const status = await child.status;
  assert(!status.success, "the child was killed");
  const { model, metadata } = await loadModel(`${out}/model.safetensors`);
  model.dispose();
  const state = await readSafetensorsFile(`${out}/train_state.safetensors`);
  const step = JSON.parse(state.metadata.state).step;
  assert(step >= 2 && Number(metadata.step) === step, `checkpoint step ${step}, model step ${metadata.step}`);
  for await (const entry of Deno.readDir(out)) {
    assert(!entry.name.includes(".tmp"), `left a temporary file: ${entry.name}`);
  }
  await gpu();
  const resumed = await train(resolveConfig("cpu-tiny", { ...MICRO, steps: step + 2 }), {
    out,
    resume: true,
  });
  resumed.model.dispose();
  assertEquals(resumed.step, step + 2);
  await Deno.remove(out, { recursive: true });
});

// AdamW moves every weight by about lr in its first step: with lr 1e12 the activations overflow f32 next step.
const EXPLODING: TrainOverrides = { ...MICRO, lr: 1e12, warmupSteps: 0, gradClip: 0, checkpointEvery: 1 };

Deno.test("a non-finite loss stops training with the step named and keeps the last good checkpoint", async () => {
  await gpu();
  const out = await tempDir();
  let error: unknown = null;
  try {
    const r = await train(resolveConfig("cpu-tiny", EXPLODING), { out });
    r.model.dispose();
  } catch (e) {
    error = e;
  }
  assert(error instanceof NonFiniteLossError, `expected a NonFiniteLossError, got ${error}`);
  const bad = (error as NonFiniteLossError).step;
  assert(
    (error as Error).message.includes(`Step ${bad}`) && (error as Error).message.includes("--skip-nonfinite"),
    (error as Error).message,
  );
  const state = await readSafetensorsFile(`${out}/train_state.safetensors`).catch(() => null);
  if (state) {
    assert(JSON.parse(state.metadata.state).step < bad, "the checkpoint is from before the bad step");
  }
  await Deno.remove(out, { recursive: true });
});

Deno.test("with skipNonfinite, non-finite steps are skipped on the GPU and counted in the metrics", async () => {
  await gpu();
  const out = await tempDir();
  const r = await train(resolveConfig("cpu-tiny", { ...EXPLODING, skipNonfinite: true }), { out });
  r.model.dispose();
  assertEquals(r.step, 6);
  const skipped = r.metrics.filter((m) => m.skipped).length;
  assert(skipped > 0, "some steps were skipped");
  await Deno.remove(out, { recursive: true });
});

Deno.test("train() with --precision f16 trains in f16 storage: finite losses near the f32 run's, saved in config.json", async () => {
  const device = await gpu();
  const dirs = [await tempDir(), await tempDir()];
  const run = async (precision: "f32" | "f16", out: string) => {
    const config = resolveConfig("cpu-tiny", { ...MICRO, steps: 3, checkpointEvery: 3, precision });
    if (precision === "f16" && !device.hasF16) {
      let message = "";
      try {
        await train(config, { out });
      } catch (e) {
        message = (e as Error).message;
      }
      assert(message.includes("need the WebGPU feature 'shader-f16'"), message);
      return null;
    }
    const r = await train(config, { out });
    r.model.dispose();
    return r;
  };
  const full = await run("f32", dirs[0]), half = await run("f16", dirs[1]);
  if (half !== null) {
    const saved = JSON.parse(await Deno.readTextFile(`${dirs[1]}/config.json`));
    assertEquals(saved.precision, "f16");
    for (let i = 0; i < 3; i++) {
      const [a, b] = [full!.metrics[i].loss, half.metrics[i].loss];
      assert(Number.isFinite(b) && Math.abs(a - b) < 1e-2 * Math.abs(a), `step ${i + 1}: f32 ${a}, f16 ${b}`);
    }
    assert(full!.metrics[0].loss !== half.metrics[0].loss, "f16 gave the f32 loss to the bit: not in effect");
  }
  for (const d of dirs) await Deno.remove(d, { recursive: true });
});

Deno.test("validateTrainConfig() refuses configs that cannot work, saying what to change", () => {
  const message = (overrides: TrainOverrides) => {
    try {
      validateTrainConfig(resolveConfig("cpu-tiny", overrides));
    } catch (e) {
      return (e as Error).message;
    }
    return "";
  };
  assert(
    message({ model: { vision: { image_size: 30 } } }).includes(
      "vision.image_size 30 is not divisible by vision.patch_size 8",
    ),
  );
  assert(
    message({ model: { vision: { heads: 5 } } }).includes(
      "vision.width 64 is not divisible by vision.heads 5",
    ),
  );
  assert(message({ data: "pictures.txt" }).includes("--data must be"));
  assert(message({ steps: 0 }).includes("--steps must be an integer >= 1"));
  assert(message({ mode: "other" as "clip" }).includes(`--mode must be "cloc" or "clip"`));
  assert(
    message({ minObjects: 3, maxObjects: 2 }).includes(
      "--max-objects must be between --min-objects (3) and 8",
    ),
  );
  assert(message({ smallSize: 0.6, largeSize: 0.5 }).includes("0 < --small-size <= --large-size <= 1"));
  assert(message({ grid: 0 }).includes("--grid must be an integer >= 1"));
  assert(message({ precision: "f64" as "f32" }).includes(`--precision must be "f32" or "f16"`));
  assert(message({}) === "", "the preset itself is valid");
  let unknown = "";
  try {
    resolveConfig("huge");
  } catch (e) {
    unknown = (e as Error).message;
  }
  assert(unknown.includes(`Unknown preset "huge"`) && unknown.includes("cpu-tiny"), unknown);
});
