import assert from "node:assert/strict";
import {
  formatTiles,
  linear,
  matmul,
  matmulCandidates,
  type MatmulOptions,
  type MatmulTiles,
  matmulTuning,
  setMatmulTiles,
  tuneMatmul,
} from "../src/ops/matmul.ts";
import { halfToNumber, numberToHalf } from "../src/tensor/half.ts";
import { cast } from "../src/ops/cast.ts";
import { mul } from "../src/ops/binary.ts";
import { type ActivationName, gelu, quickGelu } from "../src/ops/unary.ts";
import { sum } from "../src/ops/reduce.ts";
import { backward } from "../src/tensor/autograd.ts";
import { Rng } from "../src/tensor/random.ts";
import { type Tensor, tensor, tidy } from "../src/tensor/tensor.ts";
import { assertClose, checkOp, gpu, type Host, relError } from "./_harness.ts";

/** f64 reference: op(a) @ op(b) (+ bias) with NumPy-broadcast batch dims. */
function matmulHost(a: Host, b: Host, transA = false, transB = false, bias?: Host): Host {
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const m = transA ? ac : ar, k = transA ? ar : ac, n = transB ? br : bc;
  const aBatch = a.shape.slice(0, -2), bBatch = b.shape.slice(0, -2);
  const rank = Math.max(aBatch.length, bBatch.length);
  const pa = [...Array(rank - aBatch.length).fill(1), ...aBatch];
  const pb = [...Array(rank - bBatch.length).fill(1), ...bBatch];
  const batch = pa.map((d, i) => (d === 1 ? pb[i] : d));
  const total = batch.reduce((x, y) => x * y, 1);
  const data = new Float64Array(total * m * n);
  for (let z = 0; z < total; z++) {
    // Batch coordinates of z, then each operand's own batch index (0 along its broadcast dims).
    let rest = z, za = 0, zb = 0, sa = 1, sb = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const c = rest % batch[d];
      rest = Math.floor(rest / batch[d]);
      if (pa[d] !== 1) za += c * sa;
      if (pb[d] !== 1) zb += c * sb;
      sa *= pa[d];
      sb *= pb[d];
    }
    const oa = za * m * k, ob = zb * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = bias ? bias.data[j] : 0;
        for (let p = 0; p < k; p++) {
          const av = transA ? a.data[oa + p * m + i] : a.data[oa + i * k + p];
          const bv = transB ? b.data[ob + j * k + p] : b.data[ob + p * n + j];
          s += av * bv;
        }
        data[(z * m + i) * n + j] = s;
      }
    }
  }
  return { data, shape: [...batch, m, n] };
}

/** Checks matmul(a, b, options) forward and gradients against the reference. */
async function checkMatmul(
  aShape: number[],
  bShape: number[],
  options: Omit<MatmulOptions, "bias"> & { bias?: boolean; grad?: boolean } = {},
): Promise<void> {
  const { transposeA = false, transposeB = false } = options;
  const n = transposeB ? bShape.at(-2)! : bShape.at(-1)!;
  const inputs = [{ shape: aShape }, { shape: bShape }];
  if (options.bias) inputs.push({ shape: [n] });
  const t = (flag: boolean) => (flag ? "^T" : "");
  await checkOp({
    name: `matmul ${JSON.stringify(aShape)}${t(transposeA)} @ ${JSON.stringify(bShape)}${t(transposeB)}${
      options.bias ? " + bias" : ""
    }${options.tiles ? ` (${formatTiles(options.tiles)})` : ""}${
      options.splitK ? ` split ${options.splitK}` : ""
    }`,
    inputs,
    gpu: (a, b, bias) =>
      matmul(a, b, { transposeA, transposeB, bias, tiles: options.tiles, splitK: options.splitK }),
    cpu: (a, b, bias) => matmulHost(a, b, transposeA, transposeB, bias),
    noGrad: options.grad === false,
  });
}

Deno.test("matmul() of 2-D operands of odd sizes matches the f64 reference and finite differences", async () => {
  // [M, K, N]; 64^3 is checked forward only (finite differences over 8192 inputs would be slow).
  for (const [m, k, n] of [[1, 1, 1], [5, 7, 3], [33, 17, 65], [70, 3, 129], [8, 12, 16]]) {
    await checkMatmul([m, k], [k, n]);
  }
  await checkMatmul([64, 64], [64, 64], { grad: false });
  await checkMatmul([100, 36], [36, 132], { grad: false });
});

