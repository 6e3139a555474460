// where.wgsl: out = cond != 0 ? a : b, elementwise with NumPy broadcasting of all three operands.
//
// The override FILL replaces one operand by the constant `value` (its f32 bits, so -inf passes through
// exactly; no arithmetic touches a or b, so an inf or NaN in the branch not taken never leaks):
//   FILL 0: out = cond ? a : b           where(cond, a, b)
//   FILL 1: out = cond ? value : b       maskedFill(b, cond, value); the binding a is not read
//   FILL 2: out = cond ? a : value       the gradient of where's `a`; the binding b is not read
// The backward is composed in where.ts from this same kernel (da = cond ? dy : 0, db = cond ? 0 : dy, each
// summed over its broadcast axes).
//
// Bindings:
//   0 cond (read)       f32, row-major, read through c_strides (0 on broadcast axes)
//   1 a    (read)       u32 words of f32 values, read through a_strides
//   2 b    (read)       u32 words of f32 values, read through b_strides
//   3 out  (read_write) u32 words, row-major of out_shape, n elements, overwritten
//   4 params (uniform)  n, rank (<= 8), value (f32 bits), 1 pad word, out_shape[8], c_strides[8],
//                       a_strides[8], b_strides[8] (each as two vec4u)
// Launch: workgroup_size(256); grid1d(n): the flat index is gid.x + gid.y * num_workgroups.x * 256.

override FILL: u32 = 0u;

struct Params {
  n: u32,
  rank: u32,
  value: u32,
  out_shape: array<vec4u, 2>,
  c_strides: array<vec4u, 2>,
  a_strides: array<vec4u, 2>,
  b_strides: array<vec4u, 2>,
}

@group(0) @binding(0) var<storage, read> cond: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn where_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  var rest = i;
  var ic = 0u;
  var ia = 0u;
  var ib = 0u;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let k = u32(d);
    let dim = p.out_shape[k / 4u][k % 4u];
    let coord = rest % dim;
    rest = rest / dim;
    ic += coord * p.c_strides[k / 4u][k % 4u];
    ia += coord * p.a_strides[k / 4u][k % 4u];
    ib += coord * p.b_strides[k / 4u][k % 4u];
  }
  let take_a = cond[ic] != 0.0;
  if (take_a) {
    if (FILL == 1u) { out[i] = p.value; } else { out[i] = a[ia]; }
  } else {
    if (FILL == 2u) { out[i] = p.value; } else { out[i] = b[ib]; }
  }
}
