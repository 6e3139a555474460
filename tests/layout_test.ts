import * as ops from "../mod.ts";
import { concat, slice } from "../src/ops/slice.ts";
import { permute, transpose } from "../src/ops/permute.ts";
import { checkOp, gpu, type Host } from "./_harness.ts";

const prod = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** numpy.transpose(x, axes) in f64. */
function permuteHost(x: Host, axes: number[]): Host {
  const rank = x.shape.length;
  const perm = axes.map((a) => norm(a, rank));
  const shape = perm.map((a) => x.shape[a]);
  const inStrides = x.shape.map((_, i) => prod(x.shape.slice(i + 1)));
  const data = new Float64Array(prod(shape));
  for (let i = 0; i < data.length; i++) {
    let rest = i, src = 0;
    for (let d = rank - 1; d >= 0; d--) {
      src += (rest % shape[d]) * inStrides[perm[d]];
      rest = Math.floor(rest / shape[d]);
    }
    data[i] = x.data[src];
  }
  return { data, shape };
}

/** The entries `idx` of one axis, in order (the reference for slice). */
function takeHost(x: Host, axis: number, idx: number[]): Host {
  const a = norm(axis, x.shape.length);
  const outer = prod(x.shape.slice(0, a)), dim = x.shape[a], inner = prod(x.shape.slice(a + 1));
  const shape = x.shape.map((d, i) => (i === a ? idx.length : d));
  const data = new Float64Array(prod(shape));
  let n = 0;
  for (let o = 0; o < outer; o++) {
    for (const k of idx) for (let i = 0; i < inner; i++) data[n++] = x.data[(o * dim + k) * inner + i];
  }
  return { data, shape };
}

/** x[start:end] along `axis` with JavaScript's Array.prototype.slice semantics (the same as Python's). */
function sliceHost(x: Host, axis: number, start: number, end?: number): Host {
  const dim = x.shape[norm(axis, x.shape.length)];
  return takeHost(x, axis, [...Array(dim).keys()].slice(start, end));
}

function concatHost(xs: Host[], axis: number): Host {
  const a = norm(axis, xs[0].shape.length);
  const outer = prod(xs[0].shape.slice(0, a)), inner = prod(xs[0].shape.slice(a + 1));
  const shape = xs[0].shape.map((d, i) => (i === a ? xs.reduce((s, x) => s + x.shape[a], 0) : d));
  const data = new Float64Array(prod(shape));
  let n = 0;
  for (let o = 0; o < outer; o++) {
    for (const x of xs) {
      const len = x.shape[a] * inner;
      for (let j = 0; j < len; j++) data[n++] = x.data[o * len + j];
    }
  }
  return { data, shape };
}

/** The message of the error `fn` throws (fails when it does not throw). */
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

Deno.test("permute() matches numpy.transpose in f64 for ranks 0-5, negative axes, size-1 and size-0 dims", async () => {
  const cases: [number[], number[]][] = [
    [[], []],
    [[5], [0]],
    [[3, 4], [1, 0]],
    [[2, 3, 5], [2, 0, 1]],
    [[2, 1, 3, 4], [-1, 0, 2, -3]],
    [[1, 2, 3, 2], [3, 2, 1, 0]],
    [[2, 0, 3], [2, 1, 0]],
    [[2, 1, 2, 3, 2], [4, 0, 3, 1, 2]],
    [[7, 9, 11], [2, 0, 1]],
  ];
  for (const [shape, axes] of cases) {
    await checkOp({
      name: `permute ${JSON.stringify(shape)} ${JSON.stringify(axes)}`,
      inputs: [{ shape }],
      gpu: (x) => permute(x, axes),
      cpu: (x) => permuteHost(x, axes),
      tol: 0,
    });
  }
});

Deno.test("permute() that only moves size-1 axes is a view and records no dispatch", async () => {
  const g = await gpu();
  await checkOp({
    name: "permute view",
    inputs: [{ shape: [3, 1, 5, 1] }],
    gpu: (x) => {
      const before = g.counters.dispatches;
      const y = permute(x, [1, 0, 3, 2]);
      if (g.counters.dispatches !== before) throw new Error("a size-1 permutation should not dispatch");
      return y;
    },
    cpu: (x) => permuteHost(x, [1, 0, 3, 2]),
    tol: 0,
  });
});

Deno.test("permute() moves i32 tensors bit for bit", async () => {
  await checkOp({
    name: "permute i32",
    inputs: [{ shape: [2, 3, 4], int: true, range: [-100000, 100000] }],
    gpu: (x) => {
      const y = permute(x, [1, 2, 0]);
      if (y.dtype !== "i32") throw new Error(`expected an i32 result, got ${y.dtype}`);
      return y;
    },
    cpu: (x) => permuteHost(x, [1, 2, 0]),
    tol: 0,
    noGrad: true,
  });
});

Deno.test("transpose() swaps the last two axes by default, or the two it is given", async () => {
  const cases: [number[], number[]][] = [[[3, 5], []], [[2, 3, 4], [0, 2]], [[2, 3, 4], [-3, -2]], [[4, 3], [
    1,
    1,
  ]]];
  for (const [shape, pair] of cases) {
    const [a0 = -2, a1 = -1] = pair;
    const axes = [...shape.keys()];
    axes[norm(a0, shape.length)] = norm(a1, shape.length);
    axes[norm(a1, shape.length)] = norm(a0, shape.length);
    await checkOp({
      name: `transpose ${JSON.stringify(shape)} ${JSON.stringify(pair)}`,
      inputs: [{ shape }],
      gpu: (x) => (pair.length ? transpose(x, a0, a1) : transpose(x)),
      cpu: (x) => permuteHost(x, axes),
      tol: 0,
    });
  }
});

