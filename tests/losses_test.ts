import { backward, mul, sum, tensor, tidy } from "../mod.ts";
import { crossEntropy, l2Normalize, mseLoss } from "../src/ops/losses.ts";
import { assertClose, checkOp, gpu, type Host } from "./_harness.ts";
import { setRowThreadLimit } from "../src/ops/_op.ts";

/** The error message `fn` throws, or "" when it does not throw. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  return "";
}

// ---------------------------------------------------------------------------------------------------------
// l2Normalize

/** Host x / max(||x||, eps) along `axis` in f64. */
function l2NormalizeHost(x: Host, axis: number, eps = 1e-12): Host {
  const shape = x.shape;
  const a = axis < 0 ? axis + shape.length : axis;
  const inner = shape.slice(a + 1).reduce((p, q) => p * q, 1);
  const len = shape[a];
  const outer = x.data.length / Math.max(1, len * inner);
  const out = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let s = 0;
      for (let k = 0; k < len; k++) s += x.data[(o * len + k) * inner + i] ** 2;
      const norm = Math.max(Math.sqrt(s), eps);
      for (let k = 0; k < len; k++) out[(o * len + k) * inner + i] = x.data[(o * len + k) * inner + i] / norm;
    }
  }
  return { data: out, shape: [...shape] };
}

Deno.test("l2Normalize() along the last axis and along axis 0 matches the f64 reference and its gradient", async () => {
  const cases: [number[], number][] = [[[4, 7], -1], [[3, 65], 1], [[5, 3], 0], [[2, 3, 4], 1], [[6], 0]];
  for (const [shape, axis] of cases) {
    await checkOp({
      name: `l2Normalize ${JSON.stringify(shape)} axis ${axis}`,
      inputs: [{ shape }],
      gpu: (x) => l2Normalize(x, axis),
      cpu: (x) => l2NormalizeHost(x, axis),
      eps: 1e-4,
    });
  }
});

Deno.test("l2Normalize() maps a zero row to 0 with a finite gradient dy / eps, as PyTorch", async () => {
  await gpu();
  const rows = tensor([0, 0, 0, 1, -2, 2], [2, 3], { requiresGrad: true });
  const dy = [0.5, -1, 2, 1, 1, 1];
  const y = tidy(() => {
    const out = l2Normalize(rows);
    backward(sum(mul(out, tensor(dy, [2, 3]))));
    return out;
  });
  assertClose("zero row forward", await y.toArray(), [0, 0, 0, 1 / 3, -2 / 3, 2 / 3], 1e-6);
  const g = await rows.grad!.toArray();
  if (!g.every(Number.isFinite)) throw new Error(`the gradient has non-finite values: ${g}`);
  // Zero row: dx = dy / eps. Unit row u = x / 3: dx = (dy - u (u . dy)) / 3.
  const u = [1 / 3, -2 / 3, 2 / 3];
  const dot = u[0] * dy[3] + u[1] * dy[4] + u[2] * dy[5];
  const want = [0.5e12, -1e12, 2e12, ...u.map((v, i) => (dy[3 + i] - v * dot) / 3)];
  assertClose("zero row grad (scaled)", g.slice(0, 3), want.slice(0, 3), 1e-5);
  assertClose("unit row grad", g.slice(3), want.slice(3), 1e-5);
  for (const t of [rows, y, rows.grad!]) t.dispose();
});

// ---------------------------------------------------------------------------------------------------------
// mseLoss

Deno.test("mseLoss() matches the f64 reference, with gradients for pred and target", async () => {
  for (const shape of [[7], [3, 5], [2, 3, 4]]) {
    await checkOp({
      name: `mseLoss ${JSON.stringify(shape)}`,
      inputs: [{ shape }, { shape }],
      gpu: (p, t) => mseLoss(p, t),
      cpu: (p, t) => {
        let s = 0;
        for (let i = 0; i < p.data.length; i++) s += (p.data[i] - t.data[i]) ** 2;
        return { data: Float64Array.of(s / p.data.length), shape: [] };
      },
      eps: 1e-4,
    });
  }
});

Deno.test("mseLoss() refuses shapes that differ, naming both", async () => {
  await gpu();
  const a = tensor(new Float32Array(6), [2, 3]);
  const b = tensor(new Float32Array(3), [3]);
  const message = errorOf(() => mseLoss(a, b));
  a.dispose();
  b.dispose();
  if (!message.includes("mseLoss") || !message.includes("[2, 3]") || !message.includes("[3]")) {
    throw new Error(`unclear error: ${message}`);
  }
});

// ---------------------------------------------------------------------------------------------------------
// crossEntropy

/** Host per-row -log_softmax(x)[r, t[r]] in f64, then reduced. */
function crossEntropyHost(x: Host, t: Host, reduction: "mean" | "sum" | "none" = "mean"): Host {
  const [n, c] = x.shape;
  const rows = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let m = -Infinity;
    for (let i = 0; i < c; i++) m = Math.max(m, x.data[r * c + i]);
    let s = 0;
    for (let i = 0; i < c; i++) s += Math.exp(x.data[r * c + i] - m);
    rows[r] = m + Math.log(s) - x.data[r * c + t.data[r]];
  }
  if (reduction === "none") return { data: rows, shape: [n] };
  const total = rows.reduce((a, b) => a + b, 0);
  return { data: Float64Array.of(reduction === "sum" ? total : total / n), shape: [] };
}

