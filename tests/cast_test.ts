import assert from "node:assert/strict";
import { halfToNumber, numberToHalf } from "../src/tensor/half.ts";
import { add, mul } from "../src/ops/binary.ts";
import { cast } from "../src/ops/cast.ts";
import { gather } from "../src/ops/gather.ts";
import { linear, matmul } from "../src/ops/matmul.ts";
import { Linear } from "../src/nn/linear.ts";
import { permute } from "../src/ops/permute.ts";
import { sum } from "../src/ops/reduce.ts";
import { concat, slice } from "../src/ops/slice.ts";
import { exp } from "../src/ops/unary.ts";
import { backward } from "../src/tensor/autograd.ts";
import { Rng } from "../src/tensor/random.ts";
import { full, tensor, tidy, zeros } from "../src/tensor/tensor.ts";
import { checkOp, gpu } from "./_harness.ts";

const HAS_F16 = (await gpu()).hasF16;
const ignore = !HAS_F16;

/** The value `v` becomes in f16 (round to nearest even), as the CPU computes it. */
const roundF16 = (v: number) => halfToNumber(numberToHalf(v));

/** Equal as float32 values, NaN equal to NaN and +0 different from -0. */
function assertSameValues(name: string, actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  assert.equal(actual.length, expected.length, `${name}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      throw new Error(`${name}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

// [input, its f16 value]: ties to even, the edges of the range, subnormals, specials.
const ROUNDING: [number, number][] = [
  [1 + 2 ** -11, 1], // halfway between 1 and 1 + 2^-10: to the even one
  [1 + 3 * 2 ** -11, 1 + 2 ** -9], // halfway between 1 + 2^-10 and 1 + 2^-9: to the even one
  [1 + 2 ** -11 + 2 ** -20, 1 + 2 ** -10], // just past halfway: up
  [1 - 2 ** -12, 1], // halfway below 1 (the spacing halves): to the even one, 1
  [-2.5, -2.5],
  [0.1, 0.0999755859375],
  [65504, 65504], // the largest f16
  [65519, 65504], // below the halfway point to 2^16
  [65520, Infinity], // halfway: to even, which is past the range
  [1e6, Infinity],
  [-1e6, -Infinity],
  [2 ** -14, 2 ** -14], // the smallest normal
  [2 ** -14 - 2 ** -24, 2 ** -14 - 2 ** -24], // the largest subnormal
  [2 ** -24, 2 ** -24], // the smallest subnormal
  [1.5 * 2 ** -24, 2 ** -23], // halfway between 2^-24 and 2^-23: to the even one
  [2 ** -25, 0], // halfway between 0 and 2^-24: to the even one, 0
  [1.25 * 2 ** -25, 2 ** -24],
  [1e-10, 0],
  [-1e-10, -0], // the sign survives underflow
  [-0, -0],
  [Infinity, Infinity],
  [-Infinity, -Infinity],
  [NaN, NaN],
];

Deno.test({
  name:
    "cast() to f16 rounds to nearest even like tensor({ dtype: 'f16' }), overflows to inf, keeps subnormals",
  ignore,
  fn: async () => {
    await gpu();
    const input = ROUNDING.map(([v]) => v);
    const expected = ROUNDING.map(([, e]) => e);
    // The CPU helper, the upload and the GPU cast agree with the table.
    assertSameValues("numberToHalf", input.map(roundF16), expected);
    const [viaCast, uploaded, back] = tidy(() => {
      const x = tensor(input, [input.length]);
      const h = cast(x, "f16");
      assert.equal(h.dtype, "f16");
      return [h, tensor(input, [input.length], { dtype: "f16" }), cast(h, "f32")];
    });
    assertSameValues("cast to f16", await viaCast.toArray(), expected);
    assertSameValues("tensor(..., { dtype: 'f16' })", await uploaded.toArray(), expected);
    assert.equal(back.dtype, "f32");
    assertSameValues("cast back to f32", await back.toArray(), expected);
    for (const t of [viaCast, uploaded, back]) t.dispose();
  },
});

Deno.test({
  name: "cast() matches the CPU rounding on random f32 bit patterns and is exact on every f16 value",
  ignore,
  fn: async () => {
    await gpu();
    // 20001 random f32 bit patterns: every exponent, so normals, subnormals, overflow, infinities and NaNs.
    const rng = new Rng(7);
    const bits = new Uint32Array(20001);
    for (let i = 0; i < bits.length; i++) bits[i] = (rng.int(0x10000) << 16 | rng.int(0x10000)) >>> 0;
    const values = new Float32Array(bits.buffer);
    // All 65536 f16 bit patterns (the NaNs come back as NaN, whichever).
    const halves = Float32Array.from({ length: 0x10000 }, (_, h) => halfToNumber(h));
    const [rounded, widened, again] = tidy(() => {
      const h = tensor(halves, [halves.length], { dtype: "f16" });
      const w = cast(h, "f32");
      return [cast(tensor(values, [values.length]), "f16"), w, cast(w, "f16")];
    });
    assertSameValues("random f32 to f16", await rounded.toArray(), Array.from(values, roundF16));
    assertSameValues("every f16 to f32", await widened.toArray(), halves);
    assertSameValues("every f16 to f32 and back", await again.toArray(), halves);
    for (const t of [rounded, widened, again]) t.dispose();
  },
});

Deno.test({
  name: "cast() of odd and tiny sizes (n = 0, 1, 2, 3, 1001) converts every element",
  ignore,
  fn: async () => {
    await gpu();
    const rng = new Rng(3);
    for (const n of [0, 1, 2, 3, 1001]) {
      const data = Float32Array.from({ length: n }, () => (rng.uniform() - 0.5) * 200);
      const [h, f] = tidy(() => {
        const h = cast(tensor(data, [n]), "f16");
        return [h, cast(h, "f32")];
      });
      assert.deepEqual(h.shape, [n]);
      assertSameValues(`n = ${n} to f16`, await h.toArray(), Array.from(data, roundF16));
      assertSameValues(`n = ${n} back to f32`, await f.toArray(), Array.from(data, roundF16));
      h.dispose();
      f.dispose();
    }
    // Shapes are kept, f16 full() and zeros() round their fill value.
    const [h, z] = tidy(() => [cast(full([3, 1, 5], 0.1), "f16"), zeros([2, 3], { dtype: "f16" })]);
    assert.deepEqual(h.shape, [3, 1, 5]);
    assertSameValues("full", await h.toArray(), new Array(15).fill(roundF16(0.1)));
    assertSameValues("zeros", await z.toArray(), new Array(6).fill(0));
    h.dispose();
    z.dispose();
  },
});

Deno.test({
  name: "cast() passes the gradient through as f32, also to an f16 leaf",
  ignore,
  fn: async () => {
    // Values exact in f16, so the f64 reference of a round trip is the identity, and its finite
    // differences give the gradient of the straight-through cast.
    const rng = new Rng(5);
    const data = Array.from({ length: 35 }, () => roundF16(rng.uniform() * 4 - 2));
    await checkOp({
      name: "cast f32 -> f16 -> f32",
      inputs: [{ shape: [5, 7], data }],
      gpu: (x) => cast(cast(x, "f16"), "f32"),
      cpu: (x) => x,
      tol: 0,
    });
    await checkOp({
      name: "exp of a cast to f16 and back",
      inputs: [{ shape: [35], data }],
      gpu: (x) => exp(cast(cast(x, "f16"), "f32")),
      cpu: (x) => ({ data: x.data.map(Math.exp), shape: x.shape }),
    });
    // An f16 leaf gets an f32 gradient of its shape.
    const x = tensor(data, [5, 7], { dtype: "f16", requiresGrad: true });
    const w = tensor(data.map((v) => v * 3), [5, 7]);
    tidy(() => backward(sum(mul(cast(x, "f32"), w))));
    assert.ok(x.grad !== null);
    assert.equal(x.grad.dtype, "f32");
    assert.deepEqual(x.grad.shape, [5, 7]);
    assertSameValues("grad of the f16 leaf", await x.grad.toArray(), Float32Array.from(data, (v) => v * 3));
    x.grad.dispose();
    x.dispose();
    w.dispose();
  },
});

Deno.test({
  name: "cast() to the same dtype is a view; ops that take f32 refuse f16 with what to do",
  ignore,
  fn: async () => {
    const g = await gpu();
    tidy(() => {
      const x = tensor([1, 2, 3], [3]);
      const before = g.counters.dispatches;
      const same = cast(x, "f32");
      assert.equal(same.buffer, x.buffer);
      const h = cast(x, "f16");
      assert.equal(cast(h, "f16").buffer, h.buffer);
      assert.equal(g.counters.dispatches - before, 1, "only the f32 -> f16 cast dispatches");

      const ids = tensor(new Int32Array([1, 2, 3]), [3]);
      assert.throws(() => cast(ids, "f16"), {
        name: "TypeError",
        message: /^cast: converts f32 and f16 tensors/,
      });
      assert.throws(() => cast(x, "i32" as "f32"), {
        name: "TypeError",
        message: /^cast: converts between f32/,
      });
      // Elementwise ops and reductions: expectF32 says to cast.
      assert.throws(() => add(h, h), {
        name: "TypeError",
        message: "add: expected f32 input but input 0 is f16 tensor [3]: f16 is a storage type for matmul " +
          'and linear operands; cast(x, "f32") first',
      });
      assert.throws(() => sum(h), /sum: expected f32 input but input 0 is f16 tensor \[3\]/);
      h.name = "w16";
      assert.throws(() => exp(h), /exp: expected f32 input but input 0 is tensor "w16" \[3\] \(f16\)/);
      // Ops that move 32-bit words.
      const m = cast(tensor([1, 2, 3, 4, 5, 6], [2, 3]), "f16");
      assert.throws(
        () => permute(m, [1, 0]),
        /permute: input 0 is f16 tensor \[2, 3\], but permute moves 32-bit/,
      );
      assert.throws(
        () => slice(m, 1, 1),
        /slice: .* moves 32-bit elements \(f32 or i32\); cast\(x, "f32"\) first/,
      );
      assert.throws(() => concat([m, m], 0), /concat: input 0 is f16/);
      assert.throws(() => gather(m, 0, tensor(new Int32Array([1]), [1])), /gather: input 0 is f16/);
      // matmul takes f16 operands, but an f32 bias only, and no i32.
      assert.throws(() => matmul(m, m, { transposeB: true, bias: cast(tensor([1, 2]), "f16") }), {
        name: "TypeError",
        message: /^matmul: the bias must be f32/,
      });
      assert.throws(() => linear(m, m, undefined, { precision: "f8" as "f16" }), /linear: precision must be/);
    });
  },
});

Deno.test({
  name: "cast(), matmul(), linear(precision f16) and setPrecision name the adapter when it has no shader-f16",
  ignore,
  fn: async () => {
    const g = await gpu();
    const adapter = (g.info as GPUAdapterInfo & { description?: string }).description || g.info.vendor;
    const escaped = adapter.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    tidy(() => {
      const x = tensor([1, 2, 3, 4], [2, 2]);
      const h = cast(x, "f16");
      Object.defineProperty(g, "hasF16", { value: false, configurable: true });
      try {
        const pattern = (op: string) =>
          new RegExp(
            `^${op}: f16 tensors need the WebGPU feature 'shader-f16', which the adapter "${escaped}"`,
          );
        assert.throws(() => cast(x, "f16"), { message: pattern("cast") });
        assert.throws(() => matmul(x, h), { message: pattern("matmul") });
        assert.throws(() => linear(x, x, undefined, { precision: "f16" }), { message: pattern("cast") });
        const layer = new Linear(2, 2, new Rng(0));
        assert.throws(() => layer.setPrecision("f16"), { message: pattern("precision f16") });
        assert.equal(layer.precision, "f32");
        layer.dispose();
        // f32 work does not need it.
        matmul(x, x);
        linear(x, x);
      } finally {
        Object.defineProperty(g, "hasF16", { value: true, configurable: true });
      }
    });
    await g.sync();
  },
});
