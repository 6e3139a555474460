/**
 * Test helpers: one shared GPU per test file, and {@link checkOp}, which checks an op's forward against a
 * CPU reference in f64 and its backward against central finite differences of that same reference.
 */

import { type Gpu, requestGpu } from "../src/gpu/device.ts";
import { backward } from "../src/tensor/autograd.ts";
import { Rng } from "../src/tensor/random.ts";
import { setGpu, sizeOf, type Tensor, tensor, tidy } from "../src/tensor/tensor.ts";
import { mul } from "../src/ops/binary.ts";
import { sum } from "../src/ops/reduce.ts";

let shared: Gpu | null = null;

/** The test process's GPU, made once and set as current. */
export async function gpu(): Promise<Gpu> {
  if (shared === null) {
    shared = await requestGpu();
    setGpu(shared);
  }
  return shared;
}

/** A CPU array with its shape. */
export interface Host {
  data: Float64Array;
  shape: number[];
}

/** How {@link checkOp} makes one input. */
export interface InputSpec {
  shape: number[];
  /** Explicit values (otherwise uniform in `range`). */
  data?: ArrayLike<number>;
  /** Value range for random values. Default [-2, 2]. */
  range?: [number, number];
  /** An i32 input (ids, indices): no gradient. Give `data` or an integer `range` (exclusive max). */
  int?: boolean;
  /** No gradient check for this input. */
  noGrad?: boolean;
}

/** Max |a - b| over max(1, max |b|): the tolerance measure used everywhere in these tests. */
export function relError(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
): { err: number; at: number } {
  if (actual.length !== expected.length) {
    throw new Error(`length ${actual.length} != expected ${expected.length}`);
  }
  let worst = 0, at = -1, scale = 1;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs(actual[i] - expected[i]);
    if (!(e <= worst)) { // catches NaN too
      worst = Number.isNaN(e) ? Infinity : e;
      at = i;
    }
  }
  return { err: worst / scale, at };
}

/** Throws with the name and the worst element when `actual` is not within `tol` of `expected`. */
export function assertClose(
  name: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
): void {
  const { err, at } = relError(actual, expected);
  if (!(err <= tol)) {
    throw new Error(
      `${name}: relative error ${err.toExponential(2)} > ${tol} at element ${at}: got ${
        actual[at]
      }, expected ${expected[at]}`,
    );
  }
}

/**
 * Checks `gpuFn` against `cpuFn` (f64): the forward values, then the gradient of `sum(out * w)` for random
 * `w` with respect to every float input, against central differences of the CPU reference.
 */
export async function checkOp(options: {
  name: string;
  inputs: InputSpec[];
  gpu: (...xs: Tensor[]) => Tensor;
  cpu: (...xs: Host[]) => Host;
  seed?: number;
  /** Forward tolerance (relative, see relError). Default 1e-5. */
  tol?: number;
  /** Gradient tolerance. Default 1e-3. */
  gradTol?: number;
  /** Finite-difference step. Default 1e-5. */
  eps?: number;
  /** Skip the gradient check (ops without one, like comparisons). */
  noGrad?: boolean;
}): Promise<void> {
  await gpu();
  const rng = new Rng(options.seed ?? 1);
  const hosts: Host[] = options.inputs.map((spec) => {
    const n = sizeOf(spec.shape);
    const [lo, hi] = spec.range ?? [-2, 2];
    const data = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      if (spec.data) data[i] = spec.data[i];
      else if (spec.int) data[i] = lo + rng.int(hi - lo);
      else data[i] = Math.fround(lo + (hi - lo) * rng.uniform());
    }
    return { data, shape: spec.shape };
  });
  const expected = options.cpu(...hosts);
  const weights = new Float64Array(expected.data.length);
  for (let i = 0; i < weights.length; i++) weights[i] = Math.fround(rng.uniform() * 2 - 1);
  const wantGrad = !options.noGrad;

  const xs = options.inputs.map((spec, i) =>
    tensor(spec.int ? Int32Array.from(hosts[i].data) : Float32Array.from(hosts[i].data), spec.shape, {
      requiresGrad: wantGrad && !spec.int && !spec.noGrad,
    })
  );
  const out = tidy(() => {
    const y = options.gpu(...xs);
    if (wantGrad) {
      const w = tensor(Float32Array.from(weights), [...y.shape]);
      backward(sum(mul(y, w)));
    }
    return y;
  });
  if (JSON.stringify(out.shape) !== JSON.stringify(expected.shape)) {
    throw new Error(`${options.name}: output shape [${out.shape}] != expected [${expected.shape}]`);
  }
  assertClose(`${options.name} forward`, await out.toArray(), expected.data, options.tol ?? 1e-5);
  out.dispose();

  if (wantGrad) {
    const eps = options.eps ?? 1e-5;
    const objective = () => {
      const y = options.cpu(...hosts).data;
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i] * weights[i];
      return s;
    };
    for (let k = 0; k < xs.length; k++) {
      if (!xs[k].requiresGrad) continue;
      const data = hosts[k].data;
      const fd = new Float64Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const v = data[i];
        data[i] = v + eps;
        const up = objective();
        data[i] = v - eps;
        const down = objective();
        data[i] = v;
        fd[i] = (up - down) / (2 * eps);
      }
      const g = xs[k].grad;
      const got = g ? await g.toArray() : new Float32Array(data.length);
      assertClose(`${options.name} grad of input ${k}`, got, fd, options.gradTol ?? 1e-3);
    }
  }
  for (const x of xs) {
    x.grad?.dispose();
    x.dispose();
  }
}

/** Elementwise map of a host array. */
export function map(x: Host, f: (v: number, i: number) => number): Host {
  return { data: x.data.map(f), shape: [...x.shape] };
}
