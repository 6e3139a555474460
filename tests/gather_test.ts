import * as ops from "../mod.ts";
import { embedding, gather } from "../src/ops/gather.ts";
import { maskedFill, where } from "../src/ops/where.ts";
import { checkOp, gpu, type Host } from "./_harness.ts";

const prod = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** numpy.take(x, clip(indices, 0, dim - 1), axis) in f64. */
function takeHost(x: Host, axis: number, indices: Host): Host {
  const a = norm(axis, x.shape.length);
  const outer = prod(x.shape.slice(0, a)), dim = x.shape[a], inner = prod(x.shape.slice(a + 1));
  const shape = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)];
  const data = new Float64Array(prod(shape));
  let n = 0;
  for (let o = 0; o < outer; o++) {
    for (const raw of indices.data) {
      const k = Math.min(dim - 1, Math.max(0, raw));
      for (let i = 0; i < inner; i++) data[n++] = x.data[(o * dim + k) * inner + i];
    }
  }
  return { data, shape };
}

/** Elementwise f over hosts broadcast together (NumPy rules). */
function broadcastHost(hosts: Host[], f: (...v: number[]) => number): Host {
  const rank = Math.max(...hosts.map((h) => h.shape.length));
  const padded = hosts.map((h) => [...Array(rank - h.shape.length).fill(1), ...h.shape]);
  const shape = [...Array(rank).keys()].map((d) =>
    padded.some((p) => p[d] === 0) ? 0 : Math.max(...padded.map((p) => p[d]))
  );
  const data = new Float64Array(prod(shape));
  for (let i = 0; i < data.length; i++) {
    const idx = padded.map(() => 0);
    const step = padded.map(() => 1);
    let rest = i;
    for (let d = rank - 1; d >= 0; d--) {
      const c = rest % shape[d];
      rest = Math.floor(rest / shape[d]);
      padded.forEach((p, k) => {
        if (p[d] !== 1) idx[k] += c * step[k];
        step[k] *= p[d];
      });
    }
    data[i] = f(...hosts.map((h, k) => h.data[idx[k]]));
  }
  return { data, shape };
}

/** A 0/1 mask of n entries with both values present (for n >= 2). */
function maskData(n: number, seed = 0): number[] {
  return Array.from({ length: n }, (_, i) => ((i * 7 + seed) % 3 === 0 ? 1 : 0));
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected an error, none was thrown");
}

function assertMentions(message: string, ...parts: string[]): void {
  for (const part of parts) {
    if (!message.includes(part)) throw new Error(`error message lacks "${part}": ${message}`);
  }
}

Deno.test("gather() matches numpy.take on any axis with indices of any shape, repeats included", async () => {
  const cases: [number[], number, number[], number[]][] = [
    [[5, 3], 0, [4], [1, 3, 1, 1]],
    [[2, 4, 3], 1, [2, 3], [3, 0, 3, 2, 3, 0]],
    [[2, 4, 3], -1, [], [2]],
    [[6], 0, [2, 2], [5, 0, 5, 5]],
    [[3, 2], 1, [0], []],
    [[0, 3], 1, [2], [1, 1]],
    [[2, 3, 1, 2], 2, [3], [0, 0, 0]],
    [[7, 1], -2, [1, 1, 5], [6, 6, 0, 2, 6]],
  ];
  for (const [shape, axis, idxShape, idx] of cases) {
    await checkOp({
      name: `gather ${JSON.stringify(shape)} axis ${axis} indices ${JSON.stringify(idx)}`,
      inputs: [{ shape }, { shape: idxShape, data: idx, int: true }],
      gpu: (x, i) => gather(x, axis, i),
      cpu: (x, i) => takeHost(x, axis, i),
      tol: 0,
    });
  }
});

