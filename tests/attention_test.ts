import {
  backward,
  broadcastTo,
  concat,
  maskedFill,
  matmul,
  mul,
  noGrad,
  scale,
  slice,
  softmax,
  sum,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from "../mod.ts";
import {
  attention,
  type AttentionOptions,
  mergeHeads,
  packedAttention,
  slotAttention,
  splitHeads,
} from "../src/ops/attention.ts";
import { isCpuAdapter } from "../src/ops/_autotune.ts";
import { Rng } from "../src/tensor/random.ts";
import { assertClose, checkOp, gpu, type Host } from "./_harness.ts";
import { assert, assertEquals } from "./_assert.ts";

// ---------------------------------------------------------------------------------------------------------
// f64 references

/** Which keys query i sees: all of them, or j <= i when causal. */
function visible(i: number, tk: number, causal: boolean): number {
  return causal ? Math.min(i + 1, tk) : tk;
}

/** Softmax rows p[i, j] of `scale q k^T` for one batch item (only visible keys; the rest stay 0). */
function probs(
  q: Float64Array,
  k: Float64Array,
  qo: number,
  ko: number,
  tq: number,
  tk: number,
  d: number,
  causal: boolean,
  factor: number,
): Float64Array {
  const p = new Float64Array(tq * tk);
  for (let i = 0; i < tq; i++) {
    const n = visible(i, tk, causal);
    let m = -Infinity;
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += q[qo + i * d + c] * k[ko + j * d + c];
      p[i * tk + j] = factor * s;
      m = Math.max(m, factor * s);
    }
    let z = 0;
    for (let j = 0; j < n; j++) z += p[i * tk + j] = Math.exp(p[i * tk + j] - m);
    for (let j = 0; j < n; j++) p[i * tk + j] /= z;
  }
  return p;
}

function dims(q: Host, k: Host): { batch: number; tq: number; tk: number; d: number } {
  const [tq, d] = q.shape.slice(-2);
  const tk = k.shape[k.shape.length - 2];
  const batch = q.shape.slice(0, -2).reduce((a, b) => a * b, 1);
  return { batch, tq, tk, d };
}

/** `softmax(scale q k^T) v` in f64, per batch item. */
function attentionHost(q: Host, k: Host, v: Host, causal = false, factor?: number): Host {
  const { batch, tq, tk, d } = dims(q, k);
  const f = factor ?? d ** -0.5;
  const y = new Float64Array(batch * tq * d);
  for (let b = 0; b < batch; b++) {
    const p = probs(q.data, k.data, b * tq * d, b * tk * d, tq, tk, d, causal, f);
    for (let i = 0; i < tq; i++) {
      for (let j = 0; j < tk; j++) {
        const w = p[i * tk + j];
        for (let c = 0; c < d; c++) y[(b * tq + i) * d + c] += w * v.data[(b * tk + j) * d + c];
      }
    }
  }
  return { data: y, shape: [...q.shape] };
}

/** The exact gradients of `sum(y * dy)` in f64: dq, dk, dv. */
function attentionGradHost(q: Host, k: Host, v: Host, dy: Float64Array, causal: boolean): Float64Array[] {
  const { batch, tq, tk, d } = dims(q, k);
  const f = d ** -0.5;
  const dq = new Float64Array(q.data.length), dk = new Float64Array(k.data.length);
  const dv = new Float64Array(v.data.length);
  for (let b = 0; b < batch; b++) {
    const qo = b * tq * d, ko = b * tk * d;
    const p = probs(q.data, k.data, qo, ko, tq, tk, d, causal, f);
    for (let i = 0; i < tq; i++) {
      // dp[j] = dy[i] . v[j];  ds[j] = p[j] (dp[j] - sum_j' p[j'] dp[j'])
      const dp = new Float64Array(tk);
      let mean = 0;
      for (let j = 0; j < tk; j++) {
        for (let c = 0; c < d; c++) dp[j] += dy[qo + i * d + c] * v.data[ko + j * d + c];
        mean += p[i * tk + j] * dp[j];
      }
      for (let j = 0; j < tk; j++) {
        const pij = p[i * tk + j], ds = pij * (dp[j] - mean);
        for (let c = 0; c < d; c++) {
          dv[ko + j * d + c] += pij * dy[qo + i * d + c];
          dq[qo + i * d + c] += f * ds * k.data[ko + j * d + c];
          dk[ko + j * d + c] += f * ds * q.data[qo + i * d + c];
        }
      }
    }
  }
  return [dq, dk, dv];
}

