/**
 * Evaluation reports as markdown: one table row per model, the paper's columns, percentages with one
 * decimal, and a dash where a metric does not apply.
 *
 * @module
 */

import type { EvalReport } from "./evaluate.ts";

/** The table's columns: header and report key, in the paper's order. */
export const REPORT_COLUMNS: readonly (readonly [string, keyof EvalReport])[] = [
  ["I→T R@1", "i2t_r1"],
  ["I→T R@5", "i2t_r5"],
  ["T→I R@1", "t2i_r1"],
  ["T→I R@5", "t2i_r5"],
  ["region mAcc", "region_macc"],
  ["region acc", "region_acc"],
  ["R→T R@1", "r2t_r1"],
  ["R→T R@10", "r2t_r10"],
  ["T→R R@1", "t2r_r1"],
  ["T→R R@10", "t2r_r10"],
  ["ground Acc@0.5", "grounding_acc50"],
];

/** A fraction as a percentage with one decimal, or "–" for null. */
function percent(v: unknown): string {
  return typeof v === "number" && Number.isFinite(v) ? (100 * v).toFixed(1) : "–";
}

/**
 * A markdown table of several reports, one row each (for comparing CLIP, RoIAlign and the Prompter).
 *
 * @param rows Each row's name and report.
 * @returns The table (header, rule, rows), ending with a newline.
 *
 * @example
 * ```ts
 * import type { EvalReport } from "./evaluate.ts";
 * import { markdownTable } from "./report.ts";
 * const r = { i2t_r1: 0.5, region_macc: null } as unknown as EvalReport;
 * const table = markdownTable([{ name: "CLIP", report: r }]);
 * if (!table.includes("| CLIP | 50.0 |") || !table.includes("–")) throw new Error(table);
 * ```
 */
export function markdownTable(rows: readonly { name: string; report: EvalReport }[]): string {
  const head = `| model | ${REPORT_COLUMNS.map(([h]) => h).join(" | ")} |`;
  const rule = `|---|${REPORT_COLUMNS.map(() => "---:").join("|")}|`;
  const body = rows.map(({ name, report }) =>
    `| ${name} | ${REPORT_COLUMNS.map(([, key]) => percent(report[key])).join(" | ")} |`
  );
  return [head, rule, ...body].join("\n") + "\n";
}

/**
 * One report as markdown: the table and a line saying what was evaluated, how and where.
 *
 * @param report The report.
 * @param name The row's name (e.g. the run directory).
 * @returns Markdown text.
 *
 * @example
 * ```ts
 * import type { EvalReport } from "./evaluate.ts";
 * import { formatReport } from "./report.ts";
 * const r = { i2t_r1: 1, n_images: 10, n_regions: 20, mode: "clip", region_method: "crop" } as unknown as EvalReport;
 * if (!formatReport(r, "run").includes("10 images, 20 regions")) throw new Error();
 * ```
 */
export function formatReport(report: EvalReport, name = "model"): string {
  const method = {
    prompter: "the Prompter",
    roialign: "RoIAlign pooling",
    crop: "the crop baseline (box cropped, resized, image tower)",
  }[report.region_method ?? "prompter"];
  const regions = report.region_method === null ? "no regions" : `region embeddings from ${method}`;
  const unmatched = report.region_unmatched > 0
    ? `, ${report.region_unmatched} regions outside the class list left out of recognition`
    : "";
  return markdownTable([{ name, report }]) + "\n" +
    `${report.n_images} images, ${report.n_regions} regions, ${report.n_classes} classes${unmatched}; ` +
    `mode ${report.mode}, ${regions}; percentages. Adapter: ${report.adapter}` +
    (typeof report.seconds === "number" ? `; ${report.seconds.toFixed(1)} s.` : ".") + "\n";
}