Deno.test("permute() and transpose() refuse bad axes and name the axes and the shape", async () => {
  await gpu();
  const x = ops.zeros([2, 3, 4]);
  assertMentions(errorOf(() => permute(x, [0, 1])), "permute", "[0,1]", "[2, 3, 4]");
  assertMentions(errorOf(() => permute(x, [0, 1, 1])), "permute", "repeat", "[2, 3, 4]");
  assertMentions(errorOf(() => permute(x, [0, 1, 3])), "permute", "3", "out of range", "[2, 3, 4]");
  assertMentions(errorOf(() => transpose(ops.zeros([5]))), "transpose", "axis -2", "[5]");
  assertMentions(errorOf(() => transpose(x, 0, 3)), "transpose", "axis 3", "[2, 3, 4]");
  x.dispose();
});

Deno.test("slice() takes Python-style ranges: negative and clamped bounds, empty ranges, any axis", async () => {
  const cases: [number[], number, number, number?][] = [
    [[7], 0, 2, 5],
    [[3, 5], 1, -3],
    [[3, 5], -2, 1, -1],
    [[2, 3, 4], 1, 1, 2],
    [[2, 3, 4], -1, 0, 3],
    [[4, 3], 0, 5, 9],
    [[3, 4], 1, 3, 1],
    [[2, 0, 3], 2, 1, 3],
    [[3, 4], 1, -100, 100],
    [[1, 6, 1], 1, 0, 6],
    [[2, 3, 2, 5], 3, -4, -1],
    [[5, 9, 13], 1, 2, -2],
  ];
  for (const [shape, axis, start, end] of cases) {
    await checkOp({
      name: `slice ${JSON.stringify(shape)} axis ${axis} [${start}:${end ?? ""}]`,
      inputs: [{ shape }],
      gpu: (x) => slice(x, axis, start, end),
      cpu: (x) => sliceHost(x, axis, start, end),
      tol: 0,
    });
  }
});

Deno.test("slice() works on i32 tensors", async () => {
  await checkOp({
    name: "slice i32",
    inputs: [{ shape: [3, 5], int: true, range: [-50, 50] }],
    gpu: (x) => slice(x, 1, 1, 4),
    cpu: (x) => sliceHost(x, 1, 1, 4),
    tol: 0,
    noGrad: true,
  });
});

Deno.test("slice() refuses a bad axis or bound and names the axis and the shape", async () => {
  await gpu();
  const x = ops.zeros([2, 3]);
  assertMentions(errorOf(() => slice(x, 2, 0, 1)), "slice", "axis 2", "[2, 3]");
  assertMentions(errorOf(() => slice(x, -3, 0, 1)), "slice", "axis -3", "[2, 3]");
  assertMentions(errorOf(() => slice(x, 0, 0.5)), "slice", "start", "0.5");
  assertMentions(errorOf(() => slice(ops.zeros([]), 0, 0)), "slice", "axis 0", "[]");
  x.dispose();
});

Deno.test("concat() joins along any axis and gives each input its slice of the gradient", async () => {
  const cases: [number[][], number][] = [
    [[[2, 3], [1, 3]], 0],
    [[[2, 1], [2, 3], [2, 2]], 1],
    [[[2, 3, 2], [2, 3, 3]], -1],
    [[[2, 0, 3], [2, 2, 3], [2, 1, 3]], 1],
    [[[1, 2, 3, 2], [1, 2, 1, 2]], 2],
    [[[5]], 0],
    [[[0, 2], [0, 3]], 1],
    [[[6, 50], [6, 41]], 1],
  ];
  for (const [shapes, axis] of cases) {
    await checkOp({
      name: `concat ${JSON.stringify(shapes)} axis ${axis}`,
      inputs: shapes.map((shape) => ({ shape })),
      gpu: (...xs) => concat(xs, axis),
      cpu: (...xs) => concatHost(xs, axis),
      tol: 0,
    });
  }
});

Deno.test("concat() of one tensor with itself accumulates both slices of the gradient", async () => {
  await checkOp({
    name: "concat [x, x]",
    inputs: [{ shape: [2, 3] }],
    gpu: (x) => concat([x, x, x], 0),
    cpu: (x) => concatHost([x, x, x], 0),
    tol: 0,
  });
});

Deno.test("concat() joins i32 tensors", async () => {
  await checkOp({
    name: "concat i32",
    inputs: [{ shape: [2, 2], int: true, range: [0, 1000] }, { shape: [2, 3], int: true, range: [0, 1000] }],
    gpu: (a, b) => concat([a, b], 1),
    cpu: (a, b) => concatHost([a, b], 1),
    tol: 0,
    noGrad: true,
  });
});

Deno.test("concat() refuses mismatched shapes or dtypes, an empty list and a bad axis", async () => {
  await gpu();
  const a = ops.zeros([2, 3]), b = ops.zeros([3, 4]), c = ops.zeros([2, 3, 1]);
  const ids = ops.tensor(new Int32Array(6), [2, 3]);
  assertMentions(errorOf(() => concat([a, b], 1)), "concat", "[2, 3]", "[3, 4]", "axis 1");
  assertMentions(errorOf(() => concat([a, c], 0)), "concat", "[2, 3]", "[2, 3, 1]");
  assertMentions(errorOf(() => concat([a, ids], 0)), "concat", "f32", "i32");
  assertMentions(errorOf(() => concat([], 0)), "concat", "none");
  assertMentions(errorOf(() => concat([a, a], 2)), "concat", "axis 2", "[2, 3]");
  for (const t of [a, b, c, ids]) t.dispose();
});
