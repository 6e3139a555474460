import assert from "node:assert/strict";
import { AdamW, type AdamWOptions } from "../src/optim/adamw.ts";
import { keep, type Tensor, tensor } from "../src/tensor/tensor.ts";
import { Rng } from "../src/tensor/random.ts";
import { gpu } from "./_harness.ts";

// The f64 reference: PyTorch's torch.optim.AdamW (single-tensor path) for one parameter, per spec/model.md.

interface RefParam {
  name: string;
  shape: number[];
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
  t: number;
  decay: boolean;
  clamp?: [number, number];
}

interface Hyper {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

const DEFAULTS: Hyper = { lr: 1e-3, betas: [0.9, 0.98], eps: 1e-6, weightDecay: 0.2 };

function refStep(r: RefParam, grad: Float64Array | null, h: Hyper): void {
  if (grad !== null) {
    const [b1, b2] = h.betas;
    const t = ++r.t;
    for (let i = 0; i < r.p.length; i++) {
      if (r.decay) r.p[i] -= h.lr * h.weightDecay * r.p[i];
      r.m[i] = b1 * r.m[i] + (1 - b1) * grad[i];
      r.v[i] = b2 * r.v[i] + (1 - b2) * grad[i] * grad[i];
      const mHat = r.m[i] / (1 - b1 ** t);
      const vHat = r.v[i] / (1 - b2 ** t);
      r.p[i] -= h.lr * mHat / (Math.sqrt(vHat) + h.eps);
    }
  }
  if (r.clamp) {
    for (let i = 0; i < r.p.length; i++) r.p[i] = Math.min(Math.max(r.p[i], r.clamp[0]), r.clamp[1]);
  }
}

/** max |actual - expected| / max |expected| (the max-abs error itself when expected is all zeros). */
function relErr(actual: ArrayLike<number>, expected: ArrayLike<number>): { err: number; at: number } {
  assert.equal(actual.length, expected.length);
  let worst = 0, at = -1, scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs(actual[i] - expected[i]);
    if (!(e <= worst)) {
      worst = Number.isNaN(e) ? Infinity : e;
      at = i;
    }
  }
  return { err: scale > 0 ? worst / scale : worst, at };
}

function assertClose(
  what: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
): void {
  const { err, at } = relErr(actual, expected);
  if (!(err <= tol)) {
    throw new Error(
      `${what}: relative error ${err.toExponential(2)} > ${tol} at element ${at}: got ${
        actual[at]
      }, expected ${expected[at]}`,
    );
  }
}

const TOL = 1e-6;

interface Case {
  name: string;
  shape: number[];
  init: (i: number, rng: Rng) => number;
  /** The gradient at step s (1-based), or null for no gradient. */
  grad: (step: number, i: number, rng: Rng) => number | null;
  clamp?: [number, number];
}

