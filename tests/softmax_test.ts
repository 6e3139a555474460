import { backward, mul, sum, tensor, tidy } from "../mod.ts";
import { logSoftmax, softmax } from "../src/ops/softmax.ts";
import { assertClose, checkOp, gpu, type Host } from "./_harness.ts";
import { setRowThreadLimit } from "../src/ops/_op.ts";

/** Host softmax (or log-softmax) over the last axis in f64; an all -inf row gives 0 (or -inf). */
function softmaxHost(x: Host, log: boolean): Host {
  const d = x.shape.length === 0 ? 1 : x.shape[x.shape.length - 1];
  const out = new Float64Array(x.data.length);
  for (let start = 0; start < x.data.length; start += d) {
    let m = -Infinity;
    for (let i = 0; i < d; i++) m = Math.max(m, x.data[start + i]);
    const shift = m === -Infinity ? 0 : m;
    let s = 0;
    for (let i = 0; i < d; i++) s += Math.exp(x.data[start + i] - shift);
    for (let i = 0; i < d; i++) {
      const v = x.data[start + i] - shift;
      out[start + i] = log ? (s === 0 ? -Infinity : v - Math.log(s)) : (s === 0 ? 0 : Math.exp(v) / s);
    }
  }
  return { data: out, shape: [...x.shape] };
}

const ops = [
  ["softmax", softmax, false],
  ["logSoftmax", logSoftmax, true],
] as const;

for (const [name, op, log] of ops) {
  Deno.test(`${name}() over rows of length 1 to 1030 matches the f64 reference and finite differences`, async () => {
    for (const d of [1, 3, 8, 65, 300, 1030]) {
      await checkOp({
        name: `${name} [3, ${d}]`,
        inputs: [{ shape: [3, d], range: [-4, 4] }],
        gpu: (x) => op(x),
        cpu: (x) => softmaxHost(x, log),
        eps: 1e-4,
      });
    }
  });

  Deno.test(`${name}() with a GPU's launch (a row's threads reduce in shared memory) matches the reference`, async () => {
    setRowThreadLimit(256); // a CPU rasteriser gets one thread a row: run the other path too
    try {
      for (const d of [3, 65, 1030]) {
        await checkOp({
          name: `${name} [3, ${d}], many threads a row`,
          inputs: [{ shape: [3, d], range: [-4, 4] }],
          gpu: (x) => op(x),
          cpu: (x) => softmaxHost(x, log),
          eps: 1e-4,
        });
      }
    } finally {
      setRowThreadLimit(null);
    }
  });

  Deno.test(`${name}() of a batched [2, 3, D] tensor normalises the last axis`, async () => {
    for (const d of [5, 70]) {
      await checkOp({
        name: `${name} [2, 3, ${d}]`,
        inputs: [{ shape: [2, 3, d] }],
        gpu: (x) => op(x),
        cpu: (x) => softmaxHost(x, log),
        eps: 1e-4,
      });
    }
  });

  Deno.test(`${name}() stays accurate for logits of magnitude 50`, async () => {
    for (const d of [7, 300]) {
      await checkOp({
        name: `${name} large [4, ${d}]`,
        inputs: [{ shape: [4, d], range: [-50, 50] }],
        gpu: (x) => op(x),
        cpu: (x) => softmaxHost(x, log),
        eps: 1e-4,
      });
    }
  });

  Deno.test(`${name}() handles 0-dim, empty and size-0 tensors`, async () => {
    await checkOp({
      name: `${name} 0-dim`,
      inputs: [{ shape: [] }],
      gpu: (x) => op(x),
      cpu: (x) => softmaxHost(x, log),
      eps: 1e-4,
    });
    for (const shape of [[0, 4], [3, 0]]) {
      await gpu();
      const y = op(tensor([], shape));
      if (JSON.stringify(y.shape) !== JSON.stringify(shape) || (await y.toArray()).length !== 0) {
        throw new Error(`${name} of ${JSON.stringify(shape)} gave ${JSON.stringify(y.shape)}`);
      }
      y.dispose();
    }
  });

  Deno.test(`${name}() refuses an i32 tensor with a clear error`, async () => {
    await gpu();
    const ids = tensor(new Int32Array([1, 2]), [2]);
    let message = "";
    try {
      op(ids);
    } catch (e) {
      message = (e as Error).message;
    }
    ids.dispose();
    if (!message.includes(name) || !message.includes("i32")) throw new Error(`unclear error: ${message}`);
  });
}

Deno.test("softmax() of rows with -inf entries matches the reference and its gradient is 0 there", async () => {
  const inf = -Infinity;
  await checkOp({
    name: "softmax masked",
    inputs: [{ shape: [3, 5], data: [0.5, inf, -1, 2, inf, inf, inf, 3, inf, inf, 1, 2, 3, 4, 5] }],
    gpu: (x) => softmax(x),
    cpu: (x) => softmaxHost(x, false),
    eps: 1e-4,
  });
});

Deno.test("an all -inf row gives softmax 0 and logSoftmax -inf, and finite gradients (0 and dy)", async () => {
  await gpu();
  const inf = -Infinity;
  const data = [inf, inf, inf, inf, 1, inf, 2, inf];
  const dyData = [0.5, -1, 2, 0.25, 1, -2, 3, 0.5];
  for (const [name, op, log] of ops) {
    const x = tensor(data, [2, 4], { requiresGrad: true });
    const y = tidy(() => {
      const out = op(x);
      backward(sum(mul(out, tensor(dyData, [2, 4]))));
      return out;
    });
    const got = await y.toArray();
    const want = softmaxHost({ data: Float64Array.from(data), shape: [2, 4] }, log).data;
    for (let i = 0; i < 8; i++) {
      const ok = want[i] === -Infinity ? got[i] === -Infinity : Math.abs(got[i] - want[i]) < 1e-6;
      if (!ok) throw new Error(`${name} forward [${i}]: got ${got[i]}, want ${want[i]}`);
    }
    // dx = y * (dy - sum(dy y)) or dy - p * sum(dy), with p = 0 at -inf entries.
    const dx = new Float64Array(8);
    for (let r = 0; r < 2; r++) {
      const p = [0, 1, 2, 3].map((i) => (log ? Math.exp(want[r * 4 + i]) : want[r * 4 + i]));
      const t = [0, 1, 2, 3].reduce((a, i) => a + dyData[r * 4 + i] * (log ? 1 : p[i]), 0);
      for (let i = 0; i < 4; i++) {
        dx[r * 4 + i] = log ? dyData[r * 4 + i] - p[i] * t : p[i] * (dyData[r * 4 + i] - t);
      }
    }
    assertClose(`${name} masked grad`, await x.grad!.toArray(), dx, 1e-6);
    y.dispose();
    x.grad!.dispose();
    x.dispose();
  }
});

Deno.test("softmax() rows sum to 1 for many short rows (several rows per workgroup)", async () => {
  await gpu();
  const rows = 1000, d = 3;
  const data = Float32Array.from({ length: rows * d }, (_, i) => Math.sin(i) * 3);
  const y = softmax(tensor(data, [rows, d]));
  const got = await y.toArray();
  const want = softmaxHost({ data: Float64Array.from(data), shape: [rows, d] }, false).data;
  assertClose("softmax [1000, 3]", got, want, 1e-6);
  y.dispose();
});
