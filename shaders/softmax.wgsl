// softmax.wgsl: softmax and log-softmax over the last axis of x seen as [rows, d] (row-major), one op chosen
// by the override LOG (0 softmax, 1 log-softmax). Numerically stable: the row max m is subtracted first.
//
//   m[r] = max_i x[r, i]          s[r] = sum_i exp(x[r, i] - m[r])
//   softmax:      y[r, i]   = exp(x[r, i] - m[r]) / s[r]
//   log-softmax:  out[r, i] = x[r, i] - m[r] - log(s[r])
//   backward, softmax:      dx = y * (dy - sum_i(dy * y))       saved: y, the forward's output
//   backward, log-softmax:  dx = dy - exp(out) * sum_i(dy)      saved: out, the forward's output
//
// -inf entries (masks): they get y = 0 and out = -inf, and the gradients above (0 for softmax, dy for
// log-softmax, since exp(out) = 0). A row that is entirely -inf gives y = 0 everywhere (PyTorch: NaN) and
// out = -inf everywhere; its backward gives dx = 0 (softmax) and dx = dy (log-softmax), never NaN for a
// finite dy. +inf and NaN inputs propagate NaN.
//
// Bindings:
//   softmax_forward:
//     0 x  (read)        f32 [rows, d]
//     1 y  (read_write)  f32 [rows, d], overwritten (y for softmax, out for log-softmax)
//     2 params (uniform) rows, d
//   softmax_backward:
//     0 y  (read)        f32 [rows, d], the forward's output
//     1 dy (read)        f32 [rows, d]
//     2 dx (read_write)  f32 [rows, d], overwritten
//     3 params (uniform) rows, d
// Launch (both entries): workgroup_size(256) holding 256 / TPR rows of TPR threads each (override TPR, a
// power of two <= 256 chosen in softmax.ts from d); a row's threads stride over it and reduce in shared
// memory (a fixed tree: deterministic). Grid: ceil(rows / (256 / TPR)) workgroups folded into x and y
// (workgroup index = wid.x + wid.y * num_workgroups.x).

override LOG: u32 = 0u;
override TPR: u32 = 256u;
const WG: u32 = 256u;

struct Params {
  rows: u32,
  d: u32,
}

var<workgroup> partial: array<f32, 256>;

fn neg_inf() -> f32 {
  return bitcast<f32>(0xff800000u);
}

// Sum (or max) of v over the TPR threads of each row; every thread gets its row's result. It has barriers:
// call it from uniform control flow, with v at the identity (0 or -inf) in threads of rows past the end.
fn row_reduce(v: f32, lid: u32, is_max: bool) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  let lane = lid % TPR;
  for (var stride = TPR / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      let a = partial[lid];
      let b = partial[lid + stride];
      partial[lid] = select(a + b, max(a, b), is_max);
    }
    workgroupBarrier();
  }
  let result = partial[lid - lane];
  // Every thread has read before the next reduction overwrites `partial`.
  workgroupBarrier();
  return result;
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn softmax_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let row = (wid.x + wid.y * nwg.x) * (WG / TPR) + lid / TPR;
  let lane = lid % TPR;
  let valid = row < p.rows;
  let start = row * p.d;

  var m = neg_inf();
  if (valid) {
    for (var i = lane; i < p.d; i += TPR) { m = max(m, x[start + i]); }
  }
  m = row_reduce(m, lid, true);
  // An all -inf row shifts by 0, so exp(-inf - 0) = 0 instead of exp(-inf + inf) = NaN.
  let shift = select(m, 0.0, m == neg_inf());

  var s = 0.0;
  if (valid) {
    for (var i = lane; i < p.d; i += TPR) { s += exp(x[start + i] - shift); }
  }
  s = row_reduce(s, lid, false);
  if (!valid) { return; } // after the last barrier

  if (LOG == 1u) {
    let log_s = log(s);
    for (var i = lane; i < p.d; i += TPR) {
      // s == 0 only for an all -inf row, where -inf - (-inf) would be NaN.
      y[start + i] = select((x[start + i] - shift) - log_s, neg_inf(), s == 0.0);
    }
  } else {
    let inv_s = select(1.0 / s, 0.0, s == 0.0);
    for (var i = lane; i < p.d; i += TPR) { y[start + i] = exp(x[start + i] - shift) * inv_s; }
  }
}

@group(0) @binding(0) var<storage, read> saved: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> pb: Params;

@compute @workgroup_size(256)
fn softmax_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let row = (wid.x + wid.y * nwg.x) * (WG / TPR) + lid / TPR;
  let lane = lid % TPR;
  let valid = row < pb.rows;
  let start = row * pb.d;

  // softmax: t = sum(dy * y); log-softmax: t = sum(dy).
  var t = 0.0;
  if (valid) {
    for (var i = lane; i < pb.d; i += TPR) {
      t += select(dy[start + i] * saved[start + i], dy[start + i], LOG == 1u);
    }
  }
  t = row_reduce(t, lid, false);
  if (!valid) { return; }

  for (var i = lane; i < pb.d; i += TPR) {
    let g = dy[start + i];
    if (LOG == 1u) {
      let prob = exp(saved[start + i]);
      // prob == 0 at -inf outputs: skip the product so an infinite t cannot make 0 * inf = NaN.
      dx[start + i] = g - select(prob * t, 0.0, prob == 0.0);
    } else {
      dx[start + i] = saved[start + i] * (g - t);
    }
  }
}