/** Builds GPU params and the f64 reference, runs `steps` steps of both, comparing p, m and v after each. */
async function runAgainstReference(cases: Case[], options: {
  steps: number;
  hyper?: Hyper;
  gpuOptions?: AdamWOptions;
  refDecay?: (c: Case) => boolean;
  lrs?: number[];
  /** Clip to this global norm (torch.nn.utils.clip_grad_norm_) before each step. */
  maxNorm?: number;
  /** Called with each step's f64 norm (before clipping) and clip factor. */
  onNorm?: (norm: number, factor: number) => void;
}): Promise<{ opt: AdamW; params: Tensor[]; refs: RefParam[] }> {
  await gpu();
  const hyper = options.hyper ?? DEFAULTS;
  const rng = new Rng(11);
  const params: Tensor[] = [];
  const refs: RefParam[] = [];
  for (const c of cases) {
    const n = c.shape.reduce((a, b) => a * b, 1);
    const init = new Float32Array(n).map((_, i) => c.init(i, rng));
    params.push(tensor(init, c.shape, { requiresGrad: true, name: c.name }));
    refs.push({
      name: c.name,
      shape: c.shape,
      p: Float64Array.from(init),
      m: new Float64Array(n),
      v: new Float64Array(n),
      t: 0,
      decay: options.refDecay ? options.refDecay(c) : c.shape.length >= 2,
      clamp: c.clamp,
    });
  }
  const clamp: Record<string, [number, number]> = {};
  for (const c of cases) if (c.clamp) clamp[c.name] = c.clamp;
  const opt = new AdamW(params.map((t, i) => ({ name: cases[i].name, tensor: t })), {
    lr: hyper.lr,
    betas: hyper.betas,
    eps: hyper.eps,
    weightDecay: hyper.weightDecay,
    clamp,
    ...options.gpuOptions,
  });
  for (let s = 1; s <= options.steps; s++) {
    const lr = options.lrs?.[s - 1] ?? hyper.lr;
    opt.zeroGrad();
    const grads = cases.map((c, k) => {
      const n = refs[k].p.length;
      const g = new Float32Array(n);
      let none = false;
      for (let i = 0; i < n; i++) {
        const value = c.grad(s, i, rng);
        if (value === null) none = true;
        else g[i] = value;
      }
      if (!none) params[k].grad = keep(tensor(g, c.shape));
      return none ? null : Float64Array.from(g);
    });
    // clip_grad_norm_: the L2 norm over every gradient, then g *= min(1, maxNorm / (norm + 1e-6)).
    let sumSquares = 0;
    for (const g of grads) for (const x of g ?? []) sumSquares += x * x;
    const norm = Math.sqrt(sumSquares);
    const factor = options.maxNorm === undefined ? 1 : Math.min(1, options.maxNorm / (norm + 1e-6));
    options.onNorm?.(norm, factor);
    grads.forEach((g, k) => refStep(refs[k], g && g.map((x) => x * factor), { ...hyper, lr }));
    const gpuNorm = opt.step(options.lrs ? lr : undefined, { maxNorm: options.maxNorm });
    const normErr = Math.abs((await gpuNorm.item()) - norm) / Math.max(norm, 1e-30);
    assert.ok(normErr <= 1e-6, `step ${s}: the norm ${await gpuNorm.item()} is not ${norm}`);
    gpuNorm.dispose();
    const state = opt.state();
    for (let k = 0; k < cases.length; k++) {
      assertClose(`step ${s}: ${cases[k].name}`, await params[k].toArray(), refs[k].p, TOL);
      assertClose(`step ${s}: m of ${cases[k].name}`, await state.m[k].toArray(), refs[k].m, TOL);
      assertClose(`step ${s}: v of ${cases[k].name}`, await state.v[k].toArray(), refs[k].v, TOL);
      assert.equal(state.steps[k], refs[k].t, `step ${s}: step count of ${cases[k].name}`);
    }
  }
  return { opt, params, refs };
}

function cleanup(opt: AdamW, params: Tensor[]): void {
  opt.zeroGrad();
  opt.dispose();
  for (const p of params) p.dispose();
}

const uniform = (lo: number, hi: number) => (_i: number, rng: Rng) => lo + (hi - lo) * rng.uniform();

/** The standard mix: decayed 2-D and 3-D, undecayed 1-D and 0-dim, |g| near eps, zero grads, a clamp. */
const MIXED: Case[] = [
  {
    name: "visual.proj", // decayed; gradients of every size, some near eps
    shape: [5, 7],
    init: uniform(-1, 1),
    grad: (
      _s,
      i,
      rng,
    ) => (i % 5 === 0 ? (rng.uniform() < 0.5 ? -1 : 1) * 1e-6 * (0.5 + rng.uniform()) : rng.normal()),
  },
  {
    name: "visual.conv1.weight", // decayed, 4-D, with an all-zero gradient at step 3
    shape: [2, 3, 1, 2],
    init: uniform(-0.05, 0.05),
    grad: (s, _i, rng) => (s === 3 ? 0 : 0.01 * rng.normal()),
  },
  {
    name: "ln_final.bias", // undecayed 1-D; tiny gradients throughout
    shape: [13],
    init: uniform(-2, 2),
    grad: (s, i, rng) => (i < 4 ? 1e-6 * (i - 1.5) : s === 2 ? 0 : 3 * rng.normal()),
  },
  {
    name: "logit_scale", // undecayed 0-dim, clamped; its negative gradient pushes it past the top
    shape: [],
    init: () => 4.6032,
    grad: () => -0.5,
    clamp: [0, Math.log(100)],
  },
  {
    name: "visual.class_embedding", // undecayed 1-D with a large magnitude
    shape: [6],
    init: uniform(50, 80),
    grad: (_s, _i, rng) => rng.normal() * 100,
  },
  {
    name: "empty", // size 0
    shape: [0, 3],
    init: () => 0,
    grad: () => 0,
  },
];