Deno.test("gather() adds the gradients of a repeated index, the same on every run", async () => {
  await gpu();
  const x = ops.tensor([1, 2, 3, 4, 5, 6], [3, 2], { requiresGrad: true });
  const idx = ops.tensor(new Int32Array([2, 0, 2, 2]), [4]);
  const w = ops.tensor([1, 10, 100, 1000, 0.5, 0.25, 3, 7], [4, 2]);
  const grads: number[][] = [];
  for (let run = 0; run < 2; run++) {
    ops.backward(ops.sum(ops.mul(gather(x, 0, idx), w)));
    grads.push([...await x.grad!.toArray()]);
    x.grad!.dispose();
    x.grad = null;
  }
  const want = [100, 1000, 0, 0, 1 + 0.5 + 3, 10 + 0.25 + 7];
  if (JSON.stringify(grads[0]) !== JSON.stringify(want)) throw new Error(`got ${grads[0]}, want ${want}`);
  if (JSON.stringify(grads[1]) !== JSON.stringify(grads[0])) throw new Error(`runs differ: ${grads}`);
  for (const t of [x, idx, w]) t.dispose();
});

Deno.test("gather() clamps out-of-range indices instead of reading out of bounds", async () => {
  await checkOp({
    name: "gather clamped",
    inputs: [{ shape: [4, 2] }, { shape: [4], data: [-3, 7, 1, 4], int: true }],
    gpu: (x, i) => gather(x, 0, i),
    cpu: (x, i) => takeHost(x, 0, i),
    tol: 0,
  });
});

Deno.test("gather() takes from i32 tensors too", async () => {
  await checkOp({
    name: "gather i32",
    inputs: [{ shape: [3, 4], int: true, range: [-1000, 1000] }, { shape: [2], data: [3, 1], int: true }],
    gpu: (x, i) => gather(x, 1, i),
    cpu: (x, i) => takeHost(x, 1, i),
    tol: 0,
    noGrad: true,
  });
});

Deno.test("gather() refuses f32 indices, a bad axis and indices into an empty axis", async () => {
  await gpu();
  const x = ops.zeros([2, 3]);
  const fIdx = ops.tensor([0, 1]);
  const idx = ops.tensor(new Int32Array([0]), [1]);
  assertMentions(errorOf(() => gather(x, 0, fIdx)), "gather", "i32", "f32 tensor [2]", "Int32Array");
  assertMentions(errorOf(() => gather(x, 2, idx)), "gather", "axis 2", "[2, 3]");
  assertMentions(errorOf(() => gather(x, -3, idx)), "gather", "axis -3", "[2, 3]");
  const empty = ops.zeros([2, 0]);
  assertMentions(errorOf(() => gather(empty, 1, idx)), "gather", "empty axis", "[2, 0]");
  for (const t of [x, fIdx, idx, empty]) t.dispose();
});

Deno.test("embedding() looks up rows of [V, D] by id, accumulates repeated ids and clamps bad ids", async () => {
  const cases: [number[], number[]][] = [
    [[2, 3], [4, 0, 4, 6, 1, 4]],
    [[5], [0, 6, 6, 2, 3]],
    [[3], [-1, 9, 3]],
    [[0, 2], []],
    [[300], Array.from({ length: 300 }, (_, i) => (i * i * 31 + 7) % 7)],
  ];
  for (const [idShape, ids] of cases) {
    await checkOp({
      name: `embedding ${JSON.stringify(idShape)} ${JSON.stringify(ids)}`,
      inputs: [{ shape: idShape, data: ids, int: true }, { shape: [7, 5] }],
      gpu: (i, w) => embedding(i, w),
      cpu: (i, w) => takeHost(w, 0, i),
      tol: 0,
    });
  }
});

Deno.test("embedding() refuses f32 ids and a weight that is not a [V, D] f32 table", async () => {
  await gpu();
  const w = ops.zeros([4, 3]);
  const ids = ops.tensor(new Int32Array([1]), [1]);
  const fIds = ops.tensor([1]);
  assertMentions(errorOf(() => embedding(fIds, w)), "embedding", "i32", "f32 tensor [1]");
  assertMentions(errorOf(() => embedding(ids, ops.zeros([4]))), "embedding", "[V, D]", "[4]");
  assertMentions(errorOf(() => embedding(ids, ops.zeros([2, 2, 2]))), "embedding", "[V, D]", "[2, 2, 2]");
  for (const t of [w, ids, fIds]) t.dispose();
});

