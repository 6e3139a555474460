import assert from "node:assert/strict";
import { linear, matmul, type MatmulOptions } from "../src/ops/matmul.ts";
import { type Tensor, tensor, tidy } from "../src/tensor/tensor.ts";
import { checkOp, gpu, type Host } from "./_harness.ts";

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
    }`,
    inputs,
    gpu: (a, b, bias) => matmul(a, b, { transposeA, transposeB, bias, tiles: options.tiles }),
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
    assert.throws(
      () => matmul(a, a, { tiles: { wgX: 8, wgY: 8, tileK: 6 } }),
      /matmul: tiles .* are not usable/,
    );
    assert.throws(
      () => matmul(a, a, { tiles: { wgX: 8, wgY: 8, tileK: 8, tm: 2 } }),
      /matmul: tiles .* are not usable/,
    );
    assert.throws(
      () => matmul(a, a, { tiles: { wgX: 64, wgY: 64, tileK: 8 } }),
      /matmul: tiles .* are not usable/,
    );
  });
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
      message: /^matmul: expected f32 input/,
    });
    assert.throws(() => matmul(f([2, 3]), tensor(new Int32Array(12), [3, 4])), TypeError);
  });
});