Deno.test("AdamW.step() matches the f64 PyTorch formula over 5 steps: decayed and undecayed params, zero grads, |g| near eps, a clamp", async () => {
  const { opt, params, refs } = await runAgainstReference(MIXED, { steps: 5 });
  // logit_scale did hit its clamp (the test exercises it).
  assert.equal(refs[3].p[0], Math.log(100));
  assert.equal((await params[3].toArray())[0], Math.fround(Math.log(100)));
  cleanup(opt, params);
});

Deno.test("AdamW.step() matches the formula with other hyperparameters and a learning rate that changes every step", async () => {
  const hyper: Hyper = { lr: 0.05, betas: [0.8, 0.95], eps: 1e-4, weightDecay: 0.3 };
  const { opt, params } = await runAgainstReference(MIXED.slice(0, 5), {
    steps: 5,
    hyper,
    lrs: [0.05, 0.02, 0.1, 0, 0.03],
  });
  cleanup(opt, params);
});

Deno.test("AdamW decays only params of rank >= 2 by default: with zero gradients 1-D and 0-dim params stay bit-identical", async () => {
  await gpu();
  const w0 = new Float32Array([0.5, -1.25, 2, 3.5, -0.75, 1]);
  const b0 = new Float32Array([0.5, -1.25, 2]);
  const w = tensor(w0, [2, 3], { requiresGrad: true });
  const b = tensor(b0, [3], { requiresGrad: true });
  const s = tensor([1.5], [], { requiresGrad: true });
  const opt = new AdamW([{ name: "w", tensor: w }, { name: "b", tensor: b }, { name: "s", tensor: s }]);
  assert.deepEqual(opt.decayed, [true, false, false]);
  for (let step = 0; step < 5; step++) {
    opt.zeroGrad();
    w.grad = keep(tensor(new Float32Array(6), [2, 3]));
    b.grad = keep(tensor(new Float32Array(3), [3]));
    s.grad = keep(tensor([0], []));
    opt.step();
  }
  // Zero gradients: m = v = 0, the Adam term is 0 / (0 + eps) = 0, so only the decay acts.
  assert.deepEqual(await b.toArray(), b0);
  assert.deepEqual(await s.toArray(), new Float32Array([1.5]));
  const decayed = Array.from(w0, (x) => x * (1 - 1e-3 * 0.2) ** 5);
  assertClose("w after 5 decay-only steps", await w.toArray(), decayed, TOL);
  // The decay's own effect (1e-3 relative) is a thousand times the tolerance.
  assert.ok(relErr(w0, decayed).err > 500 * TOL);
  cleanup(opt, [w, b, s]);
});

Deno.test("the AdamW comparison catches weight decay wrongly applied to a 1-D param", async () => {
  // The reference bundles cannot see this mistake (2e-4 relative under a 1e-3 tolerance); this test can.
  const oneD = MIXED.filter((c) => c.shape.length === 1 && c.name === "ln_final.bias");
  await assert.rejects(
    runAgainstReference(oneD, { steps: 1, gpuOptions: { decay: () => true } }).then(({ opt, params }) =>
      cleanup(opt, params)
    ),
    /step 1: ln_final\.bias: relative error/,
  );
  // And the other way round: a 2-D weight left undecayed.
  const twoD = MIXED.filter((c) => c.name === "visual.proj");
  await assert.rejects(
    runAgainstReference(twoD, { steps: 1, gpuOptions: { decay: () => false } }),
    /step 1: visual\.proj: relative error/,
  );
  // Both variants pass when the reference makes the same choice, so the failures above are the decay's.
  const { opt, params } = await runAgainstReference(oneD, {
    steps: 2,
    gpuOptions: { decay: () => true },
    refDecay: () => true,
  });
  cleanup(opt, params);
});