Deno.test("matmul() with transposed operands matches the f64 reference, odd and vec4-aligned", async () => {
  // The last case is large enough for the 64 x 64 tiles.
  for (const [m, k, n] of [[6, 5, 7], [8, 12, 4], [37, 20, 9], [65, 9, 70]]) {
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        const aShape = transposeA ? [k, m] : [m, k];
        const bShape = transposeB ? [n, k] : [k, n];
        await checkMatmul(aShape, bShape, { transposeA, transposeB });
      }
    }
  }
});

Deno.test("matmul() broadcasts batch dims like NumPy and sums gradients over them", async () => {
  await checkMatmul([2, 3, 5, 4], [4, 6]); // a weight shared by the batch: dB is one flattened product
  await checkMatmul([2, 1, 5, 4], [3, 4, 6]);
  await checkMatmul([5, 4], [2, 3, 4, 6]);
  await checkMatmul([2, 2, 3, 4], [2, 2, 4, 3]); // [B, H, T, d] @ [B, H, d, T]
  await checkMatmul([2, 2, 3, 4], [2, 2, 3, 4], { transposeB: true }); // q @ k^T
  await checkMatmul([2, 3, 5, 4], [6, 4], { transposeB: true }); // x @ W^T with a 3-D x
  await checkMatmul([3, 4, 5], [2, 1, 4, 6], { transposeA: true });
  await checkMatmul([1, 4, 8], [3, 6, 4], { transposeA: true, transposeB: true });
  // Five alternating broadcast patterns: more batch dims than the kernel's uniform holds.
  await checkMatmul([2, 1, 2, 1, 2, 2, 3], [1, 2, 1, 2, 1, 3, 2]);
});

Deno.test("matmul() adds the bias in its epilogue, with its gradient the sum of dC over rows", async () => {
  await checkMatmul([5, 7], [7, 3], { bias: true });
  await checkMatmul([2, 3, 4, 8], [8, 8], { bias: true }); // vec4 bias path
  await checkMatmul([3, 5, 4], [6, 4], { bias: true, transposeB: true });
  const g = await gpu();
  tidy(() => {
    const before = g.counters.dispatches;
    matmul(tensor(new Float32Array(6), [2, 3]), tensor(new Float32Array(12), [3, 4]), {
      bias: tensor(new Float32Array(4)),
    });
    assert.equal(g.counters.dispatches - before, 1, "bias must not cost a dispatch of its own");
  });
});

Deno.test("matmul() with a size-0 dim gives an empty result, or zeros (plus bias) when K is 0", async () => {
  await checkMatmul([0, 4], [4, 3]);
  await checkMatmul([3, 4], [4, 0]);
  await checkMatmul([3, 0], [0, 4]);
  await checkMatmul([3, 0], [0, 4], { bias: true });
  await checkMatmul([0, 3, 2], [2, 5]);
});

Deno.test("matmul() gives the same result for other tile shapes and refuses unusable ones", async () => {
  await checkMatmul([37, 20], [20, 45], { tiles: { wgX: 4, wgY: 8, tileK: 8 } });
  await checkMatmul([37, 20], [45, 20], { tiles: { wgX: 4, wgY: 2, tileK: 8, tm: 8 }, transposeB: true });
  await checkMatmul([20, 40], [20, 44], { tiles: { wgX: 8, wgY: 4, tileK: 32, tm: 4 }, transposeA: true });
  await checkMatmul([40, 20], [20, 44], {
    tiles: { wgX: 16, wgY: 16, tileK: 16, tm: 8 },
    bias: true,
    grad: false,
  });
  await gpu();
  tidy(() => {
    const a = tensor(new Float32Array(4), [2, 2]);
    const refused: MatmulTiles[] = [
      { wgX: 8, wgY: 8, tileK: 6 },
      { wgX: 8, wgY: 8, tileK: 8, tm: 2 },
      { wgX: 64, wgY: 64, tileK: 8 },
      { kernel: "regs", wgX: 8, wgY: 1, tm: 16, tn: 12 },
      { kernel: "regs", wgX: 8, wgY: 0, tm: 8, tn: 8 },
      { kernel: "tiled", wgX: 8, wgY: 8, tileK: 16, tn: 8 },
    ];
    for (const tiles of refused) {
      assert.throws(() => matmul(a, a, { tiles }), /matmul: tiles .* are not usable/, JSON.stringify(tiles));
    }
  });
});