/** Random f32-representable host values in [-2, 2). */
function randomHost(shape: number[], rng: Rng): Host {
  const n = shape.reduce((a, b) => a * b, 1);
  return { data: Float64Array.from({ length: n }, () => Math.fround(rng.uniform() * 4 - 2)), shape };
}

/** `concat([kp [B, M, P, d], ki [B, 1, N, d] broadcast over M], -2)` in f64. */
function concatHost(kp: Host, ki: Host): Host {
  const [b, m, p, d] = kp.shape;
  const n = ki.shape[2];
  const out = new Float64Array(b * m * (p + n) * d);
  for (let i = 0; i < b; i++) {
    for (let s = 0; s < m; s++) {
      const at = (i * m + s) * (p + n) * d;
      out.set(kp.data.subarray((i * m + s) * p * d, (i * m + s + 1) * p * d), at);
      out.set(ki.data.subarray(i * n * d, (i + 1) * n * d), at + p * d);
    }
  }
  return { data: out, shape: [b, m, p + n, d] };
}

/** The GPU output and gradients of `sum(attention(q, k, v) * dy)`, by `op`. */
async function runOnGpu(
  op: (q: Tensor, k: Tensor, v: Tensor) => Tensor,
  hosts: Host[],
  dy: Float64Array,
): Promise<Float32Array[]> {
  const xs = hosts.map((h) => tensor(Float32Array.from(h.data), h.shape, { requiresGrad: true }));
  const y = tidy(() => {
    const out = op(xs[0], xs[1], xs[2]);
    backward(sum(mul(out, tensor(Float32Array.from(dy), [...out.shape]))));
    return out;
  });
  const got = [await y.toArray() as Float32Array];
  for (const x of xs) got.push(await x.grad!.toArray() as Float32Array);
  y.dispose();
  for (const x of xs) {
    x.grad!.dispose();
    x.dispose();
  }
  return got;
}

/**
 * Checks attention on q [..., tq, d] against k, v [..., tk, d]: forward and finite-difference gradients,
 * of the fused kernels unless told otherwise (on llvmpipe "auto" composes rows of many long keys).
 */
async function check(
  name: string,
  lead: number[],
  tq: number,
  tk: number,
  d: number,
  causal = false,
  implementation: AttentionOptions["implementation"] = "fused",
): Promise<void> {
  await checkOp({
    name,
    inputs: [{ shape: [...lead, tq, d] }, { shape: [...lead, tk, d] }, { shape: [...lead, tk, d] }],
    gpu: (q, k, v) => attention(q, k, v, { causal, implementation }),
    cpu: (q, k, v) => attentionHost(q, k, v, causal),
    eps: 1e-4,
  });
}

// ---------------------------------------------------------------------------------------------------------
// Against the f64 reference and finite differences

Deno.test("attention() over [2, 3, 5, 8] self-attention matches the f64 reference, causal and not", async () => {
  await check("attention [2, 3, 5, 8]", [2, 3], 5, 5, 8);
  await check("attention [2, 3, 5, 8] causal", [2, 3], 5, 5, 8, true);
});

Deno.test("attention() with fewer queries than keys (2 vs 19) matches the reference, causal and not", async () => {
  await check("attention q [4, 2, 2, 16] k [4, 2, 19, 16]", [4, 2], 2, 19, 16);
  await check("attention q [4, 2, 2, 16] k [4, 2, 19, 16] causal", [4, 2], 2, 19, 16, true);
  await check("attention q [2, 7, 8] k [2, 3, 8] causal", [2], 7, 3, 8, true);
});

Deno.test("attention() with one query, one key, d = 1 or d not a multiple of 4 matches the reference", async () => {
  await check("attention Tq = 1", [3, 2], 1, 7, 8);
  await check("attention Tk = 1", [3, 2], 4, 1, 8);
  await check("attention Tq = Tk = 1 causal", [5], 1, 1, 4, true);
  await check("attention d = 1", [2, 2], 6, 6, 1);
  await check("attention d = 1 causal", [2, 2], 6, 6, 1, true);
  await check("attention d = 5 causal", [3], 7, 7, 5, true);
  await check("attention d = 6, Tq = 2", [3], 2, 9, 6);
});

