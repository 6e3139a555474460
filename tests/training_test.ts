import { assert, assertEquals } from "./_assert.ts";
import { gpu } from "./_harness.ts";
import * as ops from "../mod.ts";
import { SGD } from "../src/optim/sgd.ts";

/** A tanh MLP of `depth` layers regressing a fixed smooth target of its inputs. */
function makeProblem(hidden: number, depth: number) {
  const rng = new ops.Rng(3);
  const n = 64, inDim = 4, outDim = 2;
  const xh = rng.normals(n * inDim);
  const target = new Float32Array(n * outDim);
  for (let i = 0; i < n; i++) {
    target[i * 2] = Math.sin(xh[i * 4]) + 0.5 * xh[i * 4 + 1];
    target[i * 2 + 1] = Math.cos(xh[i * 4 + 2]) * xh[i * 4 + 3];
  }
  const x = ops.keep(ops.tensor(xh, [n, inDim]));
  const y = ops.keep(ops.tensor(target, [n, outDim]));
  const layers: { w: ops.Tensor; b: ops.Tensor }[] = [];
  let width = inDim;
  for (let l = 0; l < depth; l++) {
    const out = l === depth - 1 ? outDim : hidden;
    layers.push({
      w: ops.keep(ops.tensor(rng.normals(out * width, width ** -0.5), [out, width], { requiresGrad: true })),
      b: ops.keep(ops.tensor(new Float32Array(out), [out], { requiresGrad: true })),
    });
    width = out;
  }
  const params = layers.flatMap((l) => [l.w, l.b]);
  const loss = () => {
    let h = x;
    layers.forEach((l, i) => {
      h = ops.linear(h, l.w, l.b);
      if (i < layers.length - 1) h = ops.tanh(h);
    });
    return ops.mseLoss(h, y);
  };
  return { params, loss, dispose: () => [x, y, ...params].forEach((t) => t.dispose()) };
}

Deno.test("a tiny MLP trained with SGD for 200 steps falls below 10% of its first loss, with flat GPU memory", async () => {
  const device = await gpu();
  const problem = makeProblem(32, 2);
  const sgd = new SGD(problem.params, { lr: 0.1 });
  const step = () => {
    const loss = ops.tidy(() => {
      sgd.zeroGrad();
      const loss = problem.loss();
      ops.backward(loss);
      sgd.step();
      return loss;
    });
    device.flush(); // one submit per step, as a training loop does
    return loss;
  };
  const first = step();
  const start = await first.item();
  first.dispose();
  let memoryAfterStep2 = { liveBuffers: 0, liveBytes: 0 };
  let last = 0;
  for (let i = 2; i <= 200; i++) {
    const loss = step();
    if (i === 2 || i === 200) {
      last = await loss.item(); // sync point: only to measure
      if (i === 2) memoryAfterStep2 = device.memory;
    }
    loss.dispose();
  }
  assert(last < 0.1 * start, `loss ${last} is not below 10% of the first loss ${start}`);
  assertEquals(device.memory.liveBuffers, memoryAfterStep2.liveBuffers, "live buffers grew");
  assertEquals(device.memory.liveBytes, memoryAfterStep2.liveBytes, "live bytes grew");
  sgd.zeroGrad();
  problem.dispose();
});

Deno.test("a training step submits at most once, however many ops it records", async () => {
  const device = await gpu();
  for (const depth of [2, 8]) {
    const problem = makeProblem(16, depth);
    const sgd = new SGD(problem.params, { lr: 0.01 });
    await device.sync();
    device.resetCounters();
    for (let i = 0; i < 5; i++) {
      ops.tidy(() => {
        sgd.zeroGrad();
        const loss = problem.loss();
        ops.backward(loss);
        sgd.step();
      });
      device.flush(); // the end of a step
    }
    const { submits, dispatches, readbacks } = device.counters;
    assert(dispatches > 5 * 10 * depth / 2, `expected many dispatches, got ${dispatches}`);
    assertEquals(readbacks, 0, "a step must not read back");
    assert(submits <= 5, `depth ${depth}: ${submits} submits for 5 steps`);
    sgd.zeroGrad();
    problem.dispose();
  }
});

Deno.test("bad input is refused with messages that name the op and the shapes", async () => {
  await gpu();
  const a = ops.zeros([2, 3]), b = ops.zeros([4, 5]);
  const message = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error("expected an error");
  };
  const mm = message(() => ops.matmul(a, b));
  assert(mm.includes("matmul") && mm.includes("[2, 3]") && mm.includes("[4, 5]"), mm);
  const addMsg = message(() => ops.add(a, b));
  assert(addMsg.includes("add") && addMsg.includes("[2, 3]") && addMsg.includes("[4, 5]"), addMsg);
  const ids = ops.tensor(new Int32Array([1, 2, 3]), [3]);
  const mixed = message(() => ops.add(ids, ops.zeros([3])));
  assert(mixed.includes("i32") && mixed.includes("f32"), mixed);
  const gone = ops.tensor([1, 2], [2]);
  gone.dispose();
  let readError = "";
  try {
    await gone.toArray();
  } catch (e) {
    readError = (e as Error).message;
  }
  assert(readError.includes("disposed"), `reading a disposed tensor: ${readError}`);
  [a, b, ids].forEach((t) => t.dispose());
});