// Products that between them take every path of both kernels: each transpose, vec4 and element-wise reads
// (a contiguous dim that is or is not a multiple of 4), K a multiple of 4 or not, edges in M and N, a bias
// read as vec4s or element-wise, and broadcast batch dims. [aShape, bShape, options].
const PATHS: [number[], number[], { transposeA?: boolean; transposeB?: boolean; bias?: boolean }][] = [
  [[37, 21], [21, 133], { bias: true }], // nothing is a multiple of 4
  [[24, 40], [44, 24], { transposeA: true, transposeB: true, bias: true }], // all vec4, K % 4 == 0
  [[19, 36], [19, 48], { transposeA: true }], // A^T and B read as vec4s along M and N, K = 19
  [[33, 20], [30, 20], { transposeB: true }], // A and B^T read as vec4s along K, N = 30
  [[2, 1, 6, 8], [3, 8, 20], {}], // broadcast batch dims
];

Deno.test("matmul() gives the f64 result with every tile shape tuneMatmul may pick", async () => {
  const g = await gpu();
  // Both lists, whatever this adapter is: a CPU rasteriser can run the GPU tiles and vice versa.
  const all = [...matmulCandidates(g, "cpu"), ...matmulCandidates(g, "gpu")];
  assert.ok(all.length >= 6, "candidates for both kinds of adapter");
  for (const tiles of all) {
    for (const [aShape, bShape, options] of PATHS) {
      await checkMatmul(aShape, bShape, { ...options, tiles, grad: false });
    }
  }
  // And the shrunk shapes a small output gets from the default tiles (see shrink in matmul.ts).
  for (const [m, n] of [[3, 5], [9, 40], [20, 70]]) await checkMatmul([m, 12], [12, n], { grad: false });
});

Deno.test("matmul() with split K sums the chunks in a fixed order, with the bias added once", async () => {
  const g = await gpu();
  const regs: MatmulTiles = { kernel: "regs", wgX: 8, wgY: 1, tm: 8, tn: 8 };
  const tiled: MatmulTiles = { kernel: "tiled", wgX: 8, wgY: 8, tileK: 16, tm: 4 };
  for (const tiles of [regs, tiled]) {
    // K = 301 in 3 chunks (the last one short and not a multiple of 4), odd N, a bias.
    await checkMatmul([301, 20], [301, 37], { transposeA: true, bias: true, tiles, splitK: 3, grad: false });
    // All vec4 paths, more chunks than the kernel would pick.
    await checkMatmul([16, 256], [256, 24], { bias: true, tiles, splitK: 5, grad: false });
  }
  // Gradients flow through a split product like through any other; an empty K needs no split.
  await checkMatmul([6, 40], [40, 5], { splitK: 2 });
  await checkMatmul([3, 0], [0, 5], { splitK: 2, bias: true });
  await checkMatmul([12, 256], [256, 8], { splitK: 4, bias: true, grad: false });

  // Split once by default when the output launches too few workgroups, in one extra dispatch; the result
  // is the same bits every time.
  const saved = matmulTuning(g);
  try {
    setMatmulTiles({ ...saved, tiles: regs, splitBelow: 64 }, g);
    const a = tensor(Float32Array.from({ length: 8 * 1024 }, (_, i) => Math.sin(i)), [8, 1024]);
    const b = tensor(Float32Array.from({ length: 1024 * 8 }, (_, i) => Math.cos(i)), [1024, 8]);
    const runs: Tensor[] = [];
    for (let r = 0; r < 2; r++) {
      const before = g.counters.dispatches;
      runs.push(matmul(a, b));
      assert.equal(g.counters.dispatches - before, 2, "the chunks, then their sum");
    }
    assert.deepEqual(await runs[0].toArray(), await runs[1].toArray());
    for (const t of [a, b, ...runs]) t.dispose();
    assert.throws(
      () =>
        matmul(tensor(new Float32Array(16), [2, 2, 4]), tensor(new Float32Array(8), [4, 2]), { splitK: 2 }),
      /matmul: splitK applies to a single product, this one has a batch of 2/,
    );
  } finally {
    setMatmulTiles(saved, g);
  }
});

// ---------------------------------------------------------------------------------------------------------
// The activation epilogue