Deno.test("AdamW.step() skips params with a null grad and keeps per-parameter step counts like PyTorch", async () => {
  const cases: Case[] = [
    { name: "always", shape: [4, 2], init: uniform(-1, 1), grad: (_s, _i, rng) => rng.normal() },
    // No gradient at steps 1 and 2, then gradients: its bias correction starts at t = 1 at step 3.
    { name: "late", shape: [5], init: uniform(-1, 1), grad: (s, _i, rng) => (s <= 2 ? null : rng.normal()) },
    // Out of its clamp range and never a gradient: clamped anyway, as OpenCLIP clamps after every step.
    { name: "frozen_scale", shape: [], init: () => 7, grad: () => null, clamp: [0, Math.log(100)] },
  ];
  const { opt, params, refs } = await runAgainstReference(cases, { steps: 4 });
  assert.deepEqual(opt.state().steps, [4, 2, 0]);
  assert.equal(opt.state().step, 4);
  assert.equal(refs[2].p[0], Math.log(100));
  cleanup(opt, params);
});

Deno.test("AdamW.step() records three dispatches over 50 parameters, like over 2, and reads nothing back", async () => {
  const g = await gpu();
  const rng = new Rng(3);
  const counts: number[] = [];
  for (const count of [2, 50]) {
    const params = Array.from({ length: count }, (_, k) => {
      const shape = k % 3 === 0 ? [1 + (k % 7), 3 + k] : [5 + 17 * k];
      return tensor(rng.normals(shape.reduce((a, b) => a * b, 1)), shape, { requiresGrad: true });
    });
    const opt = new AdamW(params, { clamp: { "params[1]": [-1, 1] } });
    for (const p of params) p.grad = keep(tensor(rng.normals(p.size), [...p.shape]));
    opt.state(); // make the arenas now, so their uploads are not counted below
    await g.sync();
    g.resetCounters();
    const norms = [opt.step(1e-3, { maxNorm: 1 }), opt.step(1e-3, { maxNorm: 1, gate: tensor([0], [1]) })];
    counts.push(g.counters.dispatches / 2);
    assert.equal(g.counters.readbacks, 0);
    assert.equal(g.counters.submits, 0);
    // A param keeps its buffer: the update is in place.
    const buffer = params[0].buffer;
    opt.step().dispose();
    assert.equal(params[0].buffer, buffer);
    for (const n of norms) n.dispose();
    cleanup(opt, params);
  }
  // Sum of squares, norm, update: independent of the number of parameters.
  assert.deepEqual(counts, [3, 3]);
});

Deno.test("AdamW.step({maxNorm}) matches clip_grad_norm_ then the f64 AdamW formula: odd sizes, decayed or not, a null grad, a clamp", async () => {
  // Sizes around the 256-element block: segments that end mid-block, one block exactly, one element; and
  // more than 16 blocks in all, so several workgroups sum the squares.
  const cases: Case[] = [
    { name: "w", shape: [17, 19], init: uniform(-1, 1), grad: (_s, _i, rng) => rng.normal() },
    { name: "big", shape: [41, 101], init: uniform(-1, 1), grad: (_s, _i, rng) => rng.normal() },
    { name: "b", shape: [257], init: uniform(-1, 1), grad: (_s, _i, rng) => 2 * rng.normal() },
    { name: "e", shape: [2, 128], init: uniform(-1, 1), grad: (_s, _i, rng) => rng.normal() },
    {
      name: "late",
      shape: [3, 5],
      init: uniform(-1, 1),
      grad: (s, _i, rng) => (s === 2 ? null : rng.normal()),
    },
    { name: "logit_scale", shape: [], init: () => 4.6, grad: () => -3, clamp: [0, Math.log(100)] },
    { name: "frozen_scale", shape: [], init: () => -2, grad: () => null, clamp: [0, 1] },
    { name: "one", shape: [1], init: () => 0.25, grad: (_s, _i, rng) => rng.normal() },
  ];
  // Clipping active: the norm is ~70, the factor ~1/70 (well away from 1, so missing it fails the test).
  const factors: number[] = [];
  const active = await runAgainstReference(cases, {
    steps: 3,
    maxNorm: 1,
    hyper: { ...DEFAULTS, lr: 0.05, eps: 1e-3 },
    onNorm: (_norm, factor) => factors.push(factor),
  });
  assert.ok(factors.every((f) => f < 0.1), `clip factors ${factors}`);
  assert.deepEqual(active.opt.state().steps, [3, 3, 3, 3, 2, 3, 0, 3]);
  assert.equal(active.refs[6].p[0], 0, "the clamp lifted frozen_scale");
  cleanup(active.opt, active.params);
  // Clipping inactive: a maxNorm above the norm leaves the gradients as they are.
  factors.length = 0;
  const inactive = await runAgainstReference(cases, {
    steps: 3,
    maxNorm: 1000,
    onNorm: (_norm, factor) => factors.push(factor),
  });
  assert.deepEqual(factors, [1, 1, 1]);
  cleanup(inactive.opt, inactive.params);
  // (A missing clip factor cannot pass: m = (1 - b1) * g would be 10 times the reference's.)
});

