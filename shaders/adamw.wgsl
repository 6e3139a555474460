// adamw.wgsl: the whole optimizer update of many parameters in three dispatches: global-norm gradient
// clipping (torch.nn.utils.clip_grad_norm_) followed by PyTorch's torch.optim.AdamW (bias-corrected,
// decoupled weight decay), then an optional clamp (logit_scale), in place on flat buffers ("arenas").
//
// An arena holds many parameters one after another, each in its own segment that starts on a block of 256
// elements (one workgroup), padded up to a whole number of blocks; the four arenas (param, grad, m, v) share
// one layout. A table gives each block's segment, and a per-step table gives each segment's scalars.
//
//   adamw_sum_squares (one dispatch per arena): partials[first_partial + w] = sum of g^2 over the blocks
//                      [w * SUM_BLOCKS, (w + 1) * SUM_BLOCKS), counting only segments that have a gradient
//                      this step, and only their real (unpadded) elements
//   adamw_norm        (one dispatch):           norm = sqrt(sum of partials)
//                                               clip = min(1, max_norm / (norm + 1e-6)), or 1 when max_norm is 0
//                                               apply = norm and gate[0] are both finite
//   adamw_update      (one dispatch per arena), per element of a segment with a gradient, in PyTorch's order:
//       g = g * clip
//       p = p * decay                          decay = 1 - lr * weight_decay (1 for undecayed parameters)
//       m = beta1 * m + (1 - beta1) * g
//       v = beta2 * v + (1 - beta2) * g^2
//       p = p - step_size * m / (sqrt(v) / bc2_sqrt + eps)
//                                          step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t)
//       p = clamp(p, lo, hi)                   only for clamped segments
//     skipped entirely when apply is 0 (a non-finite loss or gradient). A segment without a gradient keeps
//     its p, m and v, except that a clamped one is still clamped (OpenCLIP clamps after every step,
//     whatever the optimizer did), even when apply is 0.
//
// Everything is overwritten in place; nothing accumulates across steps except m and v themselves.
// Launch: workgroup_size(256), grids folded into y past the per-dimension limit (w = wid.x + wid.y *
// num_workgroups.x; workgroups past the end do nothing): adamw_update takes one workgroup per block,
// adamw_sum_squares one per SUM_BLOCKS blocks (ceil(blocks / SUM_BLOCKS)), adamw_norm one.

const BLOCK: u32 = 256u;
// Blocks summed by one adamw_sum_squares workgroup: fewer workgroups, fewer barriers (which are slow on
// software drivers), and still thousands of elements in flight per workgroup.
const SUM_BLOCKS: u32 = 16u;
const HAS_GRAD: u32 = 1u; // Segment.flags: the parameter has a gradient this step
const CLAMPED: u32 = 2u; // Segment.flags: clamp the parameter to [lo, hi] after the step

// One parameter's segment and its scalars for this step (8 words; uploaded once a step).
struct Segment {
  start: u32, // the segment's first element in its arena (a multiple of BLOCK)
  size: u32, // the parameter's element count (the rest of the segment is padding)
  flags: u32, // HAS_GRAD | CLAMPED
  decay: f32,
  step_size: f32,
  bc2_sqrt: f32,
  lo: f32,
  hi: f32,
}

var<workgroup> partial_sums: array<f32, 256>;

// Sums partial_sums[0..256) into partial_sums[0]. Every thread of the workgroup must call it.
fn reduce_workgroup(lid: u32) {
  for (var stride = BLOCK / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lid < stride) { partial_sums[lid] = partial_sums[lid] + partial_sums[lid + stride]; }
  }
  workgroupBarrier();
}

fn is_finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; // an exponent of all ones is Inf or NaN
}

// ---------------------------------------------------------------------------------------------------------
// adamw_sum_squares bindings:
//   0 grad          (read)        f32[blocks * 256]     the gradient arena
//   1 segments      (read)        Segment[parameters]
//   2 block_segment (read)        u32[blocks]           each block's segment (parameter index)
//   3 partials      (read_write)  f32[every arena's ceil(blocks / SUM_BLOCKS)]
//   4 params        (uniform)     SumParams

struct SumParams {
  blocks: u32, // blocks in this arena
  first_partial: u32, // where this arena's sums start in partials
}

@group(0) @binding(0) var<storage, read> sum_grad: array<f32>;
@group(0) @binding(1) var<storage, read> sum_segments: array<Segment>;
@group(0) @binding(2) var<storage, read> sum_block_segment: array<u32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<uniform> us: SumParams;

