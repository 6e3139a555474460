// gather.wgsl: y = take(x, indices, axis) and its backward, a deterministic scatter-add.
//
// x is seen as [outer, dim, inner] around the gathered axis and indices as a flat list of k_count entries.
//   gather_forward:   y[o, k, i] = x[o, c(k), i]   with c(k) = clamp(indices[k], 0, dim - 1)
//   backward:         dx[o, d, i] = sum of dy[o, k, i] over every k with c(k) = d, in increasing k
// Indices are not validated on the GPU: out-of-range ones are clamped, so nothing is read out of bounds.
//
// WebGPU has no float atomics, so the backward groups the indices into linked lists instead:
//   gather_heads:     links[d] = -1 for every d < dim
//   gather_links:     thread k: links[dim + k] = the next k' > k with c(k') = c(k), or -1; and when k is the
//                     first k with its c(k), links[c(k)] = k (exactly one writer per entry, race-free)
//   gather_backward:  thread per element of dx: follows the list from links[d] and sums dy; dx is
//                     overwritten (rows no index names get 0), not accumulated
// Cost: gather_links scans the indices once per index, O(k_count^2) word compares (k_count is small here:
// token ids, EOT rows, region slots); gather_heads O(dim); gather_backward O(outer * dim * inner +
// outer * k_count * inner). The sums run in a fixed order, so the gradient is the same on every run.
// gather_forward moves raw 32-bit words (f32 or i32 x); the backward is f32.
//
// Bindings:
//   gather_forward:  0 x (read) u32 words [outer, dim, inner]; 1 indices (read) i32 [k_count];
//                    2 y (read_write, overwritten) u32 words [outer, k_count, inner]; 3 params
//   gather_heads:    0 links (read_write) i32 [dim + k_count]; 1 params
//   gather_links:    0 indices (read) i32 [k_count]; 1 links (read_write) i32 [dim + k_count]; 2 params
//   gather_backward: 0 dy (read) f32 [outer, k_count, inner]; 1 links (read) i32 [dim + k_count];
//                    2 dx (read_write, overwritten) f32 [outer, dim, inner]; 3 params
//   params (uniform): n (threads), outer, dim, k_count, inner
// Launch: workgroup_size(256); grid1d(n) with n = outer * k_count * inner (gather_forward), dim
// (gather_heads), k_count (gather_links), outer * dim * inner (gather_backward); the flat index is
// gid.x + gid.y * num_workgroups.x * 256.

struct Params {
  n: u32,
  outer: u32,
  dim: u32,
  k_count: u32,
  inner: u32,
}

fn flat_index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 256u;
}

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read> indices: array<i32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

fn clamped(k: u32, dim: u32) -> u32 {
  return u32(clamp(indices[k], 0, i32(dim) - 1));
}

@compute @workgroup_size(256)
fn gather_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = flat_index(gid, nwg);
  if (t >= p.n) { return; }
  let i = t % p.inner;
  let k = (t / p.inner) % p.k_count;
  let o = t / (p.inner * p.k_count);
  y[t] = x[(o * p.dim + clamped(k, p.dim)) * p.inner + i];
}

@group(0) @binding(0) var<storage, read_write> heads: array<i32>;
@group(0) @binding(1) var<uniform> ph: Params;

@compute @workgroup_size(256)
fn gather_heads(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let d = flat_index(gid, nwg);
  if (d < ph.n) { heads[d] = -1; }
}

@group(0) @binding(0) var<storage, read> idx: array<i32>;
@group(0) @binding(1) var<storage, read_write> links: array<i32>;
@group(0) @binding(2) var<uniform> pl: Params;

@compute @workgroup_size(256)
fn gather_links(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = flat_index(gid, nwg);
  if (k >= pl.n) { return; }
  let hi = i32(pl.dim) - 1;
  let c = clamp(idx[k], 0, hi);
  var is_first = true;
  for (var j = 0u; j < k; j++) {
    if (clamp(idx[j], 0, hi) == c) {
      is_first = false;
      break;
    }
  }
  var after = -1;
  for (var j = k + 1u; j < pl.k_count; j++) {
    if (clamp(idx[j], 0, hi) == c) {
      after = i32(j);
      break;
    }
  }
  links[pl.dim + k] = after;
  if (is_first) { links[u32(c)] = i32(k); }
}

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> chain: array<i32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> pb: Params;

@compute @workgroup_size(256)
fn gather_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = flat_index(gid, nwg);
  if (t >= pb.n) { return; }
  let i = t % pb.inner;
  let d = (t / pb.inner) % pb.dim;
  let o = t / (pb.inner * pb.dim);
  var s = 0.0;
  var k = chain[d];
  while (k >= 0) {
    s += dy[(o * pb.k_count + u32(k)) * pb.inner + i];
    k = chain[pb.dim + u32(k)];
  }
  dx[t] = s;
}
