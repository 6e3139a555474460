import { add, backward, mul, scale, sum, tensor, tidy } from "../mod.ts";
import { assertEquals } from "./_assert.ts";
import { layerNorm } from "../src/ops/layer_norm.ts";
import { checkOp, gpu, type Host } from "./_harness.ts";
import { setRowThreadLimit } from "../src/ops/_op.ts";

/** Host layer norm over the last axis in f64 (biased variance). */
function layerNormHost(x: Host, w: Host, b: Host, eps = 1e-5): Host {
  const d = x.shape[x.shape.length - 1];
  const out = new Float64Array(x.data.length);
  for (let start = 0; start < x.data.length; start += d) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x.data[start + i];
    mean /= d;
    let variance = 0;
    for (let i = 0; i < d; i++) variance += (x.data[start + i] - mean) ** 2;
    variance /= d;
    const rstd = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < d; i++) out[start + i] = (x.data[start + i] - mean) * rstd * w.data[i] + b.data[i];
  }
  return { data: out, shape: [...x.shape] };
}

Deno.test("layerNorm() over rows of length 1 to 1030 matches the f64 reference, with gradients of x, weight and bias", async () => {
  for (const d of [1, 3, 8, 65, 300, 1030]) {
    await checkOp({
      name: `layerNorm [3, ${d}]`,
      inputs: [{ shape: [3, d] }, { shape: [d], range: [0.5, 1.5] }, { shape: [d] }],
      gpu: (x, w, b) => layerNorm(x, w, b),
      cpu: (x, w, b) => layerNormHost(x, w, b),
      eps: 1e-4,
    });
  }
});

Deno.test("layerNorm() with a GPU's launch (a row's threads reduce in shared memory) matches the reference", async () => {
  setRowThreadLimit(256); // a CPU rasteriser gets one thread a row: run the other path too
  try {
    for (const d of [3, 65, 1030]) {
      await checkOp({
        name: `layerNorm [3, ${d}], many threads a row`,
        inputs: [{ shape: [3, d] }, { shape: [d], range: [0.5, 1.5] }, { shape: [d] }],
        gpu: (x, w, b) => layerNorm(x, w, b),
        cpu: (x, w, b) => layerNormHost(x, w, b),
        eps: 1e-4,
      });
    }
  } finally {
    setRowThreadLimit(null);
  }
});

Deno.test("layerNorm() of a batched [2, 3, D] tensor normalises the last axis", async () => {
  for (const d of [5, 70]) {
    await checkOp({
      name: `layerNorm [2, 3, ${d}]`,
      inputs: [{ shape: [2, 3, d] }, { shape: [d] }, { shape: [d] }],
      gpu: (x, w, b) => layerNorm(x, w, b),
      cpu: (x, w, b) => layerNormHost(x, w, b),
      eps: 1e-4,
    });
  }
});

Deno.test("layerNorm() with many rows sums dweight and dbias over every row", async () => {
  // 300 rows: more than the 16 row lanes of the weight-gradient kernel; 20 columns: two column blocks.
  await checkOp({
    name: "layerNorm [300, 20]",
    inputs: [{ shape: [300, 20] }, { shape: [20] }, { shape: [20] }],
    gpu: (x, w, b) => layerNorm(x, w, b),
    cpu: (x, w, b) => layerNormHost(x, w, b),
    eps: 1e-4,
  });
});

Deno.test("layerNorm() gives gradients only to the inputs that require them", async () => {
  // x without gradient (only dweight, dbias), then weight and bias without (only dx).
  await checkOp({
    name: "layerNorm frozen x",
    inputs: [{ shape: [5, 9], noGrad: true }, { shape: [9] }, { shape: [9] }],
    gpu: (x, w, b) => layerNorm(x, w, b),
    cpu: (x, w, b) => layerNormHost(x, w, b),
    eps: 1e-4,
  });
  await checkOp({
    name: "layerNorm frozen affine",
    inputs: [{ shape: [5, 9] }, { shape: [9], noGrad: true }, { shape: [9], noGrad: true }],
    gpu: (x, w, b) => layerNorm(x, w, b),
    cpu: (x, w, b) => layerNormHost(x, w, b),
    eps: 1e-4,
  });
});

