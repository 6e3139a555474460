import * as ops from "../mod.ts";
import { checkOp, type Host, map } from "./_harness.ts";

function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 is not precise enough for a reference; use a series / continued fraction.
  const t = Math.abs(x);
  if (t < 3) {
    let sum = t, term = t;
    for (let n = 1; n < 200; n++) {
      term *= -t * t / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * 2 / Math.sqrt(Math.PI) * sum;
  }
  let cf = 0;
  for (let n = 60; n >= 1; n--) cf = (n / 2) / (t + cf);
  return Math.sign(x) * (1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + cf));
}

const sig = (v: number) => 1 / (1 + Math.exp(-v));
const unaryCases: [string, (x: ops.Tensor) => ops.Tensor, (v: number) => number, [number, number]?][] = [
  ["neg", ops.neg, (v) => -v],
  ["exp", ops.exp, Math.exp],
  ["log", ops.log, Math.log, [0.2, 3]],
  ["sqrt", ops.sqrt, Math.sqrt, [0.2, 3]],
  ["sigmoid", ops.sigmoid, sig, [-6, 6]],
  ["tanh", ops.tanh, Math.tanh, [-4, 4]],
  ["gelu", ops.gelu, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)), [-5, 5]],
  ["quickGelu", ops.quickGelu, (v) => v * sig(1.702 * v), [-5, 5]],
  ["affine", (x) => ops.affine(x, -1.5, 0.25), (v) => -1.5 * v + 0.25],
  ["square", ops.square, (v) => v * v],
  ["reciprocal", ops.reciprocal, (v) => 1 / v, [0.5, 3]],
];

for (const [name, gpuFn, f, range] of unaryCases) {
  Deno.test(`${name}() matches the f64 reference and its gradient matches finite differences`, async () => {
    for (const shape of [[7], [3, 5, 2], [1], [0, 4]]) {
      await checkOp({
        name: `${name} ${JSON.stringify(shape)}`,
        inputs: [{ shape, range }],
        gpu: gpuFn,
        cpu: (x) => map(x, f),
        tol: 2e-6,
        eps: 1e-6,
      });
    }
  });
}

/** Broadcasting host binary op. */
function broadcastHost(a: Host, b: Host, f: (x: number, y: number) => number): Host {
  const rank = Math.max(a.shape.length, b.shape.length);
  const pa = [...Array(rank - a.shape.length).fill(1), ...a.shape];
  const pb = [...Array(rank - b.shape.length).fill(1), ...b.shape];
  const shape = pa.map((d, i) => Math.max(d, pb[i]) * (d === 0 || pb[i] === 0 ? 0 : 1));
  const n = shape.reduce((x, y) => x * y, 1);
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let rest = i, ia = 0, ib = 0, sa = 1, sb = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const c = rest % shape[d];
      rest = Math.floor(rest / shape[d]);
      if (pa[d] !== 1) ia += c * sa;
      if (pb[d] !== 1) ib += c * sb;
      sa *= pa[d];
      sb *= pb[d];
    }
    data[i] = f(a.data[ia], b.data[ib]);
  }
  return { data, shape };
}

const binaryCases: [
  string,
  (a: ops.Tensor, b: ops.Tensor) => ops.Tensor,
  (x: number, y: number) => number,
][] = [
  ["add", ops.add, (x, y) => x + y],
  ["sub", ops.sub, (x, y) => x - y],
  ["mul", ops.mul, (x, y) => x * y],
  ["div", ops.div, (x, y) => x / y],
  ["maximum", ops.maximum, Math.max],
  ["minimum", ops.minimum, Math.min],
];
const shapePairs = [
  [[2, 3], [2, 3]],
  [[2, 3], [3]],
  [[4, 1, 5], [3, 1]],
  [[1], [3, 2]],
  [[], [2, 2]],
  [[0, 3], [3]],
];

for (const [name, gpuFn, f] of binaryCases) {
  Deno.test(`${name}() broadcasts like NumPy and its gradients sum over broadcast axes`, async () => {
    for (const [sa, sb] of shapePairs) {
      await checkOp({
        name: `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`,
        // Keep |b| away from 0 for div and the two apart for max/min (finite differences need a margin).
        inputs: [{ shape: sa, range: [-2, 2] }, { shape: sb, range: name === "div" ? [0.5, 2] : [-2, 2] }],
        gpu: gpuFn,
        cpu: (a, b) => broadcastHost(a, b, f),
        tol: 2e-6,
        eps: 1e-6,
      });
    }
  });
}

Deno.test("comparisons give 1 or 0 with broadcasting", async () => {
  const cases: [string, (a: ops.Tensor, b: ops.Tensor) => ops.Tensor, (x: number, y: number) => number][] = [
    ["eq", ops.eq, (x, y) => Number(x === y)],
    ["gt", ops.gt, (x, y) => Number(x > y)],
    ["lt", ops.lt, (x, y) => Number(x < y)],
    ["ge", ops.ge, (x, y) => Number(x >= y)],
  ];
  for (const [name, gpuFn, f] of cases) {
    await checkOp({
      name,
      inputs: [{ shape: [3, 4], data: [0, 1, 2, 3, 1, 1, 2, 2, 3, 0, 0, 1] }, {
        shape: [4],
        data: [1, 1, 2, 0],
      }],
      gpu: gpuFn,
      cpu: (a, b) => broadcastHost(a, b, f),
      noGrad: true,
    });
  }
});

Deno.test("broadcastTo() repeats size-1 axes and sums them back in the gradient", async () => {
  await checkOp({
    name: "broadcastTo",
    inputs: [{ shape: [3, 1] }],
    gpu: (x) => ops.broadcastTo(x, [2, 3, 4]),
    cpu: (x) => broadcastHost(x, { data: new Float64Array(24), shape: [2, 3, 4] }, (v) => v),
  });
});