Deno.test("AdamW.step() over several arenas (a small maxArenaBytes) matches the f64 formula, clipping on", async () => {
  await gpu();
  // 1024 elements an arena: a is alone (a 1280-element segment), b (256) and c (768) fill one exactly, d and
  // logit_scale share the third.
  const cases: Case[] = [
    { name: "a", shape: [1030], init: uniform(-1, 1), grad: (_s, _i, rng) => rng.normal() },
    { name: "b", shape: [3, 70], init: uniform(-1, 1), grad: (_s, _i, rng) => rng.normal() },
    { name: "c", shape: [700], init: uniform(-1, 1), grad: (s, _i, rng) => (s === 1 ? null : rng.normal()) },
    { name: "d", shape: [9, 31], init: uniform(-1, 1), grad: (_s, _i, rng) => rng.normal() },
    { name: "logit_scale", shape: [], init: () => 4.6, grad: () => -3, clamp: [0, Math.log(100)] },
  ];
  const { opt, params } = await runAgainstReference(cases, {
    steps: 3,
    maxNorm: 2,
    gpuOptions: { maxArenaBytes: 4096 },
  });
  // Three arenas: a sum-of-squares and an update dispatch each, and one norm.
  const g = await gpu();
  await g.sync();
  g.resetCounters();
  opt.step().dispose();
  assert.equal(g.counters.dispatches, 2 * 3 + 1);
  cleanup(opt, params);
});

Deno.test("AdamW.step() with a NaN gate or a non-finite gradient changes nothing, but still clamps a param without grad", async () => {
  await gpu();
  const w = tensor([1, -2, 3, -4, 5], [5], { requiresGrad: true, name: "w" });
  const u = tensor([0.5, 0.25], [1, 2], { requiresGrad: true, name: "u" });
  const s = tensor([7], [], { requiresGrad: true, name: "s" });
  const opt = new AdamW([w, u, s], { lr: 0.1, clamp: { s: [0, 2] } });
  const snapshot = async () => {
    const state = opt.state();
    const values: number[][] = [];
    for (const t of [w, u, s, ...state.m, ...state.v]) values.push([...await t.toArray()]);
    return values;
  };
  // One real step, so the moments are not zero.
  w.grad = keep(tensor([1, 2, 3, 4, 5], [5]));
  u.grad = keep(tensor([-1, 1], [1, 2]));
  opt.step(0.1, { maxNorm: 1 }).dispose();
  const before = await snapshot();
  assert.equal(before[2][0], 2, "the first step clamped s");
  s.grad = null;
  await s.gpu.sync();
  // s is out of range again: the skipped steps below clamp it, as OpenCLIP does after every step.
  const lifted = tensor([9], []);
  s.gpu.copy(lifted.buffer, 0, s.buffer, 0, 4);
  lifted.dispose();
  for (
    const [what, grad, gate] of [
      ["a NaN gate", [1, 1, 1, 1, 1], NaN],
      ["an infinite gate", [1, 1, 1, 1, 1], -Infinity],
      ["a NaN gradient", [1, NaN, 1, 1, 1], 0],
      ["an infinite gradient", [1, 1, Infinity, 1, 1], undefined],
      ["a gradient whose square overflows", [1, 1, 1, 1e30, 1], 0],
    ] as const
  ) {
    opt.zeroGrad();
    w.grad = keep(tensor(grad, [5]));
    u.grad = keep(tensor([3, 3], [1, 2]));
    const gateTensor = gate === undefined ? undefined : tensor([gate], [1]);
    const norm = await opt.step(0.1, { gate: gateTensor, maxNorm: 1 }).item();
    gateTensor?.dispose();
    const after = await snapshot();
    assert.deepEqual(after, before, `${what} must leave parameters and moments unchanged`);
    if (gate === 0 || gate === undefined) assert.ok(!Number.isFinite(norm), `${what}: norm ${norm}`);
  }
  assert.deepEqual(opt.state().steps, [6, 6, 0], "step counts advance even when a step is skipped");
  cleanup(opt, [w, u, s]);
});

