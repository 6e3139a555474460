/**
 * `deno task eval --ckpt DIR_OR_FILE`: the paper's table for a trained model (image-text retrieval,
 * region recognition, region-text retrieval, grounding), printed and saved as `eval.json` + `eval.md` in
 * the run directory. See docs/eval.md.
 *
 * Options (defaults in brackets):
 *   --ckpt PATH        run directory (holding model.safetensors) or a .safetensors file [required]
 *   --data SPEC        mosaic:digits | mosaic:fashion | FILE.jsonl | instances.json [the run's data]
 *   --count N          mosaic test scenes [the run's evalCount, else 1000]
 *   --mode MODE        cloc | clip (clip: crop baseline, no grounding) [the run's mode, else cloc]
 *   --batch-size N     images a forward pass [32]
 *   --classes LIST     comma-separated class names for region recognition [the data's region labels]
 *   --json             print exactly one JSON object on stdout (everything else goes to stderr)
 *   --no-save          do not write eval.json / eval.md
 *   --help             this text
 */

import { parseArgs } from "node:util";
import { requestGpu, setGpu, tuneMatmul } from "../mod.ts";
import { evalDataSpec, evaluateRun, openRun } from "../src/eval/run.ts";

const USAGE = `Usage: deno task eval --ckpt DIR_OR_FILE [options]

Evaluates a trained CLIP/CLOC model: image-text retrieval R@1/R@5, region recognition (mAcc, accuracy),
region-text retrieval R@1/R@10, grounding Acc@0.5. Prints the table and saves eval.json and eval.md in the
run directory.

Options (defaults in brackets):
  --ckpt PATH        run directory (holding model.safetensors) or a .safetensors file [required]
  --data SPEC        mosaic:digits | mosaic:fashion | FILE.jsonl | instances.json [the run's data]
                     (mosaic data is evaluated on its test split)
  --count N          mosaic test scenes [the run's evalCount, else 1000]
  --mode MODE        cloc | clip; clip uses the crop baseline for regions, no grounding [the run's mode, else cloc]
  --batch-size N     images a forward pass [32]
  --classes LIST     comma-separated class names for region recognition [the data's region labels]
  --json             print exactly one JSON object on stdout; logs go to stderr
  --no-save          do not write eval.json / eval.md
  --help             this text`;

function fail(message: string): never {
  console.error(`error: ${message}`);
  Deno.exit(2);
}

function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!(Number.isInteger(n) && n >= 1)) fail(`--${name} must be an integer >= 1, got "${value}"`);
  return n;
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: {
        ckpt: { type: "string" },
        data: { type: "string" },
        count: { type: "string" },
        mode: { type: "string" },
        "batch-size": { type: "string" },
        classes: { type: "string" },
        json: { type: "boolean", default: false },
        "no-save": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    });
  } catch (e) {
    fail(`${(e as Error).message} (see --help)`);
  }
  const flags = parsed.values;
  if (flags.help) {
    console.log(USAGE);
    return 0;
  }
  if (!flags.ckpt) fail(`--ckpt is required\n\n${USAGE}`);
  if (flags.mode !== undefined && flags.mode !== "cloc" && flags.mode !== "clip") {
    fail(`--mode must be "cloc" or "clip", got "${flags.mode}"`);
  }
  const count = positiveInt("count", flags.count);
  const batchSize = positiveInt("batch-size", flags["batch-size"]);
  const classes = flags.classes?.split(",").map((c) => c.trim()).filter((c) => c !== "");
  // With --json, stdout carries only the report.
  const log = flags.json ? (m: string) => console.error(m) : (m: string) => console.log(m);

  // Refuse a bad --data before any GPU work.
  if (flags.data !== undefined) {
    let spec;
    try {
      spec = evalDataSpec(flags.data);
    } catch (e) {
      fail((e as Error).message);
    }
    if (spec.kind !== "mosaic") {
      try {
        await Deno.stat(spec.path);
      } catch {
        fail(`Evaluation data not found: "${spec.path}" does not exist`);
      }
    }
  }

  const gpu = await requestGpu();
  setGpu(gpu);
  await tuneMatmul(gpu); // tile sizes for this adapter (about a second)
  try {
    const run = await openRun(flags.ckpt);
    log(`checkpoint: ${run.file}`);
    try {
      const { report, markdown } = await evaluateRun(run.model, run.tokenizer, run.info, run.dir, {
        data: flags.data,
        count,
        mode: flags.mode as "cloc" | "clip" | undefined,
        batchSize,
        classNames: classes,
        save: !flags["no-save"],
        log,
      });
      if (flags.json) console.log(JSON.stringify(report));
      else console.log(`\n${markdown}`);
      if (!flags["no-save"]) log(`saved ${run.dir}/eval.json and ${run.dir}/eval.md`);
    } finally {
      run.model.dispose();
    }
    return 0;
  } finally {
    gpu.destroy();
  }
}

try {
  Deno.exit(await main());
} catch (e) {
  console.error(`error: ${(e as Error).message}`);
  Deno.exit(1);
}
