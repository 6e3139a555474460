import { assert, assertEquals } from "./_assert.ts";
import { gpu } from "./_harness.ts";
import { params } from "../src/gpu/device.ts";

const DOUBLE = `
struct Params { n: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(64) fn double_forward(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < p.n) { y[id.x] = 2.0 * x[id.x]; }
}`;
const kernel = { file: "double.wgsl", code: DOUBLE, entry: "double_forward" };

Deno.test("dispatches and copies recorded in any order run in that order within one submit", async () => {
  const device = await gpu();
  const a = device.upload(new Float32Array([1, 2, 3]));
  const b = device.alloc(12), c = device.alloc(12), d = device.alloc(12);
  device.resetCounters();
  device.dispatch({ kernel, inputs: [a], outputs: [b], params: params([3]), workgroups: [1] }); // b = 2a
  device.copy(b, 0, c, 0, 12); // c = b
  device.dispatch({ kernel, inputs: [c], outputs: [d], params: params([3]), workgroups: [1] }); // d = 2c
  assertEquals([...new Float32Array(await device.read(d, 12))], [4, 8, 12]);
  assertEquals(device.counters.submits, 1, "one submit for the whole sequence");
  assertEquals(device.counters.readbacks, 1);
  [a, b, c, d].forEach((buf) => device.release(buf));
});

Deno.test("the pool hands a released buffer back and bind groups are cached across identical dispatches", async () => {
  const device = await gpu();
  const x = device.upload(new Float32Array(64));
  const y = device.alloc(256);
  device.release(y);
  const again = device.alloc(256);
  assert(again === y, "the released buffer of the same size class is reused");
  device.resetCounters();
  for (let i = 0; i < 10; i++) {
    device.dispatch({ kernel, inputs: [x], outputs: [again], params: params([64]), workgroups: [1] });
  }
  assertEquals(device.counters.bindGroups <= 1, true, `bind groups created: ${device.counters.bindGroups}`);
  await device.sync();
  device.release(x);
  device.release(again);
  let doubleRelease = "";
  try {
    device.release(again);
  } catch (e) {
    doubleRelease = (e as Error).message;
  }
  assert(doubleRelease.includes("not in use"), doubleRelease);
});

Deno.test("the pool hands out its oldest free buffer first, whatever order they were released in", async () => {
  const device = await gpu();
  device.trim(); // no free buffers left over from other tests
  const [a, b, c] = [device.alloc(1024), device.alloc(1024), device.alloc(1024)];
  for (const order of [[c, a, b], [b, c, a]]) {
    order.forEach((buffer) => device.release(buffer));
    device.flush(); // released buffers become free for every use at a submit
    const again = [device.alloc(1024), device.alloc(1024), device.alloc(1024)];
    assert(again[0] === a && again[1] === b && again[2] === c, "not handed out in creation order");
  }
  [a, b, c].forEach((buffer) => device.release(buffer));
});

Deno.test("a shader that does not compile is reported with its file name and line at the next sync", async () => {
  const device = await gpu();
  const x = device.upload(new Float32Array(4)), y = device.alloc(16);
  const broken = {
    file: "broken.wgsl",
    code: DOUBLE.replace("2.0 * x[id.x]", "2.0 * undefined_name"),
    entry: "double_forward",
  };
  device.dispatch({ kernel: broken, inputs: [x], outputs: [y], params: params([4]), workgroups: [1] });
  let message = "";
  try {
    await device.sync();
  } catch (e) {
    message = (e as Error).message;
  }
  assert(message.includes("broken.wgsl"), `no file name in: ${message}`);
  assert(/broken\.wgsl:\d+:\d+/.test(message), `no line:column in: ${message}`);
  device.release(x);
  device.release(y);
});
