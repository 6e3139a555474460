// permute.wgsl: y = x with its axes reordered, y[c_0, ..., c_{r-1}] = x[c at the permuted positions].
//
// For output axis d the uniform holds out_shape[d] = x.shape[axes[d]] and in_strides[d] = the row-major
// stride of x's axis axes[d]; output element i (row-major coordinates c_d) reads x[sum_d c_d in_strides[d]].
// Elements are moved as raw 32-bit words, so one kernel serves f32 and i32 tensors.
// The backward is composed in permute.ts: dx = permute(dy, inverse(axes)), the same kernel.
//
// Bindings:
//   0 x   (read)        u32 words of an f32 or i32 tensor, row-major
//   1 y   (read_write)  u32 words, row-major of out_shape, n elements, overwritten
//   2 params (uniform)  n, rank (<= 8), 2 pad words, out_shape[8], in_strides[8] (each as two vec4u)
// Launch: workgroup_size(256); grid1d(n): the flat index is gid.x + gid.y * num_workgroups.x * 256.

struct Params {
  n: u32,
  rank: u32,
  out_shape: array<vec4u, 2>,
  in_strides: array<vec4u, 2>,
}

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> y: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn permute_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  var rest = i;
  var src = 0u;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let k = u32(d);
    let dim = p.out_shape[k / 4u][k % 4u];
    src += (rest % dim) * p.in_strides[k / 4u][k % 4u];
    rest = rest / dim;
  }
  y[i] = x[src];
}
