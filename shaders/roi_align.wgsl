// roi_align.wgsl: RoIAlign (Mask R-CNN; torchvision's `roi_align` with aligned=True) over a channels-last
// feature map, and its backward.
//
// Box r = (x0, y0, x1, y1) of image b = r / M is normalised to the map, so in map pixels (pixel centres at
// i + 0.5) it starts at sx = x0 * W - 0.5, sy = y0 * H - 0.5 and has size bw = (x1 - x0) * W,
// bh = (y1 - y0) * H. It is cut into P x P bins; bin (ph, pw) averages S x S bilinear samples at
//   y(ph, iy) = sy + (ph + (iy + 0.5) / S) * bh / P,   x(pw, ix) = sx + (pw + (ix + 0.5) / S) * bw / P:
//   out[r, ph, pw, c] = 1 / S^2 * sum over iy, ix < S of bilinear(features[b, :, :, c], y(ph, iy), x(pw, ix))
// bilinear() is torchvision's: a sample with y < -1, y > H, x < -1 or x > W is 0; otherwise a coordinate
// <= 0 is moved to 0 and one at or past the last row/column reads that row/column. It factorises as
// sum_{i, j} wy(y, i) * wx(x, j) * f[i, j] with 1-D weights w(v, i) (function `weight` below).
//
// Backward (features only; the boxes are data): WebGPU has no float atomics, so instead of scattering each
// sample's four weights, one thread per feature element gathers every contribution that lands on it:
//   dfeatures[b, i, j, c] = 1 / S^2 * sum over the M boxes r of image b, ph, pw of
//                           dout[r, ph, pw, c] * Wy[ph] * Wx[pw],  Wy[ph] = sum_iy wy(y(ph, iy), i)
// (and Wx likewise), using the factorisation. Race-free, a fixed summation order, dfeatures overwritten
// (not accumulated). Cost per element O(M * (2 P S + P^2)); P <= 8.
//
// Bindings (f32, row-major):
//   roi_align_forward:  0 features (read) [B, H, W, C]; 1 boxes (read) [B, M, 4];
//                       2 out (read_write, overwritten) [B, M, P, P, C]; 3 params (uniform)
//   roi_align_backward: 0 dout (read) [B, M, P, P, C]; 1 boxes (read) [B, M, 4];
//                       2 dfeatures (read_write, overwritten) [B, H, W, C]; 3 params (uniform)
//   params: n (threads), h, w, c, m, p, s
// Launch: workgroup_size(256); grid1d(n) with n = B*M*P*P*C (forward) or B*H*W*C (backward); the flat
// index is gid.x + gid.y * num_workgroups.x * 256. Channels are the fastest index, so neighbouring threads
// read neighbouring words.

struct Params {
  n: u32,
  h: u32,
  w: u32,
  c: u32,
  m: u32,
  p: u32,
  s: u32,
}

const MAX_BINS: u32 = 8u;

fn flat_index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 256u;
}

// The two taps of a 1-D bilinear read at v along an axis of `size`: (lo, hi, weight of hi), or lo = -1
// when the sample lies outside [-1, size] (it reads 0).
struct Taps {
  lo: i32,
  hi: i32,
  t: f32,
}

fn taps(v_in: f32, size: u32) -> Taps {
  if (v_in < -1.0 || v_in > f32(size)) { return Taps(-1, -1, 0.0); }
  var v = max(v_in, 0.0);
  var lo = i32(floor(v));
  var hi = lo + 1;
  if (lo >= i32(size) - 1) {
    lo = i32(size) - 1;
    hi = lo;
    v = f32(lo);
  }
  return Taps(lo, hi, v - f32(lo));
}

// w(v, i): the weight of index i in the 1-D bilinear read at v.
fn weight(v: f32, size: u32, i: i32) -> f32 {
  let k = taps(v, size);
  var w = 0.0;
  if (k.lo == i) { w += 1.0 - k.t; }
  if (k.hi == i) { w += k.t; }
  return w;
}

