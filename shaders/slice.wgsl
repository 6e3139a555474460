// slice.wgsl: copies along one axis of tensors seen as [outer, axis, inner] (row-major), the axis being the
// only one whose size differs between the two sides.
//
//   slice_forward:   y[o, j, i]  = x[o, start + j, i]                    j < len,  x's axis has dim entries
//   slice_backward:  dx[o, k, i] = dy[o, k - start, i] if start <= k < start + len, else 0
//                    (one thread per element of dx: every element is written, overwrite, no accumulation)
//   concat_forward:  y[o, start + j, i] = x[o, j, i]                    one dispatch per concat input; the
//                    dispatches write disjoint ranges of y and together cover all of it
//
// Elements are moved as raw 32-bit words, so f32 and i32 tensors both work (0u is 0.0 and 0).
//
// Bindings (the same for every entry):
//   0 src (read)        u32 words: x [outer, dim, inner] for slice_forward, dy [outer, len, inner] for
//                       slice_backward, x [outer, len, inner] for concat_forward
//   1 dst (read_write)  u32 words: y [outer, len, inner], dx [outer, dim, inner], y [outer, dim, inner]
//   2 params (uniform)  n (threads), outer, len, inner, dim, start
// Launch: workgroup_size(256); grid1d(n) with n = outer * len * inner (slice_forward, concat_forward) or
// outer * dim * inner (slice_backward); the flat index is gid.x + gid.y * num_workgroups.x * 256.

struct Params {
  n: u32,
  outer: u32,
  len: u32,
  inner: u32,
  dim: u32,
  start: u32,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn slice_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 256u;
  if (t >= p.n) { return; }
  let i = t % p.inner;
  let j = (t / p.inner) % p.len;
  let o = t / (p.inner * p.len);
  dst[t] = src[(o * p.dim + p.start + j) * p.inner + i];
}

@compute @workgroup_size(256)
fn slice_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 256u;
  if (t >= p.n) { return; }
  let i = t % p.inner;
  let k = (t / p.inner) % p.dim;
  let o = t / (p.inner * p.dim);
  var v = 0u;
  if (k >= p.start && k < p.start + p.len) {
    v = src[(o * p.len + k - p.start) * p.inner + i];
  }
  dst[t] = v;
}

@compute @workgroup_size(256)
fn concat_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 256u;
  if (t >= p.n) { return; }
  let i = t % p.inner;
  let j = (t / p.inner) % p.len;
  let o = t / (p.inner * p.len);
  dst[(o * p.dim + p.start + j) * p.inner + i] = src[t];
}
