/**
 * Matmul benchmark: clocgpu's `matmul()` with the adapter's tuned tiles (`tuneMatmul`, run first), the
 * same with the shared-memory kernel that was the default before the register-tiled one (the "before"),
 * and `tf.matMul` of tfjs-backend-webgpu on the same adapter in the same process (the baseline), on square
 * products of 256 to 2048 and on a CLOC training step's shapes:
 *
 *   XDG_RUNTIME_DIR=/tmp deno bench -A bench/matmul_bench.ts          # table, then Deno.bench
 *   XDG_RUNTIME_DIR=/tmp deno run -A bench/matmul_bench.ts [--quick]  # table only (--quick: to 1024)
 *
 * Every variant is checked against an f64 reference on sampled entries before it is timed. Timings are
 * interleaved (each round times every variant once, so a burst of load from another process hits them
 * alike) and the median round counts; a timed round records enough products for ~1 GFLOP and waits once
 * (`gpu.sync()`, or a one-element readback for tfjs), which costs >= 10 ms in Deno. "cpu" is GFLOP per
 * second of this process's CPU time (user + system, all threads): on a software rasteriser such as llvmpipe
 * it does not drop when other processes take the cores.
 *
 * @module
 */

import process from "node:process";
import { requestGpu } from "../src/gpu/device.ts";
import { formatTiles, matmul, type MatmulTiles, tuneMatmul } from "../src/ops/matmul.ts";
import { keep, setGpu, tensor, tidy } from "../src/tensor/tensor.ts";
import { Rng } from "../src/tensor/random.ts";
import { initTfjsWebgpu, tf, tfjsSync } from "./_tfjs_cloc.ts";

const QUICK = Deno.args.includes("--quick");
const ROUNDS = 5;

/** One product: `batch x [M x K] @ [K x N]`, with transposes as stored. */
interface Shape {
  name: string;
  batch: number;
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
}

function shape(m: number, k: number, n: number, flags = "", batch = 1): Shape {
  const transA = flags.includes("A"), transB = flags.includes("B");
  const name = `${batch > 1 ? `${batch} x ` : ""}${m}x${k}x${n}${transA ? " A^T" : ""}${
    transB ? " B^T" : ""
  }`;
  return { name, batch, m, k, n, transA, transB };
}

const SQUARE = (QUICK ? [256, 512, 1024] : [256, 512, 1024, 2048]).map((n) => shape(n, n, n));
// The benchmark model's step (cli/bench.ts): ~2560 text tokens of width 64 through linear layers of 64 <->
// 256 (x @ W^T forward, dX = dY @ W, dW = dY^T @ X), and the attention products of the fused kernel's
// fallback, batched small matrices.
const STEP = [
  shape(2560, 64, 256, "B"),
  shape(2560, 256, 64, "B"),
  shape(2560, 256, 64),
  shape(2560, 64, 256),
  shape(256, 2560, 64, "A"),
  shape(64, 2560, 256, "A"),
  shape(17, 16, 17, "B", 128),
  shape(17, 17, 16, "", 128),
];

const gpu = await requestGpu();
setGpu(gpu);
const tfAdapter = await initTfjsWebgpu();
const t0 = performance.now();
const tuning = await tuneMatmul(gpu);
const tuneMs = performance.now() - t0;
// What matmul() ran by default before the register-tiled kernel: 64 x 64 shared-memory tiles when the
// output fills at least 4 of them, else 32 x 32.
function beforeTiles(s: Shape): MatmulTiles {
  const large = s.m > 32 && s.n > 32 && Math.ceil(s.m / 64) * Math.ceil(s.n / 64) * s.batch >= 4;
  return large
    ? { kernel: "tiled", wgX: 16, wgY: 8, tileK: 16, tm: 8 }
    : { kernel: "tiled", wgX: 8, wgY: 8, tileK: 16, tm: 4 };
}

const rng = new Rng(7);
const randoms = (n: number) => Float32Array.from({ length: n }, () => rng.uniform() * 2 - 1);

/** Operands of a shape on both sides, with host copies for the reference. */
function operands(s: Shape) {
  const aShape = [s.batch, ...(s.transA ? [s.k, s.m] : [s.m, s.k])];
  const bShape = [s.batch, ...(s.transB ? [s.n, s.k] : [s.k, s.n])];
  const ha = randoms(s.batch * s.m * s.k), hb = randoms(s.batch * s.k * s.n);
  return {
    ha,
    hb,
    a: keep(tensor(ha, aShape)),
    b: keep(tensor(hb, bShape)),
    ta: tf.tensor3d(ha, aShape as [number, number, number]),
    tb: tf.tensor3d(hb, bShape as [number, number, number]),
  };
}
type Operands = ReturnType<typeof operands>;

/** C[z, i, j] in f64. */
function reference(s: Shape, o: Operands, z: number, i: number, j: number): number {
  let sum = 0;
  const ab = z * s.m * s.k, bb = z * s.k * s.n;
  for (let p = 0; p < s.k; p++) {
    const av = s.transA ? o.ha[ab + p * s.m + i] : o.ha[ab + i * s.k + p];
    const bv = s.transB ? o.hb[bb + j * s.k + p] : o.hb[bb + p * s.n + j];
    sum += av * bv;
  }
  return sum;
}

/** A way to compute a product: record one run, wait for the queue, read the result (for the check). */
interface Variant {
  label: string;
  run: (s: Shape, o: Operands) => void;
  sync: () => Promise<void>;
  result: (s: Shape, o: Operands) => Promise<ArrayLike<number>>;
}

