// attention.wgsl: fused scaled dot-product attention, FlashAttention style: the [Tq, Tk] scores and
// probabilities are never written to memory, forward or backward.
//
// Shapes (f32; B = the number of batch items, d = D, an override in 1..MAX_D):
//   q, y, dq, dy: B items of Tq rows of d      k, v, dk, dv: B items of Tk rows of d      lse, delta [B, Tq]
// Items are numbered b = (n heads + h) slots + s (n outer, h a head, s a slot; heads = slots = 1 for plain
// [B, T, d] arrays). Where row i of item b starts (in floats) is given per array by a layout (base, outer,
// head, slot strides and a row stride):
//   base + n outer + h head + s slot + i row
// q and dq share q's layout, k and dk k's, v and dv v's, y and dy y's; lse and delta are contiguous,
// [B, Tq]. Plain arrays have outer = T d, row = d. PyTorch's packed projections are read in place: q, k, v
// of `heads` heads in one [N, T, 3 W] qkv (W = heads d, B = N heads) have outer = 3 T W, head = d, row = 3 W
// and bases 0, W, 2 W, and y [N, T, W] outer = T W, head = d, row = W; dq, dk, dv are then written into
// one [N, T, 3 W] gradient (no head split, merge or slice in between).
// Two key segments: keys j < split come from k and v, keys j >= split (row j - split) from k2 and v2, which
// live in the same buffers as k and v with layouts of their own (a slot stride of 0 shares them between the
// slots of an item: the Prompter's image keys, seen by every prompt slot of an image). The backward writes no
// gradient for the second segment: attention.ts runs attention_backward_dkv over it as a problem of its own.
//
//   forward:  s[i, j] = scale q[i] . k[j]   over the visible keys j of query i: every j < Tk, or j <= i
//                                           when causal (top-left aligned, as torch's is_causal)
//             lse[i]  = log sum_j exp(s[i, j])
//             y[i]    = sum_j exp(s[i, j] - lse[i]) v[j]
//     One pass over the keys with an online softmax: a running max m, sum l and unnormalised output acc,
//       m' = max(m, s);  l = l e^(m - m') + e^(s - m');  acc = acc e^(m - m') + e^(s - m') v[j],
//     then y = acc / l and lse = m + log l. Saved for the backward: lse (with the inputs and y).
//     A row with no visible key (Tk = 0) gives y = 0 and lse = -inf.
//   backward: P is recomputed from lse; no atomics: each gradient row is written by one thread, once
//     (overwritten, never accumulated), so two runs give the same bits.
//       p[i, j]  = exp(s[i, j] - lse[i])          delta[i] = dy[i] . y[i]
//       ds[i, j] = p[i, j] (dy[i] . v[j] - delta[i])
//       dq[i] = scale sum_j ds[i, j] k[j]   attention_backward_dq, over query rows; also writes delta
//       dk[j] = scale sum_i ds[i, j] q[i]   attention_backward_dkv, over key rows; reads delta
//       dv[j] = sum_i p[i, j] dy[i]         attention_backward_dkv
//
// Costs, for n visible (query, key) pairs of a batch item (Tq Tk, about half that causal):
//   forward 4 n d flops and n exp; dq 6 n d and n exp; dkv 8 n d and n exp (s and p are recomputed in
//   both backward kernels rather than stored: 2 n d flops more for no O(Tq Tk) memory).
//   Memory: lse and delta, 4 bytes per query row each. Registers per thread: 2 d floats (forward),
//   3 d (dq), 4 d (dkv), held as vec4 arrays of MAX_D4 = 32 (d <= 128; attention.ts composes wider heads).
//
// Bindings (row buffers are declared vec4 so that rows of a multiple of 4 move as whole vec4s, VEC; else
// element e is x[e / 4][e % 4]; pool buffers are whole multiples of 16 bytes):
//   attention_forward:
//     0 q (read)  1 k (read)  2 v (read)  3 y (read_write, overwritten)  4 lse (read_write, f32, overwritten)
//     5 params (uniform)
//   attention_backward_dq:
//     0 q  1 k  2 v  3 y_in (the forward's y)  4 dy  5 lse_in (the forward's lse, f32), all read
//     6 dq (read_write, overwritten)  7 delta (read_write, f32, overwritten)  8 params (uniform)
//   attention_backward_dkv:
//     0 q  1 k  2 v  3 delta_in (dq's delta, f32)  4 dy  5 lse_in (f32), all read
//     6 dk (read_write, overwritten)  7 dv (read_write, overwritten)  8 params (uniform)
//   (WGSL cannot give one variable two access modes, hence the _in names for y, lse and delta read back.)
//   params: batch B, tq, tk, rows R, items G, tile T, blocks, causal (0 or 1), heads, slots, split, an
//   unused word, the layouts of q, k, v, y, k2 and v2 (starts: vec4u base, outer, head, slot; row strides:
//   two vec4u), then scale (f32).
//
// Launch (every entry): workgroup_size(64), one row per thread: query rows for the forward and dq, key
// rows for dkv. A workgroup owns G = params.items batch items and one block of R = params.rows consecutive
// rows of each: thread t takes item t / R and row block R + t % R (threads past G R only help to stage).
// Rows of at most 64 make one block, longer ones ceil(rows / 64) blocks of equal size. Short rows thus
// pack many items per workgroup (Tq = 2: 32 items, Tq = 5: 12), long ones (T = 256) spread over 4
// workgroups each. Grid: params.blocks * ceil(B / G) workgroups, folded into x and y; workgroup
// w = wid.x + wid.y * num_workgroups.x has block w % blocks and items (w / blocks) G ... + G - 1.
// The other side's rows (keys and values, or queries and dy) are read T = params.tile rows at a time.
// With STAGE they go through workgroup memory first, for all G items at once: tile_a and tile_b hold
// G T D4 vec4s each (<= TILE, an override sized from maxComputeWorkgroupStorageSize), stat holds G T
// (lse, delta) pairs (<= STAT). attention.ts stages only when R >= 4 rows share each staged row: with
// 1 or 2 query rows per item (the Prompter's prompts), staging only adds a write, a barrier and a read.
//
// On llvmpipe (Mesa's CPU driver), which runs 8 invocations to an AVX2 vector but turns every storage or
// workgroup access into one access per invocation, reads dominate: vec4 rows ran the model's shapes
// 1.1-1.6x faster than scalar ones, and scalar accumulators 2x slower than vec4 ones.