Deno.test("crossEntropy() matches the f64 reference for odd sizes, C = 1 and long rows, with its gradient", async () => {
  const cases: [number, number][] = [[5, 7], [1, 1], [4, 1], [3, 65], [2, 300], [2, 1030], [300, 3]];
  for (const [n, c] of cases) {
    await checkOp({
      name: `crossEntropy [${n}, ${c}]`,
      inputs: [{ shape: [n, c], range: [-3, 3] }, { shape: [n], int: true, range: [0, c] }],
      gpu: (x, t) => crossEntropy(x, t),
      cpu: (x, t) => crossEntropyHost(x, t),
      eps: 1e-4,
    });
  }
});

Deno.test("crossEntropy() with a GPU's launch (a row's threads reduce in shared memory) matches the reference", async () => {
  setRowThreadLimit(256); // a CPU rasteriser gets one thread a row: run the other path too
  try {
    for (const [n, c] of [[5, 7], [3, 65], [2, 1030]]) {
      await checkOp({
        name: `crossEntropy [${n}, ${c}], many threads a row`,
        inputs: [{ shape: [n, c], range: [-3, 3] }, { shape: [n], int: true, range: [0, c] }],
        gpu: (x, t) => crossEntropy(x, t),
        cpu: (x, t) => crossEntropyHost(x, t),
        eps: 1e-4,
      });
    }
  } finally {
    setRowThreadLimit(null);
  }
});

Deno.test("crossEntropy() stays accurate for logits of magnitude 50", async () => {
  await checkOp({
    name: "crossEntropy large",
    inputs: [{ shape: [6, 9], range: [-50, 50] }, { shape: [6], int: true, range: [0, 9] }],
    gpu: (x, t) => crossEntropy(x, t),
    cpu: (x, t) => crossEntropyHost(x, t),
    eps: 1e-4,
  });
});

Deno.test("crossEntropy() with masked (-inf) logits off the target has a finite loss and gradient", async () => {
  const inf = -Infinity;
  await checkOp({
    name: "crossEntropy masked",
    inputs: [
      { shape: [3, 4], data: [1, inf, 2, inf, inf, inf, 0.5, inf, -1, 2, inf, 3] },
      { shape: [3], int: true, data: [2, 2, 3] },
    ],
    gpu: (x, t) => crossEntropy(x, t, { reduction: "none" }),
    cpu: (x, t) => crossEntropyHost(x, t, "none"),
    eps: 1e-4,
  });
});

Deno.test("crossEntropy() with reduction sum and none matches the reference", async () => {
  for (const reduction of ["sum", "none"] as const) {
    await checkOp({
      name: `crossEntropy ${reduction}`,
      inputs: [{ shape: [5, 4] }, { shape: [5], int: true, range: [0, 4] }],
      gpu: (x, t) => crossEntropy(x, t, { reduction }),
      cpu: (x, t) => crossEntropyHost(x, t, reduction),
      eps: 1e-4,
    });
  }
});

Deno.test("crossEntropy() gives NaN for a target out of range, on its row only", async () => {
  await gpu();
  const x = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [3, 3]);
  const t = tensor(new Int32Array([0, 3, -1]), [3]);
  const rows = crossEntropy(x, t, { reduction: "none" });
  const got = await rows.toArray();
  const want = crossEntropyHost({ data: Float64Array.from([1, 2, 3]), shape: [1, 3] }, {
    data: Float64Array.of(0),
    shape: [1],
  }, "none").data[0];
  if (Math.abs(got[0] - want) > 1e-5 || !Number.isNaN(got[1]) || !Number.isNaN(got[2])) {
    throw new Error(`expected [${want}, NaN, NaN], got ${got}`);
  }
  for (const v of [x, t, rows]) v.dispose();
});

Deno.test("crossEntropy() refuses wrong dtypes and shapes with clear errors", async () => {
  await gpu();
  const logits = tensor(new Float32Array(6), [2, 3]);
  const ids = tensor(new Int32Array([0, 1]), [2]);
  const floatIds = tensor([0, 1], [2]);
  const threeIds = tensor(new Int32Array([0, 1, 2]), [3]);
  const flat = tensor(new Float32Array(6), [6]);
  const noClasses = tensor([], [2, 0]);
  const checks: [string, () => unknown, string[]][] = [
    ["f32 targets", () => crossEntropy(logits, floatIds), ["crossEntropy", "i32", "targets"]],
    ["i32 logits", () => crossEntropy(ids, ids), ["crossEntropy", "f32"]],
    ["targets [3]", () => crossEntropy(logits, threeIds), ["crossEntropy", "[3]", "[2, 3]", "[2]"]],
    ["1-D logits", () => crossEntropy(flat, ids), ["crossEntropy", "[N, C]", "[6]"]],
    ["no classes", () => crossEntropy(noClasses, ids), ["crossEntropy", "[2, 0]"]],
  ];
  for (const [what, fn, words] of checks) {
    const message = errorOf(fn);
    if (!words.every((w) => message.includes(w))) throw new Error(`${what}: unclear error: "${message}"`);
  }
  for (const t of [logits, ids, floatIds, threeIds, flat, noClasses]) t.dispose();
});