Deno.test("attention() with three leading batch dims matches the reference", async () => {
  await check("attention [2, 1, 3, 3, 4] vs [2, 1, 3, 5, 4]", [2, 1, 3], 3, 5, 4);
});

Deno.test("attention() takes an explicit scale", async () => {
  await checkOp({
    name: "attention scale 0.3",
    inputs: [{ shape: [2, 3, 4] }, { shape: [2, 5, 4] }, { shape: [2, 5, 4] }],
    gpu: (q, k, v) => attention(q, k, v, { scale: 0.3, implementation: "fused" }),
    cpu: (q, k, v) => attentionHost(q, k, v, false, 0.3),
    eps: 1e-4,
  });
});

Deno.test("attention() with d = 64 and T = 70 matches the reference", async () => {
  await check("attention [1, 70, 64] vs [1, 9, 64]", [1], 70, 9, 64, false);
  // T = 70 on both sides: finite differences over 3 x 4480 inputs would take minutes on the CPU, so the
  // gradients are compared with the exact f64 backward (itself checked against finite differences below).
  await checkExact("attention [1, 70, 64] causal", [1], 70, 70, 64, true);
  await checkExact("attention [1, 70, 64]", [1], 70, 70, 64, false);
});

Deno.test("attention() of long rows (T = 256, d = 64) matches the exact f64 gradients, causal and not", async () => {
  await checkExact("attention [1, 2, 256, 64] causal", [1, 2], 256, 256, 64, true);
  await checkExact("attention [2, 256, 64]", [2], 256, 256, 64, false);
});

Deno.test("attention() of heads wider than 128 falls back to the composed ops and matches the reference", async () => {
  await check("attention d = 130 causal", [1], 3, 3, 130, true, "auto");
});

Deno.test("attention() composed on request, or by choice for long keys, matches the reference", async () => {
  await check("attention composed causal", [2, 2], 5, 7, 8, true, "composed");
  await check("attention auto, d * Tk = 1024", [1], 3, 32, 32, false, "auto");
  await check("attention auto, d * Tk = 64", [2], 3, 8, 8, true, "auto");
});

Deno.test("attention() forward is one dispatch, and auto composes long keys only on a CPU rasteriser", async () => {
  const g = await gpu();
  const dispatches = (tk: number, d: number, implementation: AttentionOptions["implementation"]) => {
    const [q, k, v] = [[4, 2, d], [4, tk, d], [4, tk, d]].map((s) => zeros(s));
    g.resetCounters();
    noGrad(() => attention(q, k, v, { implementation })).dispose();
    for (const t of [q, k, v]) t.dispose();
    return g.counters.dispatches;
  };
  assertEquals(dispatches(19, 16, "auto"), 1);
  assertEquals(dispatches(64, 32, "fused"), 1);
  assert(dispatches(64, 32, "composed") > 1, "composed is more than one dispatch");
  assertEquals(dispatches(64, 32, "auto") > 1, isCpuAdapter(g));
});

/** Forward and gradients on the GPU against attentionHost and attentionGradHost. */
async function checkExact(
  name: string,
  lead: number[],
  tq: number,
  tk: number,
  d: number,
  causal: boolean,
): Promise<void> {
  await gpu();
  const rng = new Rng(3);
  const hosts = [
    randomHost([...lead, tq, d], rng),
    randomHost([...lead, tk, d], rng),
    randomHost([...lead, tk, d], rng),
  ];
  const dy = randomHost([...lead, tq, d], rng).data;
  const got = await runOnGpu((q, k, v) => attention(q, k, v, { causal, implementation: "fused" }), hosts, dy);
  assertClose(`${name} forward`, got[0], attentionHost(hosts[0], hosts[1], hosts[2], causal).data, 1e-5);
  const want = attentionGradHost(hosts[0], hosts[1], hosts[2], dy, causal);
  ["q", "k", "v"].forEach((x, i) => assertClose(`${name} d${x}`, got[i + 1], want[i], 1e-3));
}

