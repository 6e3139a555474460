import * as ops from "../mod.ts";
import { checkOp, type Host } from "./_harness.ts";

/** Host reduction over axes with keepDims. */
function reduceHost(x: Host, axes: number[], f: "sum" | "max" | "mean", keepDims: boolean): Host {
  const shape = x.shape;
  const outShapeKeep = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const n = outShapeKeep.reduce((a, b) => a * b, 1);
  const acc = new Float64Array(n).fill(f === "max" ? -Infinity : 0);
  const count = axes.reduce((a, i) => a * shape[i], 1);
  for (let i = 0; i < x.data.length; i++) {
    let rest = i, o = 0, stride = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      const c = rest % shape[d];
      rest = Math.floor(rest / shape[d]);
      if (!axes.includes(d)) o += c * stride;
      stride *= outShapeKeep[d];
    }
    acc[o] = f === "max" ? Math.max(acc[o], x.data[i]) : acc[o] + x.data[i];
  }
  if (f === "mean") { for (let i = 0; i < n; i++) acc[i] /= count; }
  return { data: acc, shape: keepDims ? outShapeKeep : shape.filter((_, i) => !axes.includes(i)) };
}

const cases: [number[], number[]][] = [
  [[5], [0]],
  [[3, 4], [1]],
  [[3, 4], [0]],
  [[2, 3, 5], [0, 2]],
  [[2, 3, 5], [1, 2]],
  [[2, 3, 5], [0, 1, 2]],
  [[1, 7, 1], [1]],
  [[3, 700], [1]], // long rows take the workgroup-per-output kernel
  [[2, 0, 3], [2]],
];

for (const f of ["sum", "mean", "max"] as const) {
  Deno.test(`${f}() over axes matches the f64 reference, with and without keepDims, and its gradient`, async () => {
    for (const [shape, axes] of cases) {
      for (const keepDims of [false, true]) {
        await checkOp({
          name: `${f} ${JSON.stringify(shape)} axes ${axes} keep ${keepDims}`,
          inputs: [{ shape }],
          gpu: (x) => ops[f](x, axes, { keepDims }),
          cpu: (x) => reduceHost(x, axes, f, keepDims),
          tol: 1e-5,
          // Random floats never tie, so max's subgradient is unique and finite differences see it.
          eps: 1e-6,
        });
      }
    }
  });
}

Deno.test("long reductions with many outputs (the chunked kernel) match the f64 reference", async () => {
  // The backward is a broadcast whatever the forward kernel, so these check the forward only: finite
  // differences over 20,000 inputs would take minutes.
  const long: [number[], number[]][] = [
    [[700, 40], [0]], // a bias gradient's shape: many long columns
    [[2, 600, 33], [1]], // outer > 1, and a last chunk shorter than the others
  ];
  for (const f of ["sum", "mean", "max"] as const) {
    for (const [shape, axes] of long) {
      await checkOp({
        name: `${f} ${JSON.stringify(shape)} axes ${axes}`,
        inputs: [{ shape }],
        gpu: (x) => ops[f](x, axes),
        cpu: (x) => reduceHost(x, axes, f, false),
        tol: 1e-5,
        noGrad: true,
      });
    }
  }
});

Deno.test("max() shares the gradient equally among tied maxima", async () => {
  await checkOp({
    name: "max ties",
    inputs: [{ shape: [2, 3], data: [1, 3, 3, 2, 2, 0] }],
    gpu: (x) => ops.max(x, 1),
    cpu: (x) => reduceHost(x, [1], "max", false),
    noGrad: true,
  });
  const x = ops.tensor([1, 3, 3, 2, 2, 0], [2, 3], { requiresGrad: true });
  ops.backward(ops.sum(ops.max(x, 1)));
  const g = await x.grad!.toArray();
  if (JSON.stringify([...g]) !== JSON.stringify([0, 0.5, 0.5, 0.5, 0.5, 0])) throw new Error(`got ${g}`);
});

Deno.test("sumTo() inverts broadcasting and refuses shapes that do not broadcast", async () => {
  await checkOp({
    name: "sumTo",
    inputs: [{ shape: [2, 3, 4] }],
    gpu: (x) => ops.sumTo(x, [3, 1]),
    cpu: (x) => {
      const r = reduceHost(x, [0, 2], "sum", true);
      return { data: r.data, shape: [3, 1] };
    },
  });
  let message = "";
  try {
    ops.sumTo(ops.zeros([2, 3]), [4]);
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.includes("[2, 3]") || !message.includes("[4]")) throw new Error(`unclear error: ${message}`);
});