/** gelu (erf) and quick_gelu in f64. */
function activationHost(act: ActivationName, x: number): number {
  if (act === "quickGelu") return x / (1 + Math.exp(-1.702 * x));
  // erf by its Maclaurin series near 0 and its continued fraction for erfc further out, both in f64.
  const z = Math.abs(x) / Math.SQRT2;
  let erf: number;
  if (z < 2) {
    let term = z, total = z;
    for (let n = 1; n < 60; n++) {
      term *= -z * z / n;
      total += term / (2 * n + 1);
    }
    erf = (2 / Math.sqrt(Math.PI)) * total;
  } else {
    let fraction = 0; // erfc(z) = exp(-z^2) / sqrt(pi) / (z + (1/2) / (z + 1 / (z + (3/2) / (z + ...))))
    for (let n = 60; n >= 1; n--) fraction = (n / 2) / (z + fraction);
    erf = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / (z + fraction);
  }
  return 0.5 * x * (1 + Math.sign(x) * erf);
}

Deno.test("matmul() with an activation epilogue matches the f64 reference and finite differences", async () => {
  for (const act of ["gelu", "quickGelu"] as const) {
    await checkOp({
      name: `matmul + bias + ${act}`,
      inputs: [{ shape: [5, 7] }, { shape: [6, 7] }, { shape: [6] }],
      gpu: (a, b, bias) => matmul(a, b, { transposeB: true, bias, activation: act }),
      cpu: (a, b, bias) => {
        const z = matmulHost(a, b, false, true, bias);
        return { data: z.data.map((v) => activationHost(act, v)), shape: z.shape };
      },
      tol: 1e-5,
      eps: 1e-4,
    });
  }
});

Deno.test("matmul() with an activation gives gelu(matmul()) to the bit, on every kernel, split or not", async () => {
  await gpu();
  const rng = new Rng(11);
  const regs: MatmulTiles = { kernel: "regs", wgX: 8, wgY: 1, tm: 8, tn: 8 };
  const tiled: MatmulTiles = { kernel: "tiled", wgX: 8, wgY: 8, tileK: 16, tm: 4 };
  // [M, K] @ [K, N]: vec4 rows (N = 24), scalar rows (N = 37), a long K split in 3 chunks.
  const cases: [number, number, number, number | undefined][] = [[16, 32, 24, undefined], [
    9,
    13,
    37,
    undefined,
  ], [
    8,
    301,
    20,
    3,
  ]];
  for (const act of ["gelu", "quickGelu"] as const) {
    const apply = act === "gelu" ? gelu : quickGelu;
    for (const tiles of [regs, tiled]) {
      for (const [m, k, n, splitK] of cases) {
        const values = (count: number) => Float32Array.from({ length: count }, () => rng.uniform() * 4 - 2);
        const a = tensor(values(m * k), [m, k], { requiresGrad: true });
        const b = tensor(values(k * n), [k, n], { requiresGrad: true });
        const bias = tensor(values(n), [n], { requiresGrad: true });
        const dy = tensor(values(m * n), [m, n]);
        const run = async (fused: boolean) => {
          const y = tidy(() => {
            const out = fused
              ? matmul(a, b, { bias, tiles, splitK, activation: act })
              : apply(matmul(a, b, { bias, tiles, splitK }));
            backward(sum(mul(out, dy)));
            return out;
          });
          const got = [
            await y.toArray(),
            await a.grad!.toArray(),
            await b.grad!.toArray(),
            await bias.grad!.toArray(),
          ];
          for (const t of [y, a.grad!, b.grad!, bias.grad!]) t.dispose();
          a.grad = b.grad = bias.grad = null;
          return got;
        };
        const [fused, plain] = [await run(true), await run(false)];
        const what = `${act} ${formatTiles(tiles)} [${m}x${k}] @ [${k}x${n}] split ${splitK ?? 1}`;
        fused.forEach((x, i) => assert.deepEqual(x, plain[i], `${what}: output ${i} differs`));
        for (const t of [a, b, bias, dy]) t.dispose();
      }
    }
  }
});

Deno.test("linear() with an activation is one dispatch and refuses an unknown one", async () => {
  const g = await gpu();
  const x = tensor(new Float32Array(12).fill(0.5), [3, 4]);
  const w = tensor(new Float32Array(8).fill(0.25), [2, 4]);
  g.resetCounters();
  const y = linear(x, w, undefined, { activation: "gelu" });
  assert.equal(g.counters.dispatches, 1);
  assertClose("gelu(0.5)", await y.toArray(), new Array(6).fill(activationHost("gelu", 0.5)), 1e-6);
  assert.throws(() => matmul(x, w, { transposeB: true, activation: "relu" as "gelu" }), /activation must be/);
  for (const t of [x, w, y]) t.dispose();
});

