// layer_norm.wgsl: layer normalisation over the last axis of x seen as [rows, d] (row-major), PyTorch
// semantics (biased variance, eps inside the square root).
//
//   mean[r] = sum_i x[r, i] / d
//   rstd[r] = 1 / sqrt(sum_i (x[r, i] - mean[r])^2 / d + eps)        (two passes: no cancellation)
//   xhat    = (x - mean) * rstd
//   y       = xhat * weight + bias                                     saved: mean, rstd (x, weight are inputs)
// Backward, with g = dy * weight:
//   dx      = rstd * (g - sum_i(g) / d - xhat * sum_i(g * xhat) / d)            layer_norm_backward
//             (+ addend when HAS_ADDEND: the gradient x already has from its other uses)
//   dweight = sum_r dy * xhat,  dbias = sum_r dy                                layer_norm_backward_weight
// Every output is overwritten (the caller accumulates, except dx's HAS_ADDEND epilogue). All sums run in a fixed order: deterministic.
//
// Bindings:
//   layer_norm_forward:
//     0 x      (read)        f32 [rows, d]
//     1 weight (read)        f32 [d]
//     2 bias   (read)        f32 [d]
//     3 y      (read_write)  f32 [rows, d]
//     4 mean   (read_write)  f32 [rows]
//     5 rstd   (read_write)  f32 [rows]
//     6 params (uniform)     rows, d, eps
//   layer_norm_backward:
//     0 x (read) f32 [rows, d]; 1 weight (read) f32 [d]; 2 dy (read) f32 [rows, d];
//     3 mean (read) f32 [rows]; 4 rstd (read) f32 [rows]; 5 addend (read) f32 [rows, d] (any buffer when
//     HAS_ADDEND is false); 6 dx (read_write) f32 [rows, d]; 7 params
//   layer_norm_backward_weight:
//     0 x (read) f32 [rows, d]; 1 dy (read) f32 [rows, d]; 2 mean (read) f32 [rows]; 3 rstd (read) f32 [rows];
//     4 dweight (read_write) f32 [d]; 5 dbias (read_write) f32 [d]; 6 params
// Launch:
//   layer_norm_forward, layer_norm_backward: workgroup_size(256) holding 256 / TPR rows of TPR threads
//     each (override TPR, a power of two <= 256 chosen in layer_norm.ts from d); a row's threads stride
//     over it and reduce in shared memory. Grid: ceil(rows / (256 / TPR)) workgroups folded into x and y
//     (workgroup index = wid.x + wid.y * num_workgroups.x).
//   layer_norm_backward_weight: workgroup_size(256) = 16 columns x 16 row lanes; lane k sums rows
//     k, k + 16, ... of its column (coalesced: 16 adjacent columns), then a tree over the lanes.
//     Grid: ceil(d / 16) workgroups folded into x and y.

override TPR: u32 = 256u;
// layer_norm_backward: add `addend` to dx.
override HAS_ADDEND: bool = false;
const WG: u32 = 256u;
const COLS: u32 = 16u;
const LANES: u32 = 16u;

struct Params {
  rows: u32,
  d: u32,
  eps: f32,
}

var<workgroup> partial: array<vec2f, 256>;

// Sums v over the TPR threads of each row; every thread gets its row's result. It has barriers: call it
// from uniform control flow, with v = 0 in threads of rows past the end.
fn row_sum(v: vec2f, lid: u32) -> vec2f {
  partial[lid] = v;
  workgroupBarrier();
  let lane = lid % TPR;
  for (var stride = TPR / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  let result = partial[lid - lane];
  // Every thread has read before the next reduction overwrites `partial`.
  workgroupBarrier();
  return result;
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(256)
fn layer_norm_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let row = (wid.x + wid.y * nwg.x) * (WG / TPR) + lid / TPR;
  let lane = lid % TPR;
  let valid = row < p.rows;
  let start = row * p.d;
  let n = f32(p.d);

  var s = 0.0;
  if (valid) {
    for (var i = lane; i < p.d; i += TPR) { s += x[start + i]; }
  }
  let mu = row_sum(vec2f(s, 0.0), lid).x / n;

  var q = 0.0;
  if (valid) {
    for (var i = lane; i < p.d; i += TPR) {
      let c = x[start + i] - mu;
      q += c * c;
    }
  }
  let rs = 1.0 / sqrt(row_sum(vec2f(q, 0.0), lid).x / n + p.eps);
  if (!valid) { return; } // after the last barrier

  for (var i = lane; i < p.d; i += TPR) {
    y[start + i] = (x[start + i] - mu) * rs * weight[i] + bias[i];
  }
  if (lane == 0u) {
    mean[row] = mu;
    rstd[row] = rs;
  }
}

@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> saved_mean: array<f32>;
@group(0) @binding(4) var<storage, read> saved_rstd: array<f32>;
@group(0) @binding(5) var<storage, read> addend: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<uniform> pb: Params; // the uniform comes after the outputs

@compute @workgroup_size(256)
fn layer_norm_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let row = (wid.x + wid.y * nwg.x) * (WG / TPR) + lid / TPR;
  let lane = lid % TPR;
  let valid = row < pb.rows;
  let start = row * pb.d;

  var mu = 0.0;
  var rs = 0.0;
  // (sum g, sum g * xhat) over the row
  var acc = vec2f(0.0);
  if (valid) {
    mu = saved_mean[row];
    rs = saved_rstd[row];
    for (var i = lane; i < pb.d; i += TPR) {
      let g = dy[start + i] * weight[i];
      acc += vec2f(g, g * (x[start + i] - mu) * rs);
    }
  }
  let sums = row_sum(acc, lid) / f32(pb.d);
  if (!valid) { return; }

  for (var i = lane; i < pb.d; i += TPR) {
    let g = dy[start + i] * weight[i];
    let xhat = (x[start + i] - mu) * rs;
    var out = rs * (g - sums.x - xhat * sums.y);
    if (HAS_ADDEND) { out += addend[start + i]; }
    dx[start + i] = out;
  }
}

@group(0) @binding(1) var<storage, read> w_dy: array<f32>;
@group(0) @binding(2) var<storage, read> w_mean: array<f32>;
@group(0) @binding(3) var<storage, read> w_rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(5) var<storage, read_write> dbias: array<f32>;

@compute @workgroup_size(256)
fn layer_norm_backward_weight(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let c = lid % COLS;
  let k = lid / COLS;
  let col = (wid.x + wid.y * nwg.x) * COLS + c;

  // (sum dy * xhat, sum dy) over this lane's rows
  var acc = vec2f(0.0);
  if (col < p.d) {
    for (var r = k; r < p.rows; r += LANES) {
      let g = w_dy[r * p.d + col];
      acc += vec2f(g * (x[r * p.d + col] - w_mean[r]) * w_rstd[r], g);
    }
  }
  partial[lid] = acc;
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
    if (k < stride) { partial[lid] += partial[lid + stride * COLS]; }
    workgroupBarrier();
  }
  if (k == 0u && col < p.d) {
    dweight[col] = partial[c].x;
    dbias[col] = partial[c].y;
  }
}