@compute @workgroup_size(256)
fn adamw_sum_squares(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let w = wid.x + wid.y * nwg.x;
  let first = w * SUM_BLOCKS;
  let end = min(first + SUM_BLOCKS, us.blocks);
  var total = 0.0;
  for (var block = first; block < end; block = block + 1u) {
    let s = sum_segments[sum_block_segment[block]];
    let i = block * BLOCK + lid;
    if ((s.flags & HAS_GRAD) != 0u && i - s.start < s.size) {
      let g = sum_grad[i];
      total = total + g * g;
    }
  }
  partial_sums[lid] = total;
  reduce_workgroup(lid);
  if (lid == 0u && first < us.blocks) { partials[us.first_partial + w] = partial_sums[0]; }
}

// ---------------------------------------------------------------------------------------------------------
// adamw_norm bindings:
//   0 norm_partials (read)        f32[count]            every arena's sums of squares
//   1 gate          (read)        f32[1]                the caller's gate (a zero when there is none)
//   2 norm          (read_write)  f32[1]                the global gradient norm before clipping
//   3 status        (read_write)  Status                what adamw_update reads
//   4 params        (uniform)     NormParams

struct NormParams {
  count: u32,
  max_norm: f32, // 0: no clipping
}

struct Status {
  clip: f32, // the factor every gradient is scaled by
  apply: u32, // 0: skip the update
}

@group(0) @binding(0) var<storage, read> norm_partials: array<f32>;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read_write> norm_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> status_out: Status;
@group(0) @binding(4) var<uniform> un: NormParams;

@compute @workgroup_size(256)
fn adamw_norm(@builtin(local_invocation_index) lid: u32) {
  var total = 0.0;
  for (var k = lid; k < un.count; k = k + BLOCK) { total = total + norm_partials[k]; }
  partial_sums[lid] = total;
  reduce_workgroup(lid);
  if (lid == 0u) {
    let norm = sqrt(partial_sums[0]);
    norm_out[0] = norm;
    var clip = 1.0;
    if (un.max_norm > 0.0) { clip = min(1.0, un.max_norm / (norm + 1e-6)); }
    status_out.clip = clip;
    status_out.apply = select(0u, 1u, is_finite(norm) && is_finite(gate[0]));
  }
}

// ---------------------------------------------------------------------------------------------------------
// adamw_update bindings:
//   0 grad          (read)        f32[blocks * 256]     the gradient arena
//   1 segments      (read)        Segment[parameters]
//   2 block_segment (read)        u32[blocks]
//   3 status        (read)        Status                from adamw_norm
//   4 param         (read_write)  f32[blocks * 256]     the parameter arena, updated in place
//   5 m             (read_write)  f32[blocks * 256]     first moments, updated in place
//   6 v             (read_write)  f32[blocks * 256]     second moments, updated in place
//   7 params        (uniform)     UpdateParams

struct UpdateParams {
  blocks: u32,
  beta1: f32,
  one_minus_beta1: f32,
  beta2: f32,
  one_minus_beta2: f32,
  eps: f32,
}

@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read> segments: array<Segment>;
@group(0) @binding(2) var<storage, read> block_segment: array<u32>;
@group(0) @binding(3) var<storage, read> status: Status;
@group(0) @binding(4) var<storage, read_write> param: array<f32>;
@group(0) @binding(5) var<storage, read_write> m: array<f32>;
@group(0) @binding(6) var<storage, read_write> v: array<f32>;
@group(0) @binding(7) var<uniform> u: UpdateParams;

@compute @workgroup_size(256)
fn adamw_update(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let block = wid.x + wid.y * nwg.x;
  if (block >= u.blocks) { return; }
  let s = segments[block_segment[block]];
  let i = block * BLOCK + lid;
  if (i - s.start >= s.size) { return; } // padding
  let clamped = (s.flags & CLAMPED) != 0u;
  if ((s.flags & HAS_GRAD) == 0u) {
    if (clamped) { param[i] = clamp(param[i], s.lo, s.hi); }
    return;
  }
  if (status.apply == 0u) { return; } // a non-finite loss or gradient norm this step
  let g = grad[i] * status.clip;
  let mi = u.beta1 * m[i] + u.one_minus_beta1 * g;
  let vi = u.beta2 * v[i] + u.one_minus_beta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  var x = param[i] * s.decay;
  x = x - s.step_size * mi / (sqrt(vi) / s.bc2_sqrt + u.eps);
  if (clamped) { x = clamp(x, s.lo, s.hi); }
  param[i] = x;
}