override D: u32 = 16u;
// Four-float chunks per row: rows are held and staged as vec4s, zero-padded past D.
override D4: u32 = (D + 3u) / 4u;
override TILE: u32 = 448u;
// Whether the other side's rows go through workgroup memory (when several rows of an item share them) or
// are read straight from the storage buffers (one or two rows per item: staging would only add work).
override STAGE: bool = true;
// Whether D and every layout's base and strides are multiples of 4: then every row starts on a vec4 boundary
// and is read and written as whole vec4s.
override VEC: bool = false;
const WG: u32 = 64u;
const MAX_D4: u32 = 32u; // MAX_D = 128
const STAT: u32 = 256u;
// Below any score: the running max starts here, so the first key's rescale factor exp(m - s) is 0.
const LOWEST: f32 = -3.0e38;

struct Params {
  batch: u32,
  tq: u32,
  tk: u32,
  rows: u32,
  items: u32,
  tile: u32,
  blocks: u32,
  causal: u32,
  heads: u32,
  slots: u32,
  split: u32,
  unused: u32,
  // The layouts of q (and dq), k (dk), v (dv), y (dy), k2, v2, indexed by Q, K, V, Y, K2, V2: where item
  // b's rows start (base, outer, head and slot strides) and the row strides (in strides[which / 4][which % 4]).
  starts: array<vec4u, 6>,
  strides: array<vec4u, 2>,
  scale: f32,
}

const Q: u32 = 0u;
const K: u32 = 1u;
const V: u32 = 2u;
const Y: u32 = 3u;
const K2: u32 = 4u; // = K + 3u
const V2: u32 = 5u; // = V + 3u

// Where item b's row 0 of array `which` starts, in floats; row i starts `row_stride` floats per row later.
fn item_start(p: Params, which: u32, b: u32) -> u32 {
  let l = p.starts[which];
  return l.x + (b / (p.heads * p.slots)) * l.y + ((b / p.slots) % p.heads) * l.z + (b % p.slots) * l.w;
}

fn row_stride(p: Params, which: u32) -> u32 {
  return p.strides[which / 4u][which % 4u];
}

fn row_start(p: Params, which: u32, b: u32, i: u32) -> u32 {
  return item_start(p, which, b) + i * row_stride(p, which);
}

