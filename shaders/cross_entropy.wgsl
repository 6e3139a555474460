// cross_entropy.wgsl: per-row cross-entropy of logits x [rows, d] (row-major) against class ids
// targets [rows], fusing log-softmax and the pick of the target's entry.
//
//   m[r]    = max_i x[r, i]
//   lse[r]  = m[r] + log(sum_i exp(x[r, i] - m[r]))                   saved for the backward
//   loss[r] = lse[r] - x[r, targets[r]]                                computed as (m - x_t) + log(s)
//   backward: dx[r, i] = (exp(x[r, i] - lse[r]) - [i == targets[r]]) * dloss[r]
//
// A target outside [0, d) is not an error the GPU can raise: its row's loss is NaN (the backward then
// treats the row as having no target). A row that is entirely -inf has lse = -inf and loss NaN; its
// backward gives dx = -dloss at the target and 0 elsewhere (exp(-inf - lse) is taken as 0).
//
// Bindings:
//   cross_entropy_forward:
//     0 x       (read)        f32 [rows, d]
//     1 targets (read)        i32 [rows]
//     2 loss    (read_write)  f32 [rows], overwritten
//     3 lse     (read_write)  f32 [rows], overwritten
//     4 params  (uniform)     rows, d
//   cross_entropy_backward:
//     0 x       (read)        f32 [rows, d]
//     1 targets (read)        i32 [rows]
//     2 lse     (read)        f32 [rows], from the forward
//     3 dloss   (read)        f32 [rows]
//     4 dx      (read_write)  f32 [rows, d], overwritten
//     5 params  (uniform)     rows, d
// Launch:
//   cross_entropy_forward: workgroup_size(256) holding 256 / TPR rows of TPR threads each (override TPR,
//     a power of two <= 256 chosen in losses.ts from d); a row's threads reduce in shared memory. Grid:
//     ceil(rows / (256 / TPR)) workgroups folded into x and y (index = wid.x + wid.y * num_workgroups.x).
//   cross_entropy_backward: one thread per element, workgroup_size(256), grid1d(rows * d): the flat
//     index is gid.x + gid.y * num_workgroups.x * 256.

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
  workgroupBarrier();
  return result;
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn cross_entropy_forward(
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
  if (!valid || lane != 0u) { return; } // after the last barrier

  let log_s = log(s);
  lse[row] = shift + log_s;
  let t = targets[row];
  if (t < 0 || u32(t) >= p.d) {
    loss[row] = bitcast<f32>(0x7fc00000u); // NaN: the target is out of range
  } else {
    loss[row] = (shift - x[start + u32(t)]) + log_s;
  }
}

@group(0) @binding(2) var<storage, read> saved_lse: array<f32>;
@group(0) @binding(3) var<storage, read> dloss: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<uniform> pb: Params;

@compute @workgroup_size(256)
fn cross_entropy_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= pb.rows * pb.d) { return; }
  let r = i / pb.d;
  let c = i % pb.d;
  let v = x[i];
  let prob = select(exp(v - saved_lse[r]), 0.0, v == neg_inf());
  let hit = select(0.0, 1.0, targets[r] == i32(c));
  dx[i] = (prob - hit) * dloss[r];
}