Deno.test("tuneMatmul() times candidates, installs the fastest for the adapter, and it can be restored", async () => {
  const g = await gpu();
  const saved = matmulTuning(g);
  try {
    // Two cheap candidates and one round, to keep the test short (a real tuning takes ~1.5 s on llvmpipe).
    const candidates: MatmulTiles[] = [
      { kernel: "regs", wgX: 8, wgY: 4, tm: 8, tn: 8 },
      { kernel: "tiled", wgX: 8, wgY: 8, tileK: 16, tm: 4 },
    ];
    const tuned = await tuneMatmul(g, { candidates, rounds: 1 });
    assert.equal(tuned.source, "tuned");
    assert.ok(candidates.some((c) => formatTiles(c) === formatTiles(tuned.tiles)), formatTiles(tuned.tiles));
    assert.ok(Object.values(tuned.measured!).every((x) => x > 0), JSON.stringify(tuned.measured));
    assert.deepEqual(matmulTuning(g), tuned);
    // A saved tuning goes back in through JSON (what a CLI would persist).
    const restored = setMatmulTiles(JSON.parse(JSON.stringify(saved)), g);
    assert.equal(restored.source, "set");
    assert.deepEqual(restored.tiles, saved.tiles);
    assert.throws(
      () => setMatmulTiles({ ...saved, adapter: "another|gpu||" }, g),
      /the tuning is for adapter/,
    );
    assert.throws(() => setMatmulTiles({ kernel: "regs", wgX: 8, wgY: 1, tm: 3 }, g), /are not usable/);
  } finally {
    setMatmulTiles(saved, g);
  }
});

Deno.test("matmul() splits a batch of more than 65535 matrices over several dispatches", async () => {
  const g = await gpu();
  const batch = 65537;
  const aData = Float32Array.from({ length: batch * 2 }, (_, i) => i % 1000);
  const bData = [1, 2, 3, 4, 5, 6];
  const out = tidy(() => {
    const before = g.counters.dispatches;
    // One thread per 4 x 4 tile keeps this quick on a software rasteriser.
    const c = matmul(tensor(aData, [batch, 1, 2]), tensor(bData, [2, 3]), {
      tiles: { wgX: 1, wgY: 1, tileK: 4 },
    });
    assert.equal(g.counters.dispatches - before, 2);
    return c;
  });
  const got = await out.toArray();
  out.dispose();
  for (const z of [0, 1, 65534, 65535, 65536]) {
    for (let j = 0; j < 3; j++) {
      assert.equal(
        got[z * 3 + j],
        aData[2 * z] * bData[j] + aData[2 * z + 1] * bData[3 + j],
        `batch ${z} column ${j}`,
      );
    }
  }
});

Deno.test("linear() matches x @ W^T + b for a 3-D input, in one dispatch", async () => {
  const lin = (x: Host, w: Host, b?: Host) => {
    const y = matmulHost({ data: x.data, shape: [6, 5] }, w, false, true, b);
    return { data: y.data, shape: [2, 3, 4] };
  };
  await checkOp({
    name: "linear with bias",
    inputs: [{ shape: [2, 3, 5] }, { shape: [4, 5] }, { shape: [4] }],
    gpu: (x, w, b) => linear(x, w, b),
    cpu: lin,
  });
  await checkOp({
    name: "linear without bias",
    inputs: [{ shape: [2, 3, 5] }, { shape: [4, 5] }],
    gpu: (x, w) => linear(x, w),
    cpu: (x, w) => lin(x, w),
  });
  const g = await gpu();
  tidy(() => {
    const before = g.counters.dispatches;
    const y = linear(
      tensor(new Float32Array(30), [2, 3, 5]),
      tensor(new Float32Array(20), [4, 5]),
      tensor([1, 2, 3, 4]),
    );
    assert.deepEqual(y.shape, [2, 3, 4]);
    assert.equal(g.counters.dispatches - before, 1);
    assert.throws(
      () => linear(tensor(new Float32Array(6), [2, 3]), tensor(new Float32Array(8), [2, 4])),
      /linear: expected/,
    );
  });
});