Deno.test("AdamW.state() and loadState() resume a run exactly where it stopped", async () => {
  await gpu();
  const rng = new Rng(5);
  const shapes = [[3, 4], [4], []];
  const inits = shapes.map((s) => new Float32Array(s.reduce((a, b) => a * b, 1)).map(() => rng.normal()));
  const grads = Array.from({ length: 5 }, () => inits.map((x) => x.map(() => rng.normal())));
  const make = () => shapes.map((s, k) => tensor(inits[k], s, { requiresGrad: true, name: `p${k}` }));
  const run = (opt: AdamW, params: Tensor[], from: number, to: number) => {
    for (let s = from; s < to; s++) {
      opt.zeroGrad();
      params.forEach((p, k) => (p.grad = keep(tensor(grads[s][k], shapes[k]))));
      opt.step(1e-2 * (s + 1));
    }
  };
  // Uninterrupted: 5 steps.
  const a = make();
  const optA = new AdamW(a, { clamp: { p2: [-0.5, 0.5] } });
  run(optA, a, 0, 5);
  // Interrupted after 3 steps: save values and state to host arrays, restore into fresh objects.
  const b = make();
  const optB = new AdamW(b, { clamp: { p2: [-0.5, 0.5] } });
  run(optB, b, 0, 3);
  const saved = optB.state();
  const host = {
    step: saved.step,
    steps: saved.steps,
    m: await Promise.all(saved.m.map((t) => t.toArray() as Promise<Float32Array>)),
    v: await Promise.all(saved.v.map((t) => t.toArray() as Promise<Float32Array>)),
  };
  const values = await Promise.all(b.map((t) => t.toArray()));
  cleanup(optB, b);
  const c = shapes.map((s, k) => tensor(values[k], s, { requiresGrad: true, name: `p${k}` }));
  const optC = new AdamW(c, { clamp: { p2: [-0.5, 0.5] } });
  optC.loadState(host);
  assert.equal(optC.state().step, 3);
  run(optC, c, 3, 5);
  for (let k = 0; k < shapes.length; k++) {
    assert.deepEqual(await c[k].toArray(), await a[k].toArray(), `p${k} differs after resuming`);
    assert.deepEqual(await optC.state().m[k].toArray(), await optA.state().m[k].toArray());
    assert.deepEqual(await optC.state().v[k].toArray(), await optA.state().v[k].toArray());
  }
  // Loading from tensors copies them: the caller may dispose its own.
  const d = make();
  const optD = new AdamW(d);
  const mTensors = optA.state().m.map((t, k) => tensor(new Float32Array(t.size).fill(k + 1), t.shape));
  optD.loadState({ step: 2, m: mTensors, v: [null, null, null].map((_, k) => mTensors[k]) });
  for (const t of mTensors) t.dispose();
  assert.deepEqual([...await optD.state().m[1].toArray()], [2, 2, 2, 2]);
  assert.deepEqual(optD.state().steps, [2, 2, 2]);
  cleanup(optA, a);
  cleanup(optC, c);
  cleanup(optD, d);
});