function ours(label: string, tiles?: (s: Shape) => MatmulTiles): Variant {
  const product = (s: Shape, o: Operands) =>
    matmul(o.a, o.b, { transposeA: s.transA, transposeB: s.transB, tiles: tiles?.(s) });
  return {
    label,
    run: (s, o) => tidy(() => void product(s, o)),
    sync: () => gpu.sync(),
    result: async (s, o) => {
      const c = tidy(() => product(s, o));
      const out = await c.toArray();
      c.dispose();
      return out;
    },
  };
}

let lastTf: tf.Tensor | null = null;
const tfjs: Variant = {
  label: "tfjs tf.matMul",
  run: (s, o) => {
    lastTf?.dispose();
    lastTf = tf.matMul(o.ta, o.tb, s.transA, s.transB);
  },
  sync: async () => {
    if (lastTf) await tfjsSync(lastTf);
  },
  result: async (s, o) => {
    const c = tf.matMul(o.ta, o.tb, s.transA, s.transB);
    const out = await c.data();
    c.dispose();
    return out;
  },
};

const VARIANTS = [
  ours(`clocgpu (${formatTiles(tuning.tiles)})`),
  ours("clocgpu before (tiled)", beforeTiles),
  tfjs,
];

/** Throws unless a variant matches f64 on 200 sampled entries (relative to the result's scale). */
async function check(v: Variant, s: Shape, o: Operands): Promise<void> {
  const got = await v.result(s, o);
  let worst = 0;
  for (let t = 0; t < 200; t++) {
    const z = rng.int(s.batch), i = rng.int(s.m), j = rng.int(s.n);
    const want = reference(s, o, z, i, j);
    worst = Math.max(worst, Math.abs(got[(z * s.m + i) * s.n + j] - want) / Math.max(1, Math.abs(want)));
  }
  if (!(worst < 1e-4)) throw new Error(`${v.label} on ${s.name}: relative error ${worst} against f64`);
}

/** Products per timed round: about 1 GFLOP, at most 200 (small products are dispatch-bound). */
function repsFor(s: Shape): number {
  return Math.max(1, Math.min(200, Math.round(1e9 / (2 * s.batch * s.m * s.k * s.n))));
}

interface Row {
  shape: string;
  gflops: number[];
  cpuGflops: number[];
}

async function measure(s: Shape): Promise<Row> {
  const o = operands(s);
  for (const v of VARIANTS) await check(v, s, o); // also compiles the pipelines
  const reps = repsFor(s);
  const wall: number[][] = VARIANTS.map(() => []), cpu: number[][] = VARIANTS.map(() => []);
  const rounds = s.m * s.n * s.k >= 2048 ** 3 ? 2 : ROUNDS;
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < VARIANTS.length; i++) {
      const start = performance.now();
      const cpu0 = process.cpuUsage();
      for (let j = 0; j < reps; j++) VARIANTS[i].run(s, o);
      await VARIANTS[i].sync();
      const used = process.cpuUsage(cpu0);
      wall[i].push((performance.now() - start) / 1e3 / reps);
      cpu[i].push((used.user + used.system) / 1e6 / reps);
    }
  }
  lastTf?.dispose();
  lastTf = null;
  o.a.dispose(), o.b.dispose(), o.ta.dispose(), o.tb.dispose();
  const flops = 2 * s.batch * s.m * s.k * s.n;
  const median = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)];
  return {
    shape: s.name,
    gflops: wall.map((w) => flops / median(w) / 1e9),
    cpuGflops: cpu.map((c) => flops / median(c) / 1e9),
  };
}

const rows: Row[] = [];
for (const s of [...SQUARE, ...STEP]) rows.push(await measure(s));

const f = (x: number) => x.toFixed(2).padStart(7);
console.log(
  `\nmatmul f32 on "${gpu.info.description}" (vendor ${gpu.info.vendor}, ${
    gpu.isFallbackAdapter ? "fallback/software" : "hardware"
  } adapter; tfjs got vendor ${tfAdapter.vendor}), Deno ${Deno.version.deno}\n` +
    `tuneMatmul (${tuneMs.toFixed(0)} ms) picked ${
      formatTiles(tuning.tiles)
    }, splitBelow ${tuning.splitBelow}\n` +
    `GFLOP/s, median of ${ROUNDS} interleaved rounds (wall; cpu = per second of this process's CPU time)\n` +
    `${"shape".padEnd(22)} ${"clocgpu".padStart(7)} ${"before".padStart(7)} ${"tfjs".padStart(7)}  ` +
    `${"x tfjs".padStart(6)} ${"x before".padStart(8)}   cpu: ${"clocgpu".padStart(7)} ${
      "before".padStart(7)
    } ` +
    `${"tfjs".padStart(7)}\n` +
    rows.map((r) =>
      `${r.shape.padEnd(22)} ${f(r.gflops[0])} ${f(r.gflops[1])} ${f(r.gflops[2])}  ${
        (r.gflops[0] / r.gflops[2]).toFixed(2).padStart(6)
      } ${(r.gflops[0] / r.gflops[1]).toFixed(2).padStart(8)}        ${f(r.cpuGflops[0])} ${
        f(r.cpuGflops[1])
      } ${f(r.cpuGflops[2])}`
    ).join("\n") + "\n",
);

// The same work under `deno bench`: tfjs is each group's baseline.
for (const s of [...SQUARE, ...STEP]) {
  if (s.m * s.n * s.k > 1024 ** 3) continue;
  const o = operands(s);
  for (const v of VARIANTS) {
    Deno.bench({
      name: `${v.label} ${s.name} (x${repsFor(s)} per iteration)`,
      group: `matmul ${s.name}`,
      baseline: v === tfjs,
      n: 3,
      warmup: 1,
      fn: async () => {
        for (let j = 0; j < repsFor(s); j++) v.run(s, o);
        await v.sync();
      },
    });
  }
}