Deno.test("matmul() names both shapes when they do not fit and refuses i32 input", async () => {
  await gpu();
  tidy(() => {
    const f = (shape: number[]) => tensor(new Float32Array(shape.reduce((x, y) => x * y, 1)), shape);
    assert.throws(() => matmul(f([2, 3]), f([4, 5])), {
      name: "RangeError",
      message: "matmul: inner dimensions differ: [2, 3] @ [4, 5]",
    });
    assert.throws(
      () => matmul(f([2, 3]), f([2, 5]), { transposeB: true }),
      /inner dimensions differ: \[2, 3\] @ \[2, 5\]\^T/,
    );
    assert.throws(
      () => matmul(f([2, 2, 3]), f([3, 3, 4])),
      /matmul: batch dimensions do not broadcast: \[2, 2, 3\] @ \[3, 3, 4\]/,
    );
    assert.throws(() => matmul(f([3]), f([3, 4])), /matmul: operands need rank >= 2, got \[3\] @ \[3, 4\]/);
    assert.throws(() => matmul(f([2, 3]), f([3, 4]), { bias: f([3]) }), /matmul: bias must be \[4\]/);
    const ids: Tensor = tensor(new Int32Array(6), [2, 3]);
    assert.throws(() => matmul(ids, f([3, 4])), {
      name: "TypeError",
      message:
        /^matmul: expected f32 or f16 input but input 0 is i32 tensor \[2, 3\]: an i32 tensor holds ids/,
    });
    assert.throws(() => matmul(f([2, 3]), tensor(new Int32Array(12), [3, 4])), TypeError);
  });
});

// ---------------------------------------------------------------------------------------------------------
// f16 operands: f16 storage, f32 sums

const HAS_F16 = (await gpu()).hasF16;

/** The value `v` becomes in f16 (round to nearest even). */
const roundF16 = (v: number) => halfToNumber(numberToHalf(v));

/** Which operands are f16, for test names. */
const f16Name = (a: boolean, b: boolean) => (a && b ? "f16 A and B" : a ? "f16 A" : "f16 B");

/** Random f32 values in [-2, 2). */
function randomValues(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, () => Math.fround(4 * rng.uniform() - 2));
}

/**
 * Checks matmul with A and/or B cast to f16 against the f64 product of the f16-rounded inputs, at 1e-5 (the
 * f32 tests' tolerance): forward on values that f16 rounds, then forward and gradients (through the casts)
 * on values exact in f16, where the reference's finite differences are the product's gradient.
 */
async function checkMatmulF16(
  aShape: number[],
  bShape: number[],
  options: Omit<MatmulOptions, "bias"> & { f16A: boolean; f16B: boolean; bias?: boolean; grad?: boolean },
): Promise<void> {
  const { transposeA = false, transposeB = false, f16A, f16B } = options;
  const n = transposeB ? bShape.at(-2)! : bShape.at(-1)!;
  const t = (flag: boolean) => (flag ? "^T" : "");
  const name = `matmul ${JSON.stringify(aShape)}${t(transposeA)} @ ${JSON.stringify(bShape)}${t(transposeB)}${
    options.bias ? " + bias" : ""
  }, ${f16Name(f16A, f16B)}${options.tiles ? ` (${formatTiles(options.tiles)})` : ""}${
    options.splitK ? ` split ${options.splitK}` : ""
  }`;
  const size = (shape: number[]) => shape.reduce((x, y) => x * y, 1);
  const rng = new Rng(aShape.length * 1000 + size(aShape) + size(bShape));
  const gpuFn = (a: Tensor, b: Tensor, bias?: Tensor) =>
    matmul(f16A ? cast(a, "f16") : a, f16B ? cast(b, "f16") : b, {
      transposeA,
      transposeB,
      bias,
      tiles: options.tiles,
      splitK: options.splitK,
    });
  const round = (x: Host, f16: boolean): Host => (f16 ? { data: x.data.map(roundF16), shape: x.shape } : x);
  const aData = randomValues(rng, size(aShape));
  const bData = randomValues(rng, size(bShape));
  const inputs = [{ shape: aShape, data: aData }, { shape: bShape, data: bData }];
  if (options.bias) inputs.push({ shape: [n], data: randomValues(rng, n) });
  // 1. Values f16 rounds: the kernel must see the rounded ones, and sum them in f32.
  await checkOp({
    name: `${name}, rounded inputs`,
    inputs,
    gpu: gpuFn,
    cpu: (a, b, bias) => matmulHost(round(a, f16A), round(b, f16B), transposeA, transposeB, bias),
    noGrad: true,
  });
  if (options.grad === false) return;
  // 2. Values exact in f16: the gradients of A and B (f32, through the casts) and of the bias.
  const exact = inputs.map((spec, i) => ({ ...spec, data: i < 2 ? spec.data.map(roundF16) : spec.data }));
  await checkOp({
    name: `${name}, gradients`,
    inputs: exact,
    gpu: gpuFn,
    cpu: (a, b, bias) => matmulHost(a, b, transposeA, transposeB, bias),
  });
}

