/**
 * Matmul benchmark: clocgpu's tiled kernel (`matmul()`, shaders/matmul.wgsl) against a naive baseline of
 * one thread per output element, on square f32 matrices of 256, 512 and 1024.
 *
 *   XDG_RUNTIME_DIR=/tmp deno bench -A bench/matmul_bench.ts
 *
 * Before anything is timed, every kernel is checked against an f64 CPU reference (all of 256^2, sampled
 * entries of the larger ones). Then one table of GFLOP/s is printed with the adapter's description, and
 * the same work is registered with `Deno.bench`. Each timed iteration records the dispatches and waits for
 * them with `gpu.sync()` (>= 10 ms in Deno), so the small sizes run several products per iteration to keep
 * that wait small next to the work.
 */

import { params, requestGpu } from "../src/gpu/device.ts";
import { linear, matmul } from "../src/ops/matmul.ts";
import { empty, setGpu, type Tensor, tensor, tidy } from "../src/tensor/tensor.ts";
import { Rng } from "../src/tensor/random.ts";

const SIZES = [256, 512, 1024];

// The baseline: each thread computes one C[m, n] straight from global memory, no tiles, no registers.
const NAIVE_WGSL = `
struct Params { m: u32, n: u32, k: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(16, 16)
fn naive_matmul(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.y;
  let col = gid.x;
  if (row >= p.m || col >= p.n) { return; }
  var s = 0.0;
  for (var i = 0u; i < p.k; i++) { s += a[row * p.k + i] * b[i * p.n + col]; }
  c[row * p.n + col] = s;
}`;

const gpu = await requestGpu();
setGpu(gpu);

function naiveMatmul(a: Tensor, b: Tensor): Tensor {
  const [m, k] = a.shape;
  const n = b.shape[1];
  const out = empty([m, n]);
  gpu.dispatch({
    kernel: { file: "matmul_bench.ts (naive)", code: NAIVE_WGSL, entry: "naive_matmul" },
    inputs: [a.buffer, b.buffer],
    outputs: [out.buffer],
    params: params([m, n, k]),
    workgroups: [Math.ceil(n / 16), Math.ceil(m / 16)],
  });
  return out;
}

interface Variant {
  label: string;
  run: (a: Tensor, b: Tensor) => Tensor;
}

const variants: Variant[] = [
  { label: "matmul() tiled (clocgpu)", run: (a, b) => matmul(a, b) },
  {
    label: "linear() x @ W^T (transposeB)",
    run: (a, b) => linear(a, b),
  },
  { label: "naive, 1 thread/output (BASELINE)", run: naiveMatmul },
];

const rng = new Rng(7);
function random(n: number): Float32Array {
  return Float32Array.from({ length: n * n }, () => rng.uniform() * 2 - 1);
}

const inputs = new Map<number, { a: Tensor; b: Tensor; ha: Float32Array; hb: Float32Array }>();
for (const n of SIZES) {
  const ha = random(n), hb = random(n);
  inputs.set(n, { a: tensor(ha, [n, n]), b: tensor(hb, [n, n]), ha, hb });
}

/** C[i, j] in f64; `transB` reads b as [N, K]. */
function reference(
  ha: Float32Array,
  hb: Float32Array,
  n: number,
  i: number,
  j: number,
  transB: boolean,
): number {
  let s = 0;
  for (let p = 0; p < n; p++) s += ha[i * n + p] * (transB ? hb[j * n + p] : hb[p * n + j]);
  return s;
}

/** Throws unless a variant's output matches the reference (every entry at 256, 200 sampled entries above). */
async function check(v: Variant, n: number): Promise<void> {
  const { a, b, ha, hb } = inputs.get(n)!;
  const out = tidy(() => v.run(a, b));
  const got = await out.toArray();
  out.dispose();
  const transB = v.label.startsWith("linear");
  const count = n <= 256 ? n * n : 200;
  let worst = 0;
  for (let s = 0; s < count; s++) {
    const idx = n <= 256 ? s : rng.int(n * n);
    const want = reference(ha, hb, n, Math.floor(idx / n), idx % n, transB);
    worst = Math.max(worst, Math.abs(got[idx] - want) / Math.max(1, Math.abs(want)));
  }
  if (!(worst < 1e-4)) {
    throw new Error(`${v.label} at ${n}: relative error ${worst} against the f64 reference`);
  }
}

/** Products per timed iteration: about 1 GFLOP of work, so the >= 10 ms sync stays small next to it. */
function repsFor(n: number): number {
  return Math.max(1, Math.round(2 ** 30 / (2 * n ** 3)));
}

async function iteration(v: Variant, n: number): Promise<void> {
  const { a, b } = inputs.get(n)!;
  tidy(() => {
    for (let r = 0; r < repsFor(n); r++) v.run(a, b);
  });
  await gpu.sync();
}

// Check, then measure each variant once (best of 3 iterations) for the GFLOP/s table.
const rows: string[] = [];
for (const n of SIZES) {
  for (const v of variants) {
    await check(v, n);
    await iteration(v, n); // warm-up: pipeline compile
    let best = Infinity;
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      await iteration(v, n);
      best = Math.min(best, (performance.now() - t0) / 1000);
    }
    const seconds = best / repsFor(n);
    const gflops = 2 * n ** 3 / seconds / 1e9;
    rows.push(
      `${String(n).padStart(5)}  ${v.label.padEnd(36)} ${(seconds * 1e3).toFixed(2).padStart(9)} ms  ${
        gflops.toFixed(2).padStart(7)
      } GFLOP/s`,
    );
  }
}
console.log(
  `\nmatmul, f32, square, on "${gpu.info.description}" (vendor ${gpu.info.vendor}, ` +
    `${
      gpu.isFallbackAdapter ? "fallback/software" : "hardware"
    } adapter); every kernel checked against f64 first\n` +
    `    n  kernel                                per matmul     rate\n` + rows.join("\n") + "\n",
);

for (const n of SIZES) {
  for (const v of variants) {
    Deno.bench({
      name: `${v.label} ${n}x${n} (x${repsFor(n)} per iteration)`,
      group: `matmul ${n}`,
      baseline: v.label.startsWith("naive"),
      n: n >= 1024 ? 3 : 5,
      warmup: 1,
      fn: () => iteration(v, n),
    });
  }
}
