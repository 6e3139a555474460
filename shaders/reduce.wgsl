// reduce.wgsl: out[o, i] = REDUCE over r of x[o, r, i], for x seen as [outer, R, inner] (row-major) and
// REDUCE chosen by the override OP: 0 sum, 1 max. (Mean is a sum then a scale, in reduce.ts.)
// R = 0 gives 0 for sum and -inf for max.
//
// Bindings:
//   0 x   (read)        f32 [outer, R, inner]
//   1 out (read_write)  f32 [outer, inner], overwritten
//   2 params (uniform)  outer, R, inner, chunk
// Three launch shapes, chosen in reduce.ts:
//   reduce_forward:         one thread per output, workgroup_size(256), grid1d(outer * inner); for short R.
//   reduce_forward_wide:    one workgroup of 256 threads per output, grid (outer * inner) folded into x, y
//                           (index = wid.x + wid.y * num_workgroups.x); for long R and few outputs, a tree in
//                           shared memory.
//   reduce_forward_chunked: for long R and many outputs (a bias gradient: the sum of [rows, C] over rows).
//                           One thread per (o, chunk of `chunk` rows, i), workgroup_size(256), grid1d of
//                           outer * chunks * inner; `out` is then [outer, chunks, inner] partials, which
//                           reduce_forward finishes. Neighbouring threads read neighbouring columns and no
//                           barrier is needed, which both GPUs and CPU drivers like.

override OP: u32 = 0u;

struct Params {
  outer: u32,
  r: u32,
  inner: u32,
  chunk: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn identity() -> f32 {
  if (OP == 1u) { return bitcast<f32>(0xff800000u); } // -inf
  return 0.0;
}

fn combine(acc: f32, v: f32) -> f32 {
  if (OP == 1u) { return max(acc, v); }
  return acc + v;
}

@compute @workgroup_size(256)
fn reduce_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = gid.x + gid.y * nwg.x * 256u;
  if (j >= p.outer * p.inner) { return; }
  let o = j / p.inner;
  let i = j % p.inner;
  var acc = identity();
  var at = o * p.r * p.inner + i;
  for (var r = 0u; r < p.r; r++) {
    acc = combine(acc, x[at]);
    at += p.inner;
  }
  out[j] = acc;
}

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn reduce_forward_wide(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let j = wid.x + wid.y * nwg.x;
  // j is uniform across the workgroup, so this early return keeps the barriers in uniform control flow.
  if (j >= p.outer * p.inner) { return; }
  let o = j / p.inner;
  let i = j % p.inner;
  var acc = identity();
  for (var r = lid; r < p.r; r += 256u) {
    acc = combine(acc, x[(o * p.r + r) * p.inner + i]);
  }
  partial[lid] = acc;
  workgroupBarrier();
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { partial[lid] = combine(partial[lid], partial[lid + stride]); }
    workgroupBarrier();
  }
  if (lid == 0u) { out[j] = partial[0]; }
}

@compute @workgroup_size(256)
fn reduce_forward_chunked(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let chunks = (p.r + p.chunk - 1u) / p.chunk;
  let t = gid.x + gid.y * nwg.x * 256u;
  if (t >= p.outer * chunks * p.inner) { return; }
  let i = t % p.inner;
  let c = (t / p.inner) % chunks;
  let o = t / (p.inner * chunks);
  let end = min(p.r, (c + 1u) * p.chunk);
  var acc = identity();
  for (var r = c * p.chunk; r < end; r++) {
    acc = combine(acc, x[(o * p.r + r) * p.inner + i]);
  }
  out[t] = acc;
}