/** Every combination of f16 operands. */
const F16_PAIRS = [{ f16A: true, f16B: false }, { f16A: false, f16B: true }, { f16A: true, f16B: true }];

Deno.test({
  name: "matmul() with f16 A, B or both sums the f16-rounded values in f32, forward and backward",
  ignore: !HAS_F16,
  fn: async () => {
    for (const pair of F16_PAIRS) {
      for (const [m, k, n] of [[1, 1, 1], [5, 7, 3], [8, 12, 16], [13, 9, 21]]) {
        await checkMatmulF16([m, k], [k, n], pair);
      }
      await checkMatmulF16([33, 17], [17, 65], { ...pair, grad: false });
    }
    await checkMatmulF16([100, 36], [36, 132], { f16A: true, f16B: true, grad: false });
  },
});

Deno.test({
  name: "matmul() with f16 operands and transposes, batch broadcasting and a bias",
  ignore: !HAS_F16,
  fn: async () => {
    // Both operands f16 through every case; one operand f16 (the other build) through fewer.
    const both = { f16A: true, f16B: true };
    for (const pair of F16_PAIRS) {
      const shapes = pair === F16_PAIRS[2] ? [[6, 5, 7], [8, 12, 4], [37, 20, 9]] : [[6, 5, 7]];
      for (const [m, k, n] of shapes) {
        for (const transposeA of [false, true]) {
          for (const transposeB of [false, true]) {
            const aShape = transposeA ? [k, m] : [m, k];
            const bShape = transposeB ? [n, k] : [k, n];
            await checkMatmulF16(aShape, bShape, { ...pair, transposeA, transposeB, grad: m < 30 });
          }
        }
      }
      await checkMatmulF16([2, 3, 5, 4], [4, 6], pair); // a shared weight: dB is one flattened product
      await checkMatmulF16([3, 5, 4], [6, 4], { ...pair, bias: true, transposeB: true }); // linear's product
    }
    await checkMatmulF16([2, 1, 5, 4], [3, 4, 6], both);
    await checkMatmulF16([2, 2, 3, 4], [2, 2, 3, 4], { ...both, transposeB: true }); // q @ k^T
    await checkMatmulF16([3, 4, 5], [2, 1, 4, 6], { ...both, transposeA: true });
    // More broadcast patterns than the kernel's uniform holds (operands materialised in f32).
    await checkMatmulF16([2, 1, 2, 1, 2, 2, 3], [1, 2, 1, 2, 1, 3, 2], both);
    await checkMatmulF16([5, 7], [7, 3], { ...both, bias: true });
    await checkMatmulF16([2, 3, 4, 8], [8, 8], { ...both, bias: true }); // vec4 bias path
  },
});

Deno.test({
  name: "matmul() with f16 operands gives the f64 result with both kernels, every read path, and split K",
  ignore: !HAS_F16,
  fn: async () => {
    const regs: MatmulTiles = { kernel: "regs", wgX: 8, wgY: 1, tm: 8, tn: 8 };
    const tiled: MatmulTiles = { kernel: "tiled", wgX: 8, wgY: 8, tileK: 16, tm: 4 };
    // The element type only changes the reads of A and B, which every tile shape of a kernel shares.
    for (const tiles of [regs, tiled]) {
      for (const pair of F16_PAIRS) {
        for (const [aShape, bShape, options] of PATHS) {
          await checkMatmulF16(aShape, bShape, { ...options, ...pair, tiles, grad: false });
        }
      }
    }
    for (const tiles of [regs, tiled]) {
      for (const pair of F16_PAIRS) {
        // Gradients with the kernel forced (the backward products use it too).
        await checkMatmulF16([9, 13], [13, 10], { ...pair, tiles });
        await checkMatmulF16([12, 9], [10, 12], { ...pair, tiles, transposeA: true, transposeB: true });
        // Split K: a small output, a long K (3 chunks, the last one short and not a multiple of 4).
        await checkMatmulF16([301, 20], [301, 37], {
          ...pair,
          transposeA: true,
          bias: true,
          tiles,
          splitK: 3,
          grad: false,
        });
        await checkMatmulF16([16, 256], [256, 24], { ...pair, bias: true, tiles, splitK: 5, grad: false });
      }
    }
    // The split the tuning picks by itself for a weight gradient's shape.
    await checkMatmulF16([300, 8], [300, 8], { f16A: true, f16B: true, transposeA: true, grad: false });
  },
});