Deno.test("the exact f64 gradients used above agree with finite differences", () => {
  const rng = new Rng(4);
  for (const causal of [false, true]) {
    const hosts = [randomHost([2, 4, 3], rng), randomHost([2, 5, 3], rng), randomHost([2, 5, 3], rng)];
    const dy = randomHost([2, 4, 3], rng).data;
    const exact = attentionGradHost(hosts[0], hosts[1], hosts[2], dy, causal);
    const objective = () => {
      const y = attentionHost(hosts[0], hosts[1], hosts[2], causal).data;
      return y.reduce((a, v, i) => a + v * dy[i], 0);
    };
    hosts.forEach((h, x) => {
      const fd = h.data.map((v, i) => {
        h.data[i] = v + 1e-6;
        const up = objective();
        h.data[i] = v - 1e-6;
        const down = objective();
        h.data[i] = v;
        return (up - down) / 2e-6;
      });
      assertClose(`host grad ${x} causal=${causal}`, exact[x], fd, 1e-7);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------
// Empty sizes

Deno.test("attention() of a size-0 batch gives an empty output and empty gradients", async () => {
  await check("attention batch 0", [0, 2], 3, 4, 8);
  await check("attention batch 0 causal", [2, 0], 3, 3, 8, true);
});

Deno.test("attention() with no keys gives zeros and zero gradients", async () => {
  await check("attention Tk = 0", [2], 3, 0, 4);
});

// ---------------------------------------------------------------------------------------------------------
// The fused op against the composed one, on the model's shapes

/** The attention the model composed before the fused op: scale, matmul, mask, softmax, matmul. */
function composedAttention(q: Tensor, k: Tensor, v: Tensor, causal: boolean): Tensor {
  const [tq, d] = q.shape.slice(-2);
  const tk = k.shape[k.rank - 2];
  let scores = matmul(scale(q, d ** -0.5), k, { transposeB: true });
  if (causal) {
    const mask = new Float32Array(tq * tk);
    for (let i = 0; i < tq; i++) for (let j = i + 1; j < tk; j++) mask[i * tk + j] = 1;
    scores = maskedFill(scores, tensor(mask, [tq, tk]), -Infinity);
  }
  return matmul(softmax(scores), v);
}

Deno.test("attention() equals the composed matmul/softmax attention on the default model's shapes", async () => {
  await gpu();
  const rng = new Rng(11);
  // [lead, Tq, Tk, causal]: image tower, captions, region captions, the Prompter's box and text prompts.
  const cases: [number[], number, number, boolean][] = [
    [[32, 4], 17, 17, false],
    [[32, 4], 14, 14, true],
    [[128, 4], 5, 5, true],
    [[32, 4, 4], 2, 19, false],
    [[32, 4, 4], 1, 18, false],
  ];
  for (const [lead, tq, tk, causal] of cases) {
    const name = `[${lead}] ${tq} x ${tk}${causal ? " causal" : ""}`;
    const hosts = [
      randomHost([...lead, tq, 16], rng),
      randomHost([...lead, tk, 16], rng),
      randomHost([...lead, tk, 16], rng),
    ];
    const dy = randomHost([...lead, tq, 16], rng).data;
    const fused = await runOnGpu(
      (q, k, v) => attention(q, k, v, { causal, implementation: "fused" }),
      hosts,
      dy,
    );
    const reference = await runOnGpu((q, k, v) => composedAttention(q, k, v, causal), hosts, dy);
    ["y", "dq", "dk", "dv"].forEach((what, i) =>
      assertClose(`${name} ${what}`, fused[i], reference[i], 1e-5)
    );
  }
});

Deno.test("attention() over image keys broadcast to every slot sums their gradient back", async () => {
  // The Prompter's pattern: per-slot keys [prompt keys, image keys broadcast over the M slots].
  await checkOp({
    name: "attention over broadcast image keys",
    inputs: [{ shape: [2, 3, 2, 4] }, { shape: [2, 3, 2, 4] }, { shape: [2, 1, 5, 4] }],
    gpu: (q, kp, ki) => {
      const [b, m, , d] = kp.shape;
      const k = concat([kp, broadcastTo(ki, [b, m, ki.shape[2], d])], -2); // [B, M, P + N, d]
      return attention(q, k, k);
    },
    cpu: (q, kp, ki) => {
      const k = concatHost(kp, ki);
      return attentionHost(q, k, k);
    },
    eps: 1e-4,
  });
});

// ---------------------------------------------------------------------------------------------------------
// Determinism and errors

Deno.test("attention() gradients are bitwise identical across two runs", async () => {
  await gpu();
  const rng = new Rng(5);
  const hosts = [
    randomHost([8, 3, 70, 16], rng),
    randomHost([8, 3, 70, 16], rng),
    randomHost([8, 3, 70, 16], rng),
  ];
  const dy = randomHost([8, 3, 70, 16], rng).data;
  const op = (q: Tensor, k: Tensor, v: Tensor) =>
    attention(q, k, v, { causal: true, implementation: "fused" });
  const a = await runOnGpu(op, hosts, dy);
  const b = await runOnGpu(op, hosts, dy);
  a.forEach((x, i) => assert(x.every((v, j) => Object.is(v, b[i][j])), `output ${i} differs between runs`));
});

// ---------------------------------------------------------------------------------------------------------
// packedAttention: heads read and written in place

/** `qkv [N, T, 3W]` → per-head attention → `[N, T, W]`, in f64 through attentionHost. */
function packedHost(qkv: Host, heads: number, causal: boolean): Host {
  const [n, t, w3] = qkv.shape;
  const w = w3 / 3, d = w / heads;
  const part = (which: number, h: number, b: number): Host => {
    const data = new Float64Array(t * d);
    for (let i = 0; i < t; i++) {
      for (let c = 0; c < d; c++) data[i * d + c] = qkv.data[(b * t + i) * w3 + which * w + h * d + c];
    }
    return { data, shape: [1, t, d] };
  };
  const y = new Float64Array(n * t * w);
  for (let b = 0; b < n; b++) {
    for (let h = 0; h < heads; h++) {
      const out = attentionHost(part(0, h, b), part(1, h, b), part(2, h, b), causal).data;
      for (let i = 0; i < t; i++) {
        for (let c = 0; c < d; c++) y[(b * t + i) * w + h * d + c] = out[i * d + c];
      }
    }
  }
  return { data: y, shape: [n, t, w] };
}

async function checkPacked(n: number, t: number, heads: number, d: number, causal: boolean): Promise<void> {
  await checkOp({
    name: `packedAttention [${n}, ${t}, 3 x ${heads} x ${d}]${causal ? " causal" : ""}`,
    inputs: [{ shape: [n, t, 3 * heads * d] }],
    gpu: (qkv) => packedAttention(qkv, heads, { causal, implementation: "fused" }),
    cpu: (qkv) => packedHost(qkv, heads, causal),
    eps: 1e-4,
  });
}

Deno.test("packedAttention() matches per-head f64 attention and finite differences, causal and not", async () => {
  await checkPacked(2, 5, 2, 8, false); // rows shared by >= 4 queries: staged tiles, vec4 rows
  await checkPacked(2, 5, 2, 8, true);
  await checkPacked(3, 2, 3, 4, false); // 2 rows per item: read straight from the buffer
  await checkPacked(2, 6, 2, 3, true); // d = 3: scalar rows at odd offsets
});

Deno.test("packedAttention() gives the numbers of split heads, attention and merge, forward and backward", async () => {
  await gpu();
  const rng = new Rng(7);
  const host = randomHost([4, 17, 3 * 4 * 16], rng);
  const dy = tensor(Float32Array.from({ length: 4 * 17 * 64 }, () => rng.uniform() * 2 - 1), [4, 17, 64]);
  const run = async (op: (qkv: Tensor) => Tensor) => {
    const qkv = tensor(Float32Array.from(host.data), host.shape, { requiresGrad: true });
    const y = tidy(() => {
      const out = op(qkv);
      backward(sum(mul(out, dy)));
      return out;
    });
    const got = [await y.toArray(), await qkv.grad!.toArray()];
    for (const t of [y, qkv.grad!, qkv]) t.dispose();
    return got;
  };
  for (const causal of [false, true]) {
    const [y0, g0] = await run((qkv) => {
      const split = splitHeads(qkv, 12); // [N, 3H, T, d]
      const part = (i: number) => slice(split, 1, 4 * i, 4 * i + 4);
      return mergeHeads(attention(part(0), part(1), part(2), { causal, implementation: "fused" }));
    });
    const [y1, g1] = await run((qkv) => packedAttention(qkv, 4, { causal, implementation: "fused" }));
    assertClose(`packed forward, causal ${causal}`, y1, y0, 1e-6);
    assertClose(`packed gradient, causal ${causal}`, g1, g0, 1e-6);
  }
  dy.dispose();
});

Deno.test("packedAttention() composed (long keys on a CPU, or on request) matches the reference", async () => {
  await checkOp({
    name: "packedAttention composed causal",
    inputs: [{ shape: [2, 5, 3 * 2 * 4] }],
    gpu: (qkv) => packedAttention(qkv, 2, { causal: true, implementation: "composed" }),
    cpu: (qkv) => packedHost(qkv, 2, true),
    eps: 1e-4,
  });
});

Deno.test("packedAttention() is one dispatch forward and two backward, and refuses a width not 3 x heads", async () => {
  const g = await gpu();
  const qkv = tensor(new Float32Array(2 * 17 * 192), [2, 17, 192], { requiresGrad: true });
  g.resetCounters();
  const y = tidy(() => {
    const out = packedAttention(qkv, 4);
    assertEquals(g.counters.dispatches, 1);
    backward(sum(out));
    return out;
  });
  // + sum forward (1 or 2) and its gradient fill; the attention backward itself is two kernels.
  assert(g.counters.dispatches <= 6, `${g.counters.dispatches} dispatches`);
  assertEquals(qkv.grad!.shape, [2, 17, 192]);
  y.dispose();
  qkv.grad!.dispose();
  let message = "";
  try {
    packedAttention(qkv, 5);
  } catch (e) {
    message = (e as Error).message;
  }
  qkv.dispose();
  assert(
    message.startsWith(
      "packedAttention: expected qkv [..., T, 3 * heads * d] with 5 heads, got [2, 17, 192]",
    ),
    message,
  );
});

// ---------------------------------------------------------------------------------------------------------
// slotAttention: the Prompter's prompts over their own rows and their image's

/** qkv [B, M, P, 3W], kv [B, N, 2W] → [B, M, P, W], each slot and head through attentionHost in f64. */
function slotHost(qkv: Host, kv: Host, heads: number): Host {
  const [b, m, p, w3] = qkv.shape;
  const n = kv.shape[1];
  const w = w3 / 3, d = w / heads;
  const y = new Float64Array(b * m * p * w);
  for (let i = 0; i < b; i++) {
    for (let s = 0; s < m; s++) {
      for (let h = 0; h < heads; h++) {
        const rows = (count: number, at: (r: number, c: number) => number): Host => {
          const data = new Float64Array(count * d);
          for (let r = 0; r < count; r++) for (let c = 0; c < d; c++) data[r * d + c] = at(r, c);
          return { data, shape: [1, count, d] };
        };
        const own = (part: number) => (r: number, c: number) =>
          qkv.data[((i * m + s) * p + r) * w3 + part * w + h * d + c];
        const image = (part: number) => (r: number, c: number) =>
          kv.data[(i * n + r) * 2 * w + part * w + h * d + c];
        const keys = rows(p + n, (r, c) => (r < p ? own(1)(r, c) : image(0)(r - p, c)));
        const values = rows(p + n, (r, c) => (r < p ? own(2)(r, c) : image(1)(r - p, c)));
        const out = attentionHost(rows(p, own(0)), keys, values).data;
        for (let r = 0; r < p; r++) {
          for (let c = 0; c < d; c++) y[((i * m + s) * p + r) * w + h * d + c] = out[r * d + c];
        }
      }
    }
  }
  return { data: y, shape: [b, m, p, w] };
}

async function checkSlots(
  b: number,
  m: number,
  p: number,
  n: number,
  heads: number,
  d: number,
): Promise<void> {
  const w = heads * d;
  await checkOp({
    name: `slotAttention qkv [${b}, ${m}, ${p}, 3 x ${w}], kv [${b}, ${n}, 2 x ${w}], ${heads} heads`,
    inputs: [{ shape: [b, m, p, 3 * w] }, { shape: [b, n, 2 * w] }],
    gpu: (qkv, kv) => slotAttention(qkv, kv, heads, { implementation: "fused" }),
    cpu: (qkv, kv) => slotHost(qkv, kv, heads),
    eps: 1e-4,
  });
}

Deno.test("slotAttention() matches per-slot f64 attention over [own rows, image rows] and finite differences", async () => {
  await checkSlots(2, 3, 2, 5, 2, 4); // the Prompter's shape: 2 corner prompts a slot
  await checkSlots(2, 2, 1, 7, 2, 8); // one text prompt a slot
  await checkSlots(1, 2, 5, 3, 1, 8); // 5 prompt rows: keys staged through workgroup memory, both segments
  await checkSlots(2, 2, 2, 3, 2, 3); // d = 3: scalar rows at odd offsets
});

Deno.test("slotAttention() fused equals the composed path (image rows copied to every slot), forward and backward", async () => {
  await gpu();
  const rng = new Rng(5);
  const [b, m, p, n, heads, d] = [4, 4, 2, 17, 4, 16];
  const qkvHost = randomHost([b, m, p, 3 * heads * d], rng), kvHost = randomHost([b, n, 2 * heads * d], rng);
  const dyValues = Float32Array.from({ length: b * m * p * heads * d }, () => rng.uniform() * 2 - 1);
  const dy = tensor(dyValues, [b, m, p, heads * d]);
  const run = async (implementation: "fused" | "composed") => {
    const qkv = tensor(Float32Array.from(qkvHost.data), qkvHost.shape, { requiresGrad: true });
    const kv = tensor(Float32Array.from(kvHost.data), kvHost.shape, { requiresGrad: true });
    const y = tidy(() => {
      const out = slotAttention(qkv, kv, heads, { implementation });
      backward(sum(mul(out, dy)));
      return out;
    });
    const got = [await y.toArray(), await qkv.grad!.toArray(), await kv.grad!.toArray()];
    for (const t of [y, qkv.grad!, kv.grad!, qkv, kv]) t.dispose();
    return got;
  };
  const [fused, composed] = [await run("fused"), await run("composed")];
  ["output", "qkv gradient", "kv gradient"].forEach((what, i) =>
    assertClose(`slotAttention ${what}`, fused[i], composed[i], 1e-5)
  );
  dy.dispose();
});

Deno.test("slotAttention() is three dispatches forward and refuses shapes that do not fit", async () => {
  const g = await gpu();
  const qkv = zeros([2, 4, 2, 48]), kv = zeros([2, 17, 32]);
  g.resetCounters();
  noGrad(() => slotAttention(qkv, kv, 4)).dispose();
  assertEquals(g.counters.dispatches, 3, "qkv and kv copied into one buffer, one attention kernel");
  let message = "";
  const wrong = zeros([2, 17, 48]);
  try {
    slotAttention(qkv, wrong, 4);
  } catch (e) {
    message = (e as Error).message;
  }
  assert(message.startsWith("slotAttention: expected qkv [B, M, P, 3 * heads * d]"), message);
  for (const t of [qkv, kv, wrong]) t.dispose();
});

Deno.test("attention() refuses shapes that do not fit, naming the op and both shapes", async () => {
  await gpu();
  const bad: [number[], number[], number[], string][] = [
    [
      [2, 3, 8],
      [2, 4, 4],
      [2, 4, 4],
      "attention: k [2, 4, 4] does not fit q [2, 3, 8]: expected k [2, 4, 8]",
    ],
    [
      [2, 3, 8],
      [3, 4, 8],
      [3, 4, 8],
      "attention: k [3, 4, 8] does not fit q [2, 3, 8]: expected k [2, 4, 8]",
    ],
    [
      [2, 3, 8],
      [2, 4, 8],
      [2, 5, 8],
      "attention: v [2, 5, 8] does not fit k [2, 4, 8]: expected v [2, 4, 8]",
    ],
    [[8], [4, 8], [4, 8], "attention: expected q [..., Tq, d] and k [..., Tk, d] of rank >= 2"],
  ];
  for (const [qs, ks, vs, want] of bad) {
    const [q, k, v] = [qs, ks, vs].map((s) => tensor(new Float32Array(s.reduce((a, b) => a * b, 1)), s));
    let message = "";
    try {
      attention(q, k, v);
    } catch (e) {
      message = (e as Error).message;
    }
    for (const t of [q, k, v]) t.dispose();
    assert(message.startsWith(want), `unclear error: ${message}`);
  }
});