@group(0) @binding(0) var<storage, read> features: array<f32>;
@group(0) @binding(1) var<storage, read> boxes: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn roi_align_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = flat_index(gid, nwg);
  if (t >= p.n) { return; }
  let c = t % p.c;
  let pw = (t / p.c) % p.p;
  let ph = (t / (p.c * p.p)) % p.p;
  let r = t / (p.c * p.p * p.p);
  let b = r / p.m;
  let sx = boxes[r * 4u] * f32(p.w) - 0.5;
  let sy = boxes[r * 4u + 1u] * f32(p.h) - 0.5;
  let bin_w = (boxes[r * 4u + 2u] * f32(p.w) - 0.5 - sx) / f32(p.p);
  let bin_h = (boxes[r * 4u + 3u] * f32(p.h) - 0.5 - sy) / f32(p.p);
  let base = b * p.h * p.w;
  var acc = 0.0;
  for (var iy = 0u; iy < p.s; iy++) {
    let ky = taps(sy + (f32(ph) + (f32(iy) + 0.5) / f32(p.s)) * bin_h, p.h);
    if (ky.lo < 0) { continue; }
    for (var ix = 0u; ix < p.s; ix++) {
      let kx = taps(sx + (f32(pw) + (f32(ix) + 0.5) / f32(p.s)) * bin_w, p.w);
      if (kx.lo < 0) { continue; }
      let row_lo = (base + u32(ky.lo) * p.w) * p.c + c;
      let row_hi = (base + u32(ky.hi) * p.w) * p.c + c;
      let top = (1.0 - kx.t) * features[row_lo + u32(kx.lo) * p.c] + kx.t * features[row_lo + u32(kx.hi) * p.c];
      let bottom = (1.0 - kx.t) * features[row_hi + u32(kx.lo) * p.c] +
        kx.t * features[row_hi + u32(kx.hi) * p.c];
      acc += (1.0 - ky.t) * top + ky.t * bottom;
    }
  }
  out[t] = acc / f32(p.s * p.s);
}

@group(0) @binding(0) var<storage, read> dout: array<f32>;
@group(0) @binding(1) var<storage, read> boxes_b: array<f32>;
@group(0) @binding(2) var<storage, read_write> dfeatures: array<f32>;
@group(0) @binding(3) var<uniform> pb: Params;

@compute @workgroup_size(256)
fn roi_align_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = flat_index(gid, nwg);
  if (t >= pb.n) { return; }
  let c = t % pb.c;
  let j = i32((t / pb.c) % pb.w);
  let i = i32((t / (pb.c * pb.w)) % pb.h);
  let b = t / (pb.c * pb.w * pb.h);
  var wy: array<f32, MAX_BINS>;
  var wx: array<f32, MAX_BINS>;
  var acc = 0.0;
  for (var m = 0u; m < pb.m; m++) {
    let r = b * pb.m + m;
    let sx = boxes_b[r * 4u] * f32(pb.w) - 0.5;
    let sy = boxes_b[r * 4u + 1u] * f32(pb.h) - 0.5;
    let bin_w = (boxes_b[r * 4u + 2u] * f32(pb.w) - 0.5 - sx) / f32(pb.p);
    let bin_h = (boxes_b[r * 4u + 3u] * f32(pb.h) - 0.5 - sy) / f32(pb.p);
    var any = false;
    for (var k = 0u; k < pb.p; k++) {
      var sum_y = 0.0;
      var sum_x = 0.0;
      for (var q = 0u; q < pb.s; q++) {
        let f = f32(k) + (f32(q) + 0.5) / f32(pb.s);
        sum_y += weight(sy + f * bin_h, pb.h, i);
        sum_x += weight(sx + f * bin_w, pb.w, j);
      }
      wy[k] = sum_y;
      wx[k] = sum_x;
      any = any || sum_y != 0.0;
    }
    if (!any) { continue; }
    for (var ph = 0u; ph < pb.p; ph++) {
      if (wy[ph] == 0.0) { continue; }
      for (var pw = 0u; pw < pb.p; pw++) {
        acc += dout[((r * pb.p + ph) * pb.p + pw) * pb.c + c] * wy[ph] * wx[pw];
      }
    }
  }
  dfeatures[t] = acc / f32(pb.s * pb.s);
}
