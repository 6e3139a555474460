// adamw.wgsl: one AdamW step (PyTorch's torch.optim.AdamW, bias-corrected), in place, for a run of elements
// [offset, offset + n) of a parameter, its gradient and its two moments. Per element, in PyTorch's order:
//
//   p = p * decay                          decay = 1 - lr * weight_decay (1 for undecayed parameters)
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g^2
//   p = p - step_size * m / (sqrt(v) / bc2_sqrt + eps)
//                                          step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t)
//   p = clamp(p, lo, hi)                   only when use_clamp != 0 (logit_scale)
//
// The per-step scalars (decay, step_size, bc2_sqrt) change every step, so they live in a small storage
// buffer, one vec4 per parameter slot, uploaded once per step; the uniform holds only what stays constant,
// so its buffer and the bind groups are reused from step to step.
//
// Bindings, adamw_forward:
//   0 grad    (read)        f32[offset + n]   the gradient g
//   1 scalars (read)        vec4f[slots]      per slot: (decay, step_size, bc2_sqrt, apply); apply 0 skips
//   2 param   (read_write)  f32[offset + n]   p, updated in place
//   3 m       (read_write)  f32[offset + n]   first moment, updated in place
//   4 v       (read_write)  f32[offset + n]   second moment, updated in place
//   5 params  (uniform)     Params
// Bindings, adamw_clamp (a parameter without a gradient still gets clamped, as OpenCLIP clamps after every
// step whatever the optimizer did):
//   0 param   (read_write)  f32[offset + n]
//   1 params  (uniform)     Params
// Launch: workgroup_size(256); grid1d(n): the local index is gid.x + gid.y * num_workgroups.x * 256.
// Everything is overwritten in place; nothing accumulates. `offset` and `slot` let one buffer hold many
// parameters (a flat arena): a dispatch then covers a run of elements that share a slot.

struct Params {
  n: u32,
  offset: u32,
  slot: u32,
  use_clamp: u32,
  beta1: f32,
  one_minus_beta1: f32,
  beta2: f32,
  one_minus_beta2: f32,
  eps: f32,
  lo: f32,
  hi: f32,
}

@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read> scalars: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<uniform> u: Params;

@compute @workgroup_size(256)
fn adamw_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let local = gid.x + gid.y * nwg.x * 256u;
  if (local >= u.n) { return; }
  let i = u.offset + local;
  let s = scalars[u.slot];
  if (s.w == 0.0) { return; } // gated off: a non-finite loss this step
  let g = grad[i];
  let mi = u.beta1 * m[i] + u.one_minus_beta1 * g;
  let vi = u.beta2 * v[i] + u.one_minus_beta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  var x = param[i] * s.x;
  x = x - s.y * mi / (sqrt(vi) / s.z + u.eps);
  if (u.use_clamp != 0u) { x = clamp(x, u.lo, u.hi); }
  param[i] = x;
}

@group(0) @binding(0) var<storage, read_write> clamp_param: array<f32>;
@group(0) @binding(1) var<uniform> pc: Params;

@compute @workgroup_size(256)
fn adamw_clamp(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let local = gid.x + gid.y * nwg.x * 256u;
  if (local >= pc.n) { return; }
  let i = pc.offset + local;
  clamp_param[i] = clamp(clamp_param[i], pc.lo, pc.hi);
}

// adamw_gate: clears every slot's apply flag when gate[0] is NaN or infinite (an exponent of all ones).
//   0 gate    (read)        f32[1]
//   1 scalars (read_write)  vec4f[slots]
//   2 params  (uniform)     slots
// Launch: workgroup_size(256); grid1d(slots).

struct GateParams {
  slots: u32,
}

@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read_write> gated_scalars: array<vec4f>;
@group(0) @binding(2) var<uniform> pg: GateParams;

@compute @workgroup_size(256)
fn adamw_gate(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let slot = gid.x + gid.y * nwg.x * 256u;
  if (slot >= pg.slots) { return; }
  let finite = (bitcast<u32>(gate[0]) & 0x7f800000u) != 0x7f800000u;
  if (!finite) { gated_scalars[slot].w = 0.0; }
}