Deno.test("layerNorm() honours eps and stays accurate for rows with a large offset", async () => {
  await checkOp({
    name: "layerNorm eps 0.1",
    inputs: [{ shape: [4, 6], range: [-0.3, 0.3] }, { shape: [6] }, { shape: [6] }],
    gpu: (x, w, b) => layerNorm(x, w, b, 0.1),
    cpu: (x, w, b) => layerNormHost(x, w, b, 0.1),
    eps: 1e-4,
  });
  // Values near 100 with spread 1: the two-pass variance has no cancellation.
  await checkOp({
    name: "layerNorm offset 100",
    inputs: [{ shape: [3, 65], range: [99, 101] }, { shape: [65] }, { shape: [65] }],
    gpu: (x, w, b) => layerNorm(x, w, b),
    cpu: (x, w, b) => layerNormHost(x, w, b),
    tol: 1e-4,
    noGrad: true,
  });
});

Deno.test("layerNorm() gradients are deterministic: two runs give the same bits", async () => {
  await gpu();
  const rows = 200, d = 48;
  const xData = Float32Array.from({ length: rows * d }, (_, i) => Math.sin(i * 0.37) * 2);
  const dyData = Float32Array.from({ length: rows * d }, (_, i) => Math.cos(i * 0.11));
  const run = async () => {
    const x = tensor(xData, [rows, d], { requiresGrad: true });
    const w = tensor(Float32Array.from({ length: d }, (_, i) => 1 + i / d), [d], { requiresGrad: true });
    const b = tensor(new Float32Array(d), [d], { requiresGrad: true });
    tidy(() => backward(sum(mul(layerNorm(x, w, b), tensor(dyData, [rows, d])))));
    const out = [await x.grad!.toArray(), await w.grad!.toArray(), await b.grad!.toArray()];
    for (const t of [x, w, b]) {
      t.grad!.dispose();
      t.dispose();
    }
    return out;
  };
  const first = await run();
  const second = await run();
  first.forEach((a, k) => {
    const b = second[k];
    for (let i = 0; i < a.length; i++) {
      if (!Object.is(a[i], b[i])) throw new Error(`gradient ${k} differs at ${i}: ${a[i]} vs ${b[i]}`);
    }
  });
});

Deno.test("layerNorm() inside a residual x + 2 layerNorm(x) sums x's other gradient in its own kernel", async () => {
  // The add's gradient reaches x first; layerNorm's backward then adds it in its epilogue (no separate add).
  await checkOp({
    name: "x + 2 layerNorm(x)",
    inputs: [{ shape: [5, 12] }, { shape: [12] }, { shape: [12] }],
    gpu: (x, w, b) => add(x, scale(layerNorm(x, w, b), 2)),
    cpu: (x, w, b) => {
      const ln = layerNormHost(x, w, b);
      return { data: ln.data.map((v, i) => x.data[i] + 2 * v), shape: x.shape };
    },
  });
  const g = await gpu();
  const x = tensor(new Float32Array(60).map((_, i) => Math.sin(i)), [5, 12], { requiresGrad: true });
  const [w, b] = [tensor(new Float32Array(12).fill(1)), tensor(new Float32Array(12))];
  const dispatches = (f: () => void) => {
    g.resetCounters();
    tidy(f);
    x.grad?.dispose();
    x.grad = null;
    return g.counters.dispatches;
  };
  const fused = dispatches(() => backward(sum(add(x, layerNorm(x, w, b)))));
  const plain = dispatches(() => backward(sum(layerNorm(x, w, b))));
  // The residual costs its forward add only: its gradient for x rides layer_norm_backward.
  assertEquals(fused, plain + 1);
  for (const t of [x, w, b]) t.dispose();
});

Deno.test("layerNorm() refuses a weight or bias that does not match the last dimension, naming the shapes", async () => {
  await gpu();
  const x = tensor(new Float32Array(6), [2, 3]);
  const good = tensor([1, 1, 1]);
  const bad = tensor([1, 1]);
  const messages: string[] = [];
  for (const [w, b] of [[bad, good], [good, bad]]) {
    try {
      layerNorm(x, w, b);
    } catch (e) {
      messages.push((e as Error).message);
    }
  }
  for (const t of [x, good, bad]) t.dispose();
  if (messages.length !== 2) throw new Error(`expected two errors, got ${messages.length}`);
  for (const [i, what] of ["weight", "bias"].entries()) {
    const m = messages[i];
    if (!m.includes("layerNorm") || !m.includes(what) || !m.includes("[2]") || !m.includes("[2, 3]")) {
      throw new Error(`unclear error: ${m}`);
    }
  }
});
