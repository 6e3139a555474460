// activation.wgsl: the MLP activations and what they are made of, for the kernels that apply one: unary.ts and
// matmul.ts append this file to unary.wgsl and matmul.wgsl, so the activation alone and the one in the matmul
// epilogue give the same bits. No bindings, no entry points.
//
//   gelu(x)       = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2     (PyTorch's default, exact through erf)
//   quick_gelu(x) = x sigmoid(1.702 x)                          (OpenAI CLIP's)

const SQRT1_2: f32 = 0.7071067811865476;

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

fn gelu(x: f32) -> f32 {
  return 0.5 * x * (1.0 + erf(x * SQRT1_2));
}

fn quick_gelu(x: f32) -> f32 {
  return x * sigmoid(1.702 * x);
}
