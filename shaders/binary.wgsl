// binary.wgsl: elementwise out = a OP b with NumPy broadcasting, one op chosen by the override OP.
//
//   OP  out            OP  out
//   0   a + b          5   min(a, b)
//   1   a - b          6   a == b  (1.0 or 0.0)
//   2   a * b          7   a > b   (1.0 or 0.0)
//   3   a / b          8   a < b   (1.0 or 0.0)
//   4   max(a, b)      9   a >= b  (1.0 or 0.0)
//                      10  a       (broadcasts a to out_shape; b is not read)
//
// The backward is composed in binary.ts from these same ops and a sum over broadcast axes.
//
// Bindings:
//   0 a   (read)        f32, row-major, read through a_strides (0 on broadcast axes)
//   1 b   (read)        f32, row-major, read through b_strides
//   2 out (read_write)  f32, row-major of shape out_shape, n elements, overwritten
//   3 params (uniform)  n, rank (<= 8), out_shape[8], a_strides[8], b_strides[8] (each as two vec4u)
// When `same` is 1 all three have one shape and the index is used directly.
// Launch: workgroup_size(256); grid1d(n): the flat index is gid.x + gid.y * num_workgroups.x * 256.

override OP: u32 = 0u;

struct Params {
  n: u32,
  rank: u32,
  same: u32,
  out_shape: array<vec4u, 2>,
  a_strides: array<vec4u, 2>,
  b_strides: array<vec4u, 2>,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn apply(x: f32, y: f32) -> f32 {
  switch OP {
    case 0u: { return x + y; }
    case 1u: { return x - y; }
    case 2u: { return x * y; }
    case 3u: { return x / y; }
    case 4u: { return max(x, y); }
    case 5u: { return min(x, y); }
    case 6u: { return select(0.0, 1.0, x == y); }
    case 7u: { return select(0.0, 1.0, x > y); }
    case 8u: { return select(0.0, 1.0, x < y); }
    case 9u: { return select(0.0, 1.0, x >= y); }
    default: { return x; }
  }
}

@compute @workgroup_size(256)
fn binary_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  if (p.same == 1u) {
    out[i] = apply(a[i], b[i]);
    return;
  }
  var rest = i;
  var ia = 0u;
  var ib = 0u;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let k = u32(d);
    let dim = p.out_shape[k / 4u][k % 4u];
    let coord = rest % dim;
    rest = rest / dim;
    ia += coord * p.a_strides[k / 4u][k % 4u];
    ib += coord * p.b_strides[k / 4u][k % 4u];
  }
  if (OP == 10u) {
    out[i] = a[ia];
  } else {
    out[i] = apply(a[ia], b[ib]);
  }
}