// Where key (which = K) or value (V) row j of item b starts: in the first segment or the second.
fn key_start(p: Params, which: u32, b: u32, j: u32) -> u32 {
  if (j < p.split) { return row_start(p, which, b, j); }
  return row_start(p, which + 3u, b, j - p.split);
}

// The per-thread part of key_start: an item's row 0 and row stride in both segments, (k, v, k2, v2).
struct KeyRows {
  start: vec4u,
  stride: vec4u,
}

fn key_rows(p: Params, b: u32) -> KeyRows {
  return KeyRows(
    vec4u(item_start(p, K, b), item_start(p, V, b), item_start(p, K2, b), item_start(p, V2, b)),
    vec4u(row_stride(p, K), row_stride(p, V), row_stride(p, K2), row_stride(p, V2)),
  );
}

// key_start from key_rows: (key, value) row starts of key j.
fn key_pair(r: KeyRows, j: u32, split: u32) -> vec2u {
  if (j < split) { return r.start.xy + j * r.stride.xy; }
  return r.start.zw + (j - split) * r.stride.zw;
}

var<workgroup> tile_a: array<vec4f, TILE>;
var<workgroup> tile_b: array<vec4f, TILE>;
var<workgroup> stat: array<vec2f, STAT>;

@group(0) @binding(0) var<storage, read> q: array<vec4f>;
@group(0) @binding(1) var<storage, read> k: array<vec4f>;
@group(0) @binding(2) var<storage, read> v: array<vec4f>;

fn neg_inf() -> f32 {
  return bitcast<f32>(0xff800000u);
}

// Which of chunk c's four floats lie inside the row (the rest read as 0, whatever the buffer holds there).
fn inside(c: u32) -> vec4<bool> {
  return 4u * c + vec4u(0u, 1u, 2u, 3u) < vec4u(D);
}

// Chunk c (floats 4c .. 4c + 3) of the row of q, k, v (and below y, dy) that starts at float `start`, as a
// zero-padded vec4. Without VEC, element e of the buffer is x[e / 4][e % 4].
fn q4(start: u32, c: u32) -> vec4f {
  if (VEC) { return q[start / 4u + c]; }
  let e = start + 4u * c + vec4u(0u, 1u, 2u, 3u);
  let x = vec4f(q[e.x >> 2u][e.x & 3u], q[e.y >> 2u][e.y & 3u], q[e.z >> 2u][e.z & 3u], q[e.w >> 2u][e.w & 3u]);
  return select(vec4f(0.0), x, inside(c));
}

fn k4(start: u32, c: u32) -> vec4f {
  if (VEC) { return k[start / 4u + c]; }
  let e = start + 4u * c + vec4u(0u, 1u, 2u, 3u);
  let x = vec4f(k[e.x >> 2u][e.x & 3u], k[e.y >> 2u][e.y & 3u], k[e.z >> 2u][e.z & 3u], k[e.w >> 2u][e.w & 3u]);
  return select(vec4f(0.0), x, inside(c));
}

fn v4(start: u32, c: u32) -> vec4f {
  if (VEC) { return v[start / 4u + c]; }
  let e = start + 4u * c + vec4u(0u, 1u, 2u, 3u);
  let x = vec4f(v[e.x >> 2u][e.x & 3u], v[e.y >> 2u][e.y & 3u], v[e.z >> 2u][e.z & 3u], v[e.w >> 2u][e.w & 3u]);
  return select(vec4f(0.0), x, inside(c));
}

// Stages keys and values k0 .. k0 + T - 1 of items first .. first + G - 1 as tile_a[(g T + t) D4 + c] and
// tile_b[...]; rows past Tk or past the batch are zeros. Call from uniform control flow between barriers.
fn stage_keys(lid: u32, first: u32, k0: u32, p: Params) {
  let per = p.tile * D4;
  for (var e = lid; e < p.items * per; e += WG) {
    let b = first + e / per;
    let j = k0 + (e % per) / D4;
    var kk = vec4f(0.0);
    var vv = vec4f(0.0);
    if (b < p.batch && j < p.tk) {
      kk = k4(key_start(p, K, b, j), e % D4);
      vv = v4(key_start(p, V, b, j), e % D4);
    }
    tile_a[e] = kk;
    tile_b[e] = vv;
  }
}

// The keys a workgroup of query block `block` needs: j < Tk, and j <= its last row when causal.
fn key_end(block: u32, p: Params) -> u32 {
  return select(p.tk, min(p.tk, (block + 1u) * p.rows), p.causal != 0u);
}

