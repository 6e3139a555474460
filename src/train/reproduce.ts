/**
 * The paper's comparison at a small scale: CLIP, CLOC with RoIAlign pooling and CLOC with the Prompter,
 * trained on the same data with the same steps and seed, evaluated on the same test scenes.
 *
 * @module
 */

import { join } from "node:path";
import { exists, writeFileAtomic } from "../io/files.ts";
import type { EvalReport } from "../eval/evaluate.ts";
import { evaluateRun } from "../eval/run.ts";
import { markdownTable } from "../eval/report.ts";
import { resolveConfig, type TrainConfig, type TrainOverrides } from "./config.ts";
import { train } from "./trainer.ts";
import { barChartPng } from "./plot.ts";

/** The three runs, in table order. */
export const VARIANTS: readonly { name: string; dir: string; overrides: TrainOverrides }[] = [
  { name: "CLIP (crop baseline)", dir: "clip", overrides: { mode: "clip" } },
  {
    name: "CLOC, RoIAlign",
    dir: "cloc-roialign",
    overrides: { mode: "cloc", model: { prompter: { kind: "roialign" } } },
  },
  {
    name: "CLOC, Prompter",
    dir: "cloc-prompter",
    overrides: { mode: "cloc", model: { prompter: { kind: "block" } } },
  },
];

/** What {@link reproduce} writes and returns. */
export interface ReproduceResult {
  /** One report per variant, in {@link VARIANTS} order. */
  rows: { name: string; report: EvalReport }[];
  /** The markdown table. */
  markdown: string;
}

/** A JSON file's contents, or null when it does not exist yet. */
async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Whether a run's saved config is this one (the tokenizer fills in the vocabulary size and EOT id). */
function sameSettings(saved: TrainConfig, config: TrainConfig): boolean {
  const comparable = (c: TrainConfig) => ({
    ...c,
    model: { ...c.model, text: { ...c.model.text, vocab_size: 0, eot_token_id: 0 } },
  });
  return JSON.stringify(comparable(saved)) === JSON.stringify(comparable(config));
}

/**
 * Trains and evaluates the three variants under `out/<variant>/`, then writes `out/results.md`,
 * `out/results.json` and the bar chart `out/results.png`. A variant whose run directory already holds an
 * `eval.json` from a finished run is not trained again, so an interrupted reproduction can be restarted.
 *
 * @param preset The training preset every variant starts from.
 * @param overrides Settings applied to every variant (steps, seed, data, …).
 * @param out The output directory.
 * @param log Progress messages.
 * @returns See {@link ReproduceResult}.
 *
 * @example
 * ```ts ignore
 * const { markdown } = await reproduce("cpu-tiny", { steps: 300 }, "runs/reproduce", console.log);
 * ```
 */
export async function reproduce(
  preset: string,
  overrides: TrainOverrides,
  out: string,
  log: (message: string) => void,
): Promise<ReproduceResult> {
  const rows: { name: string; report: EvalReport }[] = [];
  for (const variant of VARIANTS) {
    const dir = join(out, variant.dir);
    const config: TrainConfig = resolveConfig(preset, overrides, variant.overrides, { evalAtEnd: true });
    let report: EvalReport | null = null;
    const saved = await readJson<TrainConfig>(join(dir, "config.json"));
    if (saved !== null && !sameSettings(saved, config)) {
      throw new Error(
        `${dir} holds a run with other settings than this reproduction's: remove it, or pass another --out`,
      );
    }
    if (saved !== null) report = await readJson<EvalReport>(join(dir, "eval.json"));
    if (report) {
      log(`${variant.name}: already trained and evaluated in ${dir}`);
    } else {
      log(`${variant.name}: training ${config.steps} steps in ${dir}`);
      const resume = await exists(join(dir, "train_state.safetensors"));
      const started = performance.now();
      const result = await train(config, { out: dir, resume, onMessage: (m) => log(`  ${m}`) });
      log(`  trained in ${((performance.now() - started) / 60000).toFixed(1)} min`);
      report = (await evaluateRun(result.model, result.tokenizer, result.config, dir, (m) =>
        log(`  ${m}`))).report;
      result.model.dispose();
    }
    rows.push({ name: variant.name, report });
  }
  const markdown = markdownTable(rows);
  const enc = new TextEncoder();
  await writeFileAtomic(join(out, "results.md"), enc.encode(markdown));
  await writeFileAtomic(join(out, "results.json"), enc.encode(JSON.stringify(rows, null, 2) + "\n"));
  const metrics: [string, keyof EvalReport][] = [
    ["I->T R@1", "i2t_r1"],
    ["T->I R@1", "t2i_r1"],
    ["region mAcc", "region_macc"],
    ["R->T R@1", "r2t_r1"],
    ["T->R R@1", "t2r_r1"],
    ["ground @0.5", "grounding_acc50"],
  ];
  const groups = metrics.map(([label, key]) => ({
    label,
    values: rows.map((r) => (typeof r.report[key] === "number" ? r.report[key] as number : null)),
  }));
  await writeFileAtomic(
    join(out, "results.png"),
    barChartPng(groups, rows.map((r) => r.name), { title: "CLIP vs CLOC (RoIAlign) vs CLOC (Prompter)" }),
  );
  return { rows, markdown };
}
