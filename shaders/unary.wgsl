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

const SQRT1_2: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;

// erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), accurate enough for f32 gelu.
fn erf(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

fn sigmoid(x: f32) -> f32 {
  // Written so that neither branch overflows exp.
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

fn f(x: f32, p: Params) -> f32 {
  switch OP {
    case 0u: { return -x; }
    case 1u: { return exp(x); }
    case 2u: { return log(x); }
    case 3u: { return sqrt(x); }
    case 4u: { return sigmoid(x); }
    case 5u: { return tanh(clamp(x, -20.0, 20.0)); }
    case 6u: { return 0.5 * x * (1.0 + erf(x * SQRT1_2)); }
    case 7u: { return x * sigmoid(1.702 * x); }
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