// Where key j = k0 + t of item g is read: its tile row (g T + t) when staged, else where its row starts in
// k (or v).
fn key_at(g: u32, t: u32, start: u32, tile: u32) -> u32 {
  return select(start, g * tile + t, STAGE);
}

// Key and value chunks of the row at `at` (a key_at).
fn key_chunk(at: u32, c: u32) -> vec4f {
  if (STAGE) { return tile_a[at * D4 + c]; }
  return k4(at, c);
}

fn value_chunk(at: u32, c: u32) -> vec4f {
  if (STAGE) { return tile_b[at * D4 + c]; }
  return v4(at, c);
}

fn sum4(x: vec4f) -> f32 {
  return (x.x + x.y) + (x.z + x.w);
}

// ---------------------------------------------------------------------------------------------------------
// Forward

@group(0) @binding(3) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(64)
fn attention_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let w = wid.x + wid.y * nwg.x;
  let block = w % p.blocks;
  let first = (w / p.blocks) * p.items;
  let g = lid / p.rows;
  let b = first + g;
  let i = block * p.rows + lid % p.rows;
  let owns_row = g < p.items && b < p.batch && i < p.tq;
  let kmax = select(p.tk, min(p.tk, i + 1u), p.causal != 0u); // this row's keys: j < kmax
  let row = b * p.tq + i; // in lse
  let keys = key_rows(p, b);

  var qs: array<vec4f, MAX_D4>; // scale q[i]
  var acc: array<vec4f, MAX_D4>; // sum_j e^(s - m) v[j]
  if (owns_row) {
    let start = row_start(p, Q, b, i);
    for (var c = 0u; c < D4; c++) { qs[c] = p.scale * q4(start, c); }
  }
  var m = LOWEST;
  var l = 0.0;
  let kend = key_end(block, p);
  for (var k0 = 0u; k0 < kend; k0 += p.tile) {
    if (STAGE) {
      workgroupBarrier(); // the previous tile is consumed
      stage_keys(lid, first, k0, p);
      workgroupBarrier();
    }
    if (owns_row && k0 < kmax) {
      let count = min(p.tile, kmax - k0);
      for (var t = 0u; t < count; t++) {
        let kv = key_pair(keys, k0 + t, p.split);
        let kat = key_at(g, t, kv.x, p.tile);
        let vat = key_at(g, t, kv.y, p.tile);
        var s4 = vec4f(0.0);
        for (var c = 0u; c < D4; c++) { s4 += qs[c] * key_chunk(kat, c); }
        let s = sum4(s4);
        if (s > m) {
          let rescale = exp(m - s);
          l *= rescale;
          for (var c = 0u; c < D4; c++) { acc[c] *= rescale; }
          m = s;
        }
        let e = exp(s - m);
        l += e;
        for (var c = 0u; c < D4; c++) { acc[c] += e * value_chunk(vat, c); }
      }
    }
  }
  if (owns_row) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    let start = row_start(p, Y, b, i);
    for (var c = 0u; c < D4; c++) {
      let x = acc[c] * inv;
      if (VEC) {
        y[start / 4u + c] = x;
      } else {
        for (var u = 0u; u < 4u && 4u * c + u < D; u++) {
          let e = start + 4u * c + u;
          y[e >> 2u][e & 3u] = x[u];
        }
      }
    }
    lse[row] = select(neg_inf(), m + log(l), l > 0.0);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Backward

@group(0) @binding(4) var<storage, read> dy: array<vec4f>;
@group(0) @binding(5) var<storage, read> lse_in: array<f32>;
@group(0) @binding(8) var<uniform> pb: Params;

fn dy4(start: u32, c: u32) -> vec4f {
  if (VEC) { return dy[start / 4u + c]; }
  let e = start + 4u * c + vec4u(0u, 1u, 2u, 3u);
  let x = vec4f(dy[e.x >> 2u][e.x & 3u], dy[e.y >> 2u][e.y & 3u], dy[e.z >> 2u][e.z & 3u], dy[e.w >> 2u][e.w & 3u]);
  return select(vec4f(0.0), x, inside(c));
}

@group(0) @binding(3) var<storage, read> y_in: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> dq: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> delta: array<f32>;