Deno.test("where() selects with broadcasting and sends the gradient to the side it chose", async () => {
  const cases: [number[], number[], number[]][] = [
    [[2, 3], [2, 3], [2, 3]],
    [[3], [2, 3], [1]],
    [[2, 1], [4], [2, 4]],
    [[], [3, 2], [2]],
    [[2, 1, 3], [1, 4, 1], [4, 3]],
    [[0, 3], [3], [1, 3]],
  ];
  for (const [sc, sa, sb] of cases) {
    await checkOp({
      name: `where ${JSON.stringify([sc, sa, sb])}`,
      inputs: [{ shape: sc, data: maskData(prod(sc), 1), noGrad: true }, { shape: sa }, { shape: sb }],
      gpu: where,
      cpu: (c, a, b) => broadcastHost([c, a, b], (vc, va, vb) => (vc !== 0 ? va : vb)),
      tol: 0,
    });
  }
});

Deno.test("where() passes infinities through untouched, with finite gradients", async () => {
  await gpu();
  const cond = ops.tensor([1, 0, 1, 0]);
  const a = ops.tensor([1, Infinity, -Infinity, 2], [4], { requiresGrad: true });
  const b = ops.tensor([-Infinity, 3, NaN, 4], [4], { requiresGrad: true });
  const y = where(cond, a, b);
  ops.backward(ops.sum(ops.mul(y, ops.tensor([1, 2, 3, 4]))));
  const got = [...await y.toArray(), ...await a.grad!.toArray(), ...await b.grad!.toArray()];
  const want = [1, 3, -Infinity, 4, 1, 0, 3, 0, 0, 2, 0, 4];
  if (!got.every((v, i) => v === want[i])) throw new Error(`got ${got}, want ${want}`);
  for (const t of [cond, a, b, y]) t.dispose();
});

Deno.test("maskedFill() fills masked entries with a broadcast mask; x's gradient is 0 where it filled", async () => {
  const cases: [number[], number[]][] = [
    [[3, 4], [3, 4]],
    [[3, 4], [3, 1]],
    [[2, 3, 4], [4]],
    [[5], []],
    [[0, 4], [4]],
  ];
  for (const [sx, sm] of cases) {
    await checkOp({
      name: `maskedFill ${JSON.stringify([sx, sm])}`,
      inputs: [{ shape: sx }, { shape: sm, data: maskData(prod(sm)), noGrad: true }],
      gpu: (x, m) => maskedFill(x, m, 7.5),
      cpu: (x, m) => broadcastHost([x, m], (vx, vm) => (vm !== 0 ? 7.5 : vx)),
      tol: 0,
    });
  }
});

Deno.test("maskedFill() with -Infinity writes -Infinity and lets no NaN into the gradient", async () => {
  await gpu();
  const xs = [0.5, -1, 2, 0.25, 1.5, -0.75];
  const ms = [0, 1, 1, 0, 0, 1];
  const x = ops.tensor(xs, [2, 3], { requiresGrad: true });
  const mask = ops.tensor(ms, [2, 3]);
  const filled = maskedFill(x, mask, -Infinity);
  const y = ops.exp(filled); // exp(-inf) = 0, the pattern of a masked softmax
  ops.backward(ops.sum(y));
  const values = await filled.toArray();
  const grad = await x.grad!.toArray();
  xs.forEach((v, i) => {
    const want = ms[i] ? -Infinity : v;
    if (values[i] !== want) throw new Error(`value ${i}: got ${values[i]}, want ${want}`);
    const g = ms[i] ? 0 : Math.fround(Math.exp(v));
    if (!(Math.abs(grad[i] - g) <= 1e-6 * Math.max(1, g))) {
      throw new Error(`grad ${i}: got ${grad[i]}, want ${g}`);
    }
  });
  for (const t of [x, mask, filled, y]) t.dispose();
});

Deno.test("where() and maskedFill() refuse shapes that do not broadcast and name them", async () => {
  await gpu();
  const a = ops.zeros([2, 3]), b = ops.zeros([4]), m = ops.zeros([2, 3]), big = ops.zeros([2, 2, 3]);
  const ids = ops.tensor(new Int32Array(6), [2, 3]);
  assertMentions(errorOf(() => where(m, a, b)), "where", "[2, 3]", "[4]");
  assertMentions(errorOf(() => maskedFill(a, b, 0)), "maskedFill", "[2, 3]", "[4]");
  assertMentions(errorOf(() => maskedFill(a, big, 0)), "maskedFill", "[2, 2, 3]", "[2, 3]");
  assertMentions(errorOf(() => where(ids, a, a)), "where", "i32");
  for (const t of [a, b, m, big, ids]) t.dispose();
});
