// cast.wgsl: elementwise conversion between f32 and f16, the same values in the other type.
//
//   cast_to_f16:  h[i] = x[i] rounded to the nearest f16, ties to even; magnitudes from 65520 up give
//                 +-inf, those up to 2^-25 a signed zero (between them the f16 subnormals), NaN a quiet NaN
//   cast_to_f32:  y[i] = h[i], exactly
//
// cast_to_f16 rounds on the bits with integer arithmetic, the same steps as numberToHalf in
// src/io/safetensors.ts (what tensor(..., { dtype: "f16" }) uploads): WGSL leaves the rounding of an
// f32 -> f16 conversion to the implementation (either neighbour, and 65504 or inf just past the range), so
// a conversion through f16(...) could give other bits on other GPUs. The widening read is exact everywhere.
//
// Layout: x and y are f32 [n]; h is f16 [n], two to a 32-bit word: element 2w in the low half of word w,
// element 2w + 1 in the high half (for an odd n, the last word's high half is 0). A thread owns word w, so
// it reads or writes elements 2w and 2w + 1, and no two threads write halves of one word.
//
// Bindings (each entry its own):
//   cast_to_f16: 0 x (read)  u32 bits of f32 [n]   1 h (read_write) u32 words [ceil(n / 2)]  2 params
//   cast_to_f32: 0 h (read)  vec2<f16> [ceil(n / 2)]  1 y (read_write) f32 [n]               2 params
// Params (uniform): n.
// Launch: workgroup_size(256); grid1d(ceil(n / 2)): the word index is gid.x + gid.y * num_workgroups.x * 256.

enable f16;

struct Params {
  n: u32,
}

// The f16 bits of the f32 whose bits are x (see the header for the rounding).
fn half_bits(x: u32) -> u32 {
  let sign = (x >> 16u) & 0x8000u;
  let exp = i32((x >> 23u) & 0xffu);
  let mant = x & 0x7fffffu;
  if (exp == 255) {
    // inf stays inf; a NaN keeps a mantissa bit (the quiet bit) so that it stays a NaN.
    return sign | 0x7c00u | select(0u, 0x200u, mant != 0u);
  }
  let e = exp - 112; // the f16 exponent field: exp - 127 + 15
  if (e >= 31) { return sign | 0x7c00u; }
  if (e <= 0) {
    // An f16 subnormal (or zero): the mantissa with its implicit bit, shifted into place, rounded to even.
    if (e < -10) { return sign; }
    let full = mant | 0x800000u;
    let shift = u32(14 - e);
    let half = 1u << (shift - 1u);
    let rest = full & ((1u << shift) - 1u);
    var m = full >> shift;
    if (rest > half || (rest == half && (m & 1u) == 1u)) { m += 1u; }
    return sign | m;
  }
  var h = sign | (u32(e) << 10u) | (mant >> 13u);
  let rest = mant & 0x1fffu;
  // A carry out of the mantissa bumps the exponent, up to inf: still the correct rounding.
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u) == 1u)) { h += 1u; }
  return h;
}

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> h: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn cast_to_f16(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let w = gid.x + gid.y * nwg.x * 256u;
  let i = 2u * w;
  if (i >= p.n) { return; }
  var word = half_bits(x[i]);
  if (i + 1u < p.n) { word |= half_bits(x[i + 1u]) << 16u; }
  h[w] = word;
}

@group(0) @binding(0) var<storage, read> hr: array<vec2<f16>>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> q: Params;

@compute @workgroup_size(256)
fn cast_to_f32(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let w = gid.x + gid.y * nwg.x * 256u;
  let i = 2u * w;
  if (i >= q.n) { return; }
  let v = vec2<f32>(hr[w]);
  y[i] = v.x;
  if (i + 1u < q.n) { y[i + 1u] = v.y; }
}