Deno.test("zeroGrad() disposes every gradient and sets it to null", async () => {
  await gpu();
  const w = tensor([1, 2], [2], { requiresGrad: true });
  const u = tensor([3], [1], { requiresGrad: true });
  const grad = keep(tensor([0.5, 0.5], [2]));
  w.grad = grad;
  const opt = new AdamW([w, u]);
  opt.zeroGrad();
  assert.equal(w.grad, null);
  assert.equal(u.grad, null);
  assert.ok(grad.isDisposed);
  cleanup(opt, [w, u]);
});

Deno.test("AdamW rejects bad parameters, options, gradients and states, naming what is wrong", async () => {
  await gpu();
  const w = tensor([1, 2, 3, 4], [2, 2], { requiresGrad: true, name: "visual.proj" });
  const ids = tensor(new Int32Array([1, 2]), [2]);
  assert.throws(
    () => new AdamW([ids]),
    /AdamW: parameter "params\[0\]" is i32 tensor \[2\], but only f32 tensors can be trained/,
  );
  assert.throws(() => new AdamW([w, w]), /parameters "visual\.proj" and "visual\.proj" are the same tensor/);
  assert.throws(
    () => new AdamW([w], { clamp: { logit_scale: [0, 4.6] } }),
    /AdamW: clamp names "logit_scale", which is not a parameter/,
  );
  assert.throws(() => new AdamW([w], { clamp: { "visual.proj": [1, 0] } }), /min <= max/);
  assert.throws(() => new AdamW([w], { betas: [0.9, 1] }), /AdamW: betas\[1\] must be in \[0, 1\), got 1/);
  assert.throws(() => new AdamW([w], { lr: -1 }), /AdamW: lr must be a finite number >= 0, got -1/);
  assert.throws(() => new AdamW([w], { weightDecay: NaN }), /weightDecay must be >= 0/);
  const opt = new AdamW([w]);
  assert.throws(() => opt.step(NaN), /AdamW\.step: lr must be a finite number >= 0, got NaN/);
  w.grad = keep(tensor([1, 2, 3, 4], [4]));
  assert.throws(
    () => opt.step(),
    /AdamW\.step: the gradient of "visual\.proj" is f32 \[4\], but the parameter is f32 \[2, 2\]/,
  );
  assert.equal(opt.state().step, 0, "a rejected step changes nothing");
  assert.throws(
    () => opt.loadState({ step: 1, m: [new Float32Array(3)], v: [new Float32Array(4)] }),
    /AdamW\.loadState: m of "visual\.proj" must be f32 with 4 values \(shape \[2, 2\]\), got Float32Array of 3/,
  );
  assert.throws(() => opt.loadState({ step: 1, m: [], v: [] }), /expected 1 entries \(one per parameter\)/);
  assert.throws(() => opt.loadState({ step: -1, m: [null], v: [null] }), /step must be a whole number >= 0/);
  ids.dispose();
  cleanup(opt, [w]);
});

Deno.test("AdamW.step() with a non-finite gate leaves parameters and moments unchanged, decided on the GPU", async () => {
  const { tensor } = await import("../src/tensor/tensor.ts");
  const { AdamW } = await import("../src/optim/adamw.ts");
  const { gpu } = await import("./_harness.ts");
  await gpu();
  const w = tensor([1, -2, 3, -4], [2, 2], { requiresGrad: true });
  const opt = new AdamW([w], { lr: 0.1 });
  w.grad = tensor([0.5, 0.5, 0.5, 0.5], [2, 2]);
  opt.step(0.1, { gate: tensor([NaN], [1]) });
  const skipped = await w.toArray();
  if (skipped.join() !== "1,-2,3,-4") throw new Error(`a NaN gate must skip the step, got ${skipped}`);
  opt.step(0.1, { gate: tensor([2.5], [1]) });
  const moved = await w.toArray();
  if (moved[0] >= 1) throw new Error(`a finite gate must apply the step, got ${moved}`);
  opt.zeroGrad();
  opt.dispose();
  w.dispose();
});
