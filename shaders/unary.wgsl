// unary.wgsl: elementwise y = f(x) and its backward dx = dy * f'(x), one op chosen by the override OP.
//
//   OP  f(x)                          f'(x)
//   0   -x                            -1
//   1   exp(x)                        exp(x)
//   2   log(x)                        1/x
//   3   sqrt(x)                       1/(2 sqrt(x))
//   4   sigmoid(x) = 1/(1+exp(-x))    s(1-s)
//   5   tanh(x)                       1 - tanh(x)^2
//   6   gelu(x) = x Phi(x)  (erf)     Phi(x) + x phi(x)
//   7   quick_gelu = x sigmoid(1.702x)  s + 1.702 x s (1-s)
//   8   alpha*x + beta                alpha
//   9   relu(x)                       x > 0
//   10  x^2                           2x
//   11  1/x                           -1/x^2
//   12  |x|                           sign(x)
//
// Bindings (row-major f32 arrays of n elements):
//   unary_forward:  0 x (read), 1 y (read_write), 2 params (uniform)
//   unary_backward: 0 x (read), 1 dy (read), 2 dx (read_write, overwritten), 3 params (uniform)
// Launch: workgroup_size(256); grid1d(n): the flat index is gid.x + gid.y * num_workgroups.x * 256.

override OP: u32 = 0u;

struct Params {
  n: u32,
  alpha: f32,
  beta: f32,
}

const INV_SQRT_2PI: f32 = 0.3989422804014327;
// erf, sigmoid, gelu, quick_gelu and SQRT1_2 come from activation.wgsl, which unary.ts appends.

fn f(x: f32, p: Params) -> f32 {
  switch OP {
    case 0u: { return -x; }
    case 1u: { return exp(x); }
    case 2u: { return log(x); }
    case 3u: { return sqrt(x); }
    case 4u: { return sigmoid(x); }
    case 5u: { return tanh(clamp(x, -20.0, 20.0)); }
    case 6u: { return gelu(x); }
    case 7u: { return quick_gelu(x); }
    case 8u: { return p.alpha * x + p.beta; }
    case 9u: { return max(x, 0.0); }
    case 10u: { return x * x; }
    case 11u: { return 1.0 / x; }
    default: { return abs(x); }
  }
}

fn df(x: f32, p: Params) -> f32 {
  switch OP {
    case 0u: { return -1.0; }
    case 1u: { return exp(x); }
    case 2u: { return 1.0 / x; }
    case 3u: { return 0.5 / sqrt(x); }
    case 4u: { let s = sigmoid(x); return s * (1.0 - s); }
    case 5u: { let t = tanh(clamp(x, -20.0, 20.0)); return 1.0 - t * t; }
    case 6u: { return 0.5 * (1.0 + erf(x * SQRT1_2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x); }
    case 7u: { let s = sigmoid(1.702 * x); return s + 1.702 * x * s * (1.0 - s); }
    case 8u: { return p.alpha; }
    case 9u: { return select(0.0, 1.0, x > 0.0); }
    case 10u: { return 2.0 * x; }
    case 11u: { return -1.0 / (x * x); }
    default: { return sign(x); }
  }
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn unary_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) { y[i] = f(x[i], p); }
}

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> pb: Params;

@compute @workgroup_size(256)
fn unary_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < pb.n) { dx[i] = dy[i] * df(x[i], pb); }
}
