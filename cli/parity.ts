/**
 * `deno task parity FILE...`: checks this build and this GPU against PyTorch reference bundles.
 *
 * Options:
 *   --tolerance X   largest relative error that passes (default 1e-3, the spec's; with --precision f16,
 *                   1e-2 for outputs and gradients and 1e-1 for the step: see F16_TOLERANCE)
 *   --precision P   f32 (default) or f16: the linear layers' matmul operands stored as f16
 *   --all           print every tensor, not only the worst of each kind and the failures
 *   --help          this text
 *
 * Exit code 0 only if every tensor of every bundle is within the tolerance.
 */

import { parseArgs } from "node:util";
import { requestGpu, setGpu } from "../mod.ts";
import { F16_TOLERANCE, type ParityTolerance, runParity } from "../src/train/parity.ts";

const { values: options, positionals: files } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    tolerance: { type: "string" },
    precision: { type: "string", default: "f32" },
    all: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});

if (options.help || files.length === 0) {
  console.log("Usage: deno task parity [--precision f32|f16] [--tolerance X] [--all] BUNDLE.safetensors...");
  Deno.exit(options.help ? 0 : 2);
}

const precision = options.precision;
if (precision !== "f32" && precision !== "f16") {
  console.error(`--precision must be f32 or f16, got "${precision}"`);
  Deno.exit(2);
}
const given = Number(options.tolerance ?? "1e-3");
if (!(given > 0)) {
  console.error(`--tolerance must be a positive number, got "${options.tolerance}"`);
  Deno.exit(2);
}
const tolerance: ParityTolerance = precision === "f16" && options.tolerance === undefined
  ? F16_TOLERANCE
  : given;
const described = typeof tolerance === "number"
  ? `${tolerance}`
  : `${tolerance.expect} (expect.*), ${tolerance.grad} (grad.*), ${tolerance.step} (step.*)`;
console.log(`precision ${precision}, tolerance ${described}`);

const gpu = await requestGpu();
setGpu(gpu);
console.log(`adapter: ${gpu.info.description || gpu.info.vendor} (fallback: ${gpu.isFallbackAdapter})`);
let allOk = true;
for (const file of files) {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (e) {
    console.error(`${file}: cannot read: ${(e as Error).message}`);
    allOk = false;
    continue;
  }
  const started = performance.now();
  const report = await runParity(bytes, file, tolerance, precision);
  console.log(
    `\n${file}: ${report.rows.length} tensors, ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  console.log(`${"tensor".padEnd(56)} ${"rel. error".padStart(10)}  result`);
  const worst = new Map<string, (typeof report.rows)[number]>();
  for (const row of report.rows) {
    const kind = row.name.split(".")[0];
    if (!worst.has(kind) || worst.get(kind)!.relError < row.relError) worst.set(kind, row);
  }
  for (const row of report.rows) {
    const kind = row.name.split(".")[0];
    if (options.all || !row.ok || kind === "expect" || worst.get(kind) === row) {
      const mark = row.ok ? "ok" : "FAIL";
      const note = !options.all && kind !== "expect" && worst.get(kind) === row ? `  (worst ${kind}.*)` : "";
      console.log(`${row.name.padEnd(56)} ${row.relError.toExponential(2).padStart(10)}  ${mark}${note}`);
    }
  }
  const failed = report.rows.filter((r) => !r.ok).length;
  console.log(
    failed === 0 ? `PASS: every tensor within ${described}` : `FAIL: ${failed} tensor(s) over ${described}`,
  );
  allOk &&= report.ok;
}
gpu.destroy();
Deno.exit(allOk ? 0 : 1);