fn y4(start: u32, c: u32) -> vec4f {
  if (VEC) { return y_in[start / 4u + c]; }
  let e = start + 4u * c + vec4u(0u, 1u, 2u, 3u);
  let x = vec4f(
    y_in[e.x >> 2u][e.x & 3u],
    y_in[e.y >> 2u][e.y & 3u],
    y_in[e.z >> 2u][e.z & 3u],
    y_in[e.w >> 2u][e.w & 3u],
  );
  return select(vec4f(0.0), x, inside(c));
}

// dq[i] = scale sum_j ds[i, j] k[j], and delta[i] = dy[i] . y[i], one query row per thread.
@compute @workgroup_size(64)
fn attention_backward_dq(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let w = wid.x + wid.y * nwg.x;
  let block = w % pb.blocks;
  let first = (w / pb.blocks) * pb.items;
  let g = lid / pb.rows;
  let b = first + g;
  let i = block * pb.rows + lid % pb.rows;
  let owns_row = g < pb.items && b < pb.batch && i < pb.tq;
  let kmax = select(pb.tk, min(pb.tk, i + 1u), pb.causal != 0u);
  let row = b * pb.tq + i; // in lse and delta
  let qstart = row_start(pb, Q, b, i); // of q and dq
  let keys = key_rows(pb, b);

  var qs: array<vec4f, MAX_D4>; // scale q[i]
  var dyr: array<vec4f, MAX_D4>; // dy[i]
  var acc: array<vec4f, MAX_D4>; // sum_j ds[i, j] k[j]
  var lse_i = 0.0;
  var delta_i = 0.0;
  if (owns_row) {
    let ystart = row_start(pb, Y, b, i);
    var d4 = vec4f(0.0);
    for (var c = 0u; c < D4; c++) {
      qs[c] = pb.scale * q4(qstart, c);
      dyr[c] = dy4(ystart, c);
      d4 += dyr[c] * y4(ystart, c);
    }
    delta_i = sum4(d4);
    lse_i = lse_in[row];
  }
  let kend = key_end(block, pb);
  for (var k0 = 0u; k0 < kend; k0 += pb.tile) {
    if (STAGE) {
      workgroupBarrier();
      stage_keys(lid, first, k0, pb);
      workgroupBarrier();
    }
    if (owns_row && k0 < kmax) {
      let count = min(pb.tile, kmax - k0);
      for (var t = 0u; t < count; t++) {
        let kv = key_pair(keys, k0 + t, pb.split);
        let kat = key_at(g, t, kv.x, pb.tile);
        let vat = key_at(g, t, kv.y, pb.tile);
        var s4 = vec4f(0.0);
        var dp4 = vec4f(0.0);
        for (var c = 0u; c < D4; c++) {
          s4 += qs[c] * key_chunk(kat, c);
          dp4 += dyr[c] * value_chunk(vat, c);
        }
        let ds = exp(sum4(s4) - lse_i) * (sum4(dp4) - delta_i);
        for (var c = 0u; c < D4; c++) { acc[c] += ds * key_chunk(kat, c); }
      }
    }
  }
  if (owns_row) {
    for (var c = 0u; c < D4; c++) {
      let x = pb.scale * acc[c];
      if (VEC) {
        dq[qstart / 4u + c] = x;
      } else {
        for (var u = 0u; u < 4u && 4u * c + u < D; u++) {
          let e = qstart + 4u * c + u;
          dq[e >> 2u][e & 3u] = x[u];
        }
      }
    }
    delta[row] = delta_i;
  }
}

@group(0) @binding(3) var<storage, read> delta_in: array<f32>;
@group(0) @binding(6) var<storage, read_write> dk: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> dv: array<vec4f>;

// Stages queries (times scale) and dy rows i0 .. i0 + T - 1 of items first .. first + G - 1 as tile_a and
// tile_b, and their (lse, delta) as stat[g T + t]; rows past Tq or past the batch are zeros.
fn stage_queries(lid: u32, first: u32, i0: u32) {
  let per = pb.tile * D4;
  for (var e = lid; e < pb.items * per; e += WG) {
    let b = first + e / per;
    let i = i0 + (e % per) / D4;
    var qq = vec4f(0.0);
    var gg = vec4f(0.0);
    if (b < pb.batch && i < pb.tq) {
      qq = pb.scale * q4(row_start(pb, Q, b, i), e % D4);
      gg = dy4(row_start(pb, Y, b, i), e % D4);
    }
    tile_a[e] = qq;
    tile_b[e] = gg;
  }
  for (var e = lid; e < pb.items * pb.tile; e += WG) {
    let b = first + e / pb.tile;
    let i = i0 + e % pb.tile;
    var st = vec2f(0.0);
    if (b < pb.batch && i < pb.tq) { st = vec2f(lse_in[b * pb.tq + i], delta_in[b * pb.tq + i]); }
    stat[e] = st;
  }
}

