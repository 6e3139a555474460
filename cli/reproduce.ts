/**
 * `deno task reproduce`: trains CLIP, CLOC with RoIAlign and CLOC with the Prompter on the same data, steps
 * and seed, evaluates the three on the same test scenes, and writes the table and a bar chart.
 *
 * Options:
 *   --preset NAME   the budget every variant starts from (default cpu-tiny: under 30 minutes on 2 CPU cores)
 *   --steps N       optimizer steps of each variant (default: the preset's)
 *   --seed S        seed of every variant (default 0)
 *   --data SPEC     mosaic:digits (default), mosaic:fashion, a region-text .jsonl or a COCO .json
 *   --out DIR       output directory (default runs/reproduce); an interrupted reproduction resumes
 *   --help          this text
 */

import { parseArgs } from "node:util";
import { requestGpu, setGpu, tuneMatmul } from "../mod.ts";
import { reproduce } from "../src/train/reproduce.ts";

const { values: o } = parseArgs({
  args: Deno.args,
  options: {
    preset: { type: "string", default: "cpu-tiny" },
    steps: { type: "string" },
    seed: { type: "string", default: "0" },
    data: { type: "string" },
    out: { type: "string", default: "runs/reproduce" },
    help: { type: "boolean", default: false },
  },
});
if (o.help) {
  console.log(
    "Usage: deno task reproduce [--preset cpu-tiny] [--steps N] [--seed 0] [--data mosaic:digits] [--out runs/reproduce]",
  );
  Deno.exit(0);
}
const steps = o.steps === undefined ? undefined : Number(o.steps);
if (steps !== undefined && !(Number.isInteger(steps) && steps > 0)) {
  console.error(`--steps must be a positive integer, got "${o.steps}"`);
  Deno.exit(2);
}
const gpu = await requestGpu();
setGpu(gpu);
await tuneMatmul(gpu); // tile sizes for this adapter (about a second)
console.log(
  `adapter: ${gpu.info.description || gpu.info.vendor}${gpu.isFallbackAdapter ? " (software)" : ""}`,
);
const started = performance.now();
const { markdown } = await reproduce(
  o.preset,
  { steps, seed: Number(o.seed), data: o.data },
  o.out,
  (m) => console.log(m),
);
console.log(`\n${markdown}`);
console.log(
  `${
    ((performance.now() - started) / 60000).toFixed(1)
  } min; table in ${o.out}/results.md, chart in ${o.out}/results.png`,
);
gpu.destroy();