Deno.test({
  name: "matmul() gives f16 leaves f32 gradients: dA = dC @ B^T reads B as stored",
  ignore: !HAS_F16,
  fn: async () => {
    await gpu();
    const rng = new Rng(11);
    const [m, k, n] = [6, 10, 5];
    const aData = randomValues(rng, m * k).map(roundF16);
    const bData = randomValues(rng, k * n).map(roundF16);
    const wData = randomValues(rng, m * n);
    const a = tensor(aData, [m, k], { dtype: "f16", requiresGrad: true });
    const b = tensor(bData, [k, n], { dtype: "f16", requiresGrad: true });
    const y = tidy(() => {
      const y = matmul(a, b);
      backward(sum(mul(y, tensor(wData, [m, n]))));
      return y;
    });
    assert.equal(y.dtype, "f32");
    assert.equal(a.grad!.dtype, "f32");
    assert.equal(b.grad!.dtype, "f32");
    const host = (data: number[], shape: number[]): Host => ({ data: Float64Array.from(data), shape });
    const w = host(wData, [m, n]);
    assertClose(
      "forward",
      await y.toArray(),
      matmulHost(host(aData, [m, k]), host(bData, [k, n])).data,
      1e-5,
    );
    // dA = W @ B^T, dB = A^T @ W
    assertClose("dA", await a.grad!.toArray(), matmulHost(w, host(bData, [k, n]), false, true).data, 1e-5);
    assertClose("dB", await b.grad!.toArray(), matmulHost(host(aData, [m, k]), w, true, false).data, 1e-5);
    for (const t of [y, a.grad!, b.grad!, a, b]) t.dispose();
  },
});

Deno.test({
  name: "linear(precision f16) is the f32 linear of the f16-rounded inputs, within f16 rounding of f32",
  ignore: !HAS_F16,
  fn: async () => {
    await gpu();
    const rng = new Rng(13);
    const [batch, t, inF, outF] = [2, 3, 24, 16];
    const xData = randomValues(rng, batch * t * inF);
    const wData = randomValues(rng, outF * inF).map((v) => v / 4);
    const bData = randomValues(rng, outF);
    const dyData = randomValues(rng, batch * t * outF);
    // Runs linear on leaves made from the data; returns y, dx, dW and db.
    const run = async (x0: number[], w0: number[], precision?: "f16") => {
      const x = tensor(x0, [batch, t, inF], { requiresGrad: true });
      const w = tensor(w0, [outF, inF], { requiresGrad: true });
      const b = tensor(bData, [outF], { requiresGrad: true });
      const y = tidy(() => {
        const y = linear(x, w, b, precision ? { precision } : {});
        backward(sum(mul(y, tensor(dyData, [batch, t, outF]))));
        return y;
      });
      assert.equal(y.dtype, "f32");
      const out = [
        await y.toArray(),
        await x.grad!.toArray(),
        await w.grad!.toArray(),
        await b.grad!.toArray(),
      ];
      for (const tt of [y, x.grad!, w.grad!, b.grad!, x, w, b]) tt.dispose();
      return out;
    };
    const f16 = await run(xData, wData, "f16");
    const f32 = await run(xData, wData);
    const rounded = await run(xData.map(roundF16), wData.map(roundF16));
    const names = ["y", "dx", "dW", "db"];
    names.forEach((what, i) => {
      // Exactly what f16 storage means: the f32 computation on the rounded inputs.
      assertClose(`${what}: f16 vs f32 of rounded inputs`, f16[i], rounded[i], 1e-5);
      // And close to the f32 linear, within f16's rounding of the inputs.
      assertClose(`${what}: f16 vs f32`, f16[i], f32[i], 1e-2);
    });
    // The rounding is visible: the f16 result is not the f32 one.
    assert.ok(relError(f16[0], f32[0]).err > 1e-4, "f16 inputs must differ from the f32 ones");
    // The default is unchanged: one dispatch, no cast.
    const g = await gpu();
    tidy(() => {
      const x = tensor(xData, [batch, t, inF]);
      const w = tensor(wData, [outF, inF]);
      const before = g.counters.dispatches;
      linear(x, w, tensor(bData, [outF]));
      assert.equal(g.counters.dispatches - before, 1);
      linear(x, w, undefined, { precision: "f16" });
      assert.equal(g.counters.dispatches - before, 4, "two casts and the product");
    });
  },
});