// Query i0 + t of item g (scale q, dy, and (lse, delta)): when staged, all three are read at its tile row
// g T + t; else `at` is where its row starts in q (query_chunk), in dy (dy_chunk), or its index b Tq + i0 + t
// in lse and delta (query_stat).
fn query_chunk(at: u32, c: u32) -> vec4f {
  if (STAGE) { return tile_a[at * D4 + c]; }
  return pb.scale * q4(at, c);
}

fn dy_chunk(at: u32, c: u32) -> vec4f {
  if (STAGE) { return tile_b[at * D4 + c]; }
  return dy4(at, c);
}

fn query_stat(at: u32) -> vec2f {
  if (STAGE) { return stat[at]; }
  return vec2f(lse_in[at], delta_in[at]);
}

// dk[j] = scale sum_i ds[i, j] q[i] and dv[j] = sum_i p[i, j] dy[i], one key row per thread, for keys of
// the first segment only (attention.ts launches it with split = Tk).
@compute @workgroup_size(64)
fn attention_backward_dkv(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let w = wid.x + wid.y * nwg.x;
  let block = w % pb.blocks;
  let first = (w / pb.blocks) * pb.items;
  let g = lid / pb.rows;
  let b = first + g;
  let j = block * pb.rows + lid % pb.rows;
  let owns_row = g < pb.items && b < pb.batch && j < pb.tk;
  let kstart = row_start(pb, K, b, j); // of k and dk
  let vstart = row_start(pb, V, b, j); // of v and dv
  let queries = item_start(pb, Q, b);
  let grads = item_start(pb, Y, b);

  var kr: array<vec4f, MAX_D4>; // k[j]
  var vr: array<vec4f, MAX_D4>; // v[j]
  var dk_acc: array<vec4f, MAX_D4>; // sum_i ds[i, j] scale q[i]
  var dv_acc: array<vec4f, MAX_D4>; // sum_i p[i, j] dy[i]
  if (owns_row) {
    for (var c = 0u; c < D4; c++) {
      kr[c] = k4(kstart, c);
      vr[c] = v4(vstart, c);
    }
  }
  // Causal: key j is seen by queries i >= j, so the workgroup starts at its first key row.
  let istart = select(0u, block * pb.rows, pb.causal != 0u);
  for (var i0 = istart; i0 < pb.tq; i0 += pb.tile) {
    if (STAGE) {
      workgroupBarrier();
      stage_queries(lid, first, i0);
      workgroupBarrier();
    }
    if (owns_row) {
      let t0 = select(0u, j - i0, pb.causal != 0u && j > i0);
      let count = min(pb.tile, pb.tq - i0);
      for (var t = t0; t < count; t++) {
        let i = i0 + t;
        let tile_row = g * pb.tile + t;
        let qat = select(queries + i * row_stride(pb, Q), tile_row, STAGE);
        let dyat = select(grads + i * row_stride(pb, Y), tile_row, STAGE);
        let st = query_stat(select(b * pb.tq + i, tile_row, STAGE));
        var s4 = vec4f(0.0);
        var dp4 = vec4f(0.0);
        for (var c = 0u; c < D4; c++) {
          s4 += query_chunk(qat, c) * kr[c];
          dp4 += dy_chunk(dyat, c) * vr[c];
        }
        let pij = exp(sum4(s4) - st.x);
        let ds = pij * (sum4(dp4) - st.y);
        for (var c = 0u; c < D4; c++) {
          dv_acc[c] += pij * dy_chunk(dyat, c);
          dk_acc[c] += ds * query_chunk(qat, c);
        }
      }
    }
  }
  if (owns_row) {
    for (var c = 0u; c < D4; c++) {
      if (VEC) {
        dk[kstart / 4u + c] = dk_acc[c];
        dv[vstart / 4u + c] = dv_acc[c];
      } else {
        for (var u = 0u; u < 4u && 4u * c + u < D; u++) {
          let ek = kstart + 4u * c + u;
          let ev = vstart + 4u * c + u;
          dk[ek >> 2u][ek & 3u] = dk_acc[c][u];
          dv[ev >> 2u][ev & 3u] = dv_acc[c][u];
        }
      }
    }
  }
}
