// matmul.wgsl: batched C = op(A) @ op(B) (+ bias), with op(X) = X or X^T chosen by TRANS_A / TRANS_B.
//
//   C[z, m, n] = sum_k opA(A)[z, m, k] * opB(B)[z, k, n]  (+ bias[n] when HAS_BIAS)
//   opA(A)[z, m, k] = TRANS_A ? A[z, k, m] : A[z, m, k]   (A stored [K, M] or [M, K] per batch, row-major)
//   opB(B)[z, k, n] = TRANS_B ? B[z, n, k] : B[z, k, n]   (B stored [N, K] or [K, N] per batch, row-major)
//
// The batch index z of C (contiguous, stride M*N) is split over up to 4 batch dimensions `bshape`
// (innermost last); each operand reads batch coordinate c_d at its own stride `astride[d]` / `bstride[d]`
// in elements, 0 where that operand is broadcast. The output is overwritten, never accumulated.
//
// Bindings (every array is declared vec4 so one layout serves both the scalar and the vec4 access paths;
// pool buffers are whole multiples of 16 bytes):
//   0 a     (read)        f32 A, see above
//   1 b     (read)        f32 B, see above
//   2 bias  (read)        f32 [N]; any buffer (matmul.ts binds A again) when HAS_BIAS is false
//   3 c     (read_write)  f32 [batch, M, N], overwritten
//   4 p     (uniform)     m, n, k, batch0 (first z of this dispatch), bshape, astride, bstride
//
// Tiling: a workgroup of WG_X x WG_Y threads computes a BM x BN = (TM WG_Y) x (4 WG_X) tile of C; each
// thread keeps a TM x 4 register micro-tile (TM = 4 or 8; rows TM ty.., columns 4 tx..). K is walked in
// steps of TILE_K (a multiple of 4): the A and B tiles are staged in workgroup memory, k-major, as vec4s
// along M and N, so the inner loop is TM / 4 + 1 vec4 reads for 4 TM FMAs. Edges (M, N, K not multiples
// of the tile) are bounds-checked and read as 0.
// VEC_A / VEC_B / VEC_C switch the global reads of A, B and the writes of C (and the bias) to whole vec4s;
// matmul.ts sets them only when the contiguous dimension of that array is a multiple of 4.
// Workgroup memory: 4 * TILE_K * (BM + BN) bytes. All of these are override constants, so the tile shape
// can be tuned per adapter (matmul.ts picks 64 x 64 tiles, 16 x 8 threads of 8 x 4, for large outputs).
//
// Launch: workgroup_size(WG_X, WG_Y); grid [ceil(N / BN), ceil(M / BM), batches of this dispatch (<= 65535)].
//
// Entry point: matmul_forward. The backward (in matmul.ts) is two more launches of the same kernel with
// other transpose flags: dA = dC @ opB(B)^T, dB = opA(A)^T @ dC.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override VEC_A: bool = false;
override VEC_B: bool = false;
override VEC_C: bool = false;
override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override TILE_K: u32 = 16u;
override TM: u32 = 4u; // 4 or 8

override BM: u32 = TM * WG_Y;
override BM4: u32 = BM / 4u;
override BN: u32 = 4u * WG_X;
override THREADS: u32 = WG_X * WG_Y;

struct Params {
  m: u32,
  n: u32,
  k: u32,
  batch0: u32,
  bshape: vec4u,
  astride: vec4u,
  bstride: vec4u,
}

@group(0) @binding(0) var<storage, read> a: array<vec4f>;
@group(0) @binding(1) var<storage, read> b: array<vec4f>;
@group(0) @binding(2) var<storage, read> bias: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4f>;
@group(0) @binding(4) var<uniform> p: Params;

// a_tile[kk * BM4 + i] holds opA(A) rows m0 + 4i .. m0 + 4i + 3 of column k0 + kk; b_tile[kk * WG_X + j]
// holds opB(B) columns n0 + 4j .. n0 + 4j + 3 of row k0 + kk.
var<workgroup> a_tile: array<vec4f, TILE_K * BM4>;
var<workgroup> b_tile: array<vec4f, TILE_K * WG_X>;

fn read_a(e: u32) -> f32 { return a[e >> 2u][e & 3u]; }
fn read_b(e: u32) -> f32 { return b[e >> 2u][e & 3u]; }

// Element offsets of batch z's matrices in A and B.
fn batch_offsets(z: u32) -> vec2u {
  var rest = z;
  var off = vec2u(0u);
  for (var d = 3; d >= 0; d--) {
    let size = p.bshape[d];
    let coord = rest % size;
    rest = rest / size;
    off += coord * vec2u(p.astride[d], p.bstride[d]);
  }
  return off;
}

// Stages opA(A)[m0 .. m0 + BM, k0 .. k0 + TILE_K] into a_tile, zeros outside the matrix.
fn load_a(off: u32, m0: u32, k0: u32, tid: u32) {
  if (VEC_A && !TRANS_A) {
    // A[m, k .. k + 3] is one vec4 (K % 4 == 0): four k-rows of the tile.
    let kq = TILE_K / 4u;
    for (var i = tid; i < BM * kq; i += THREADS) {
      let m = i / kq;
      let kk = (i % kq) * 4u;
      let gm = m0 + m;
      let gk = k0 + kk;
      var v = vec4f(0.0);
      if (gm < p.m && gk < p.k) { v = a[(off + gm * p.k + gk) >> 2u]; }
      let slot = kk * BM4 + m / 4u;
      a_tile[slot][m % 4u] = v.x;
      a_tile[slot + BM4][m % 4u] = v.y;
      a_tile[slot + 2u * BM4][m % 4u] = v.z;
      a_tile[slot + 3u * BM4][m % 4u] = v.w;
    }
  } else if (VEC_A) {
    // A[k, m .. m + 3] is one vec4 (M % 4 == 0): one slot of the tile.
    let mq = BM / 4u;
    for (var i = tid; i < TILE_K * mq; i += THREADS) {
      let kk = i / mq;
      let m = (i % mq) * 4u;
      let gm = m0 + m;
      let gk = k0 + kk;
      var v = vec4f(0.0);
      if (gm < p.m && gk < p.k) { v = a[(off + gk * p.m + gm) >> 2u]; }
      a_tile[kk * BM4 + m / 4u] = v;
    }
  } else {
    for (var i = tid; i < BM * TILE_K; i += THREADS) {
      var m: u32;
      var kk: u32;
      // Consecutive threads read consecutive addresses of the stored layout.
      if (TRANS_A) {
        kk = i / BM;
        m = i % BM;
      } else {
        m = i / TILE_K;
        kk = i % TILE_K;
      }
      let gm = m0 + m;
      let gk = k0 + kk;
      var v = 0.0;
      if (gm < p.m && gk < p.k) {
        if (TRANS_A) { v = read_a(off + gk * p.m + gm); } else { v = read_a(off + gm * p.k + gk); }
      }
      a_tile[kk * BM4 + m / 4u][m % 4u] = v;
    }
  }
}

// Stages opB(B)[k0 .. k0 + TILE_K, n0 .. n0 + BN] into b_tile, zeros outside the matrix.
fn load_b(off: u32, n0: u32, k0: u32, tid: u32) {
  if (VEC_B && TRANS_B) {
    // B[n, k .. k + 3] is one vec4 (K % 4 == 0).
    let kq = TILE_K / 4u;
    for (var i = tid; i < BN * kq; i += THREADS) {
      let n = i / kq;
      let kk = (i % kq) * 4u;
      let gn = n0 + n;
      let gk = k0 + kk;
      var v = vec4f(0.0);
      if (gn < p.n && gk < p.k) { v = b[(off + gn * p.k + gk) >> 2u]; }
      let slot = kk * WG_X + n / 4u;
      b_tile[slot][n % 4u] = v.x;
      b_tile[slot + WG_X][n % 4u] = v.y;
      b_tile[slot + 2u * WG_X][n % 4u] = v.z;
      b_tile[slot + 3u * WG_X][n % 4u] = v.w;
    }
  } else if (VEC_B) {
    // B[k, n .. n + 3] is one vec4 (N % 4 == 0).
    let nq = BN / 4u;
    for (var i = tid; i < TILE_K * nq; i += THREADS) {
      let kk = i / nq;
      let n = (i % nq) * 4u;
      let gn = n0 + n;
      let gk = k0 + kk;
      var v = vec4f(0.0);
      if (gn < p.n && gk < p.k) { v = b[(off + gk * p.n + gn) >> 2u]; }
      b_tile[kk * WG_X + n / 4u] = v;
    }
  } else {
    for (var i = tid; i < BN * TILE_K; i += THREADS) {
      var n: u32;
      var kk: u32;
      if (TRANS_B) {
        n = i / TILE_K;
        kk = i % TILE_K;
      } else {
        kk = i / BN;
        n = i % BN;
      }
      let gn = n0 + n;
      let gk = k0 + kk;
      var v = 0.0;
      if (gn < p.n && gk < p.k) {
        if (TRANS_B) { v = read_b(off + gn * p.k + gk); } else { v = read_b(off + gk * p.n + gn); }
      }
      b_tile[kk * WG_X + n / 4u][n % 4u] = v;
    }
  }
}

fn bias_at(gn: u32) -> f32 {
  if (HAS_BIAS) { return bias[gn >> 2u][gn & 3u]; }
  return 0.0;
}

// Writes one row (4 columns from gn) of a thread's micro-tile, plus the bias.
fn store_row(row: u32, gn: u32, v: vec4f) {
  if (VEC_C) {
    var out = v;
    if (HAS_BIAS) { out += bias[gn >> 2u]; }
    c[(row + gn) >> 2u] = out;
  } else {
    for (var j = 0u; j < 4u; j++) {
      if (gn + j < p.n) {
        let e = row + gn + j;
        c[e >> 2u][e & 3u] = v[j] + bias_at(gn + j);
      }
    }
  }
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let z = wid.z + p.batch0;
  let off = batch_offsets(z);
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let tid = lid.y * WG_X + lid.x;

  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  var acc4 = vec4f(0.0);
  var acc5 = vec4f(0.0);
  var acc6 = vec4f(0.0);
  var acc7 = vec4f(0.0);
  for (var k0 = 0u; k0 < p.k; k0 += TILE_K) {
    load_a(off.x, m0, k0, tid);
    load_b(off.y, n0, k0, tid);
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      let bv = b_tile[kk * WG_X + lid.x];
      let av = a_tile[kk * BM4 + lid.y * (TM / 4u)];
      acc0 = fma(vec4f(av.x), bv, acc0);
      acc1 = fma(vec4f(av.y), bv, acc1);
      acc2 = fma(vec4f(av.z), bv, acc2);
      acc3 = fma(vec4f(av.w), bv, acc3);
      if (TM == 8u) {
        let av2 = a_tile[kk * BM4 + lid.y * 2u + 1u];
        acc4 = fma(vec4f(av2.x), bv, acc4);
        acc5 = fma(vec4f(av2.y), bv, acc5);
        acc6 = fma(vec4f(av2.z), bv, acc6);
        acc7 = fma(vec4f(av2.w), bv, acc7);
      }
    }
    workgroupBarrier();
  }

  let gm = m0 + lid.y * TM;
  let gn = n0 + lid.x * 4u;
  if (gn >= p.n) { return; }
  let base = z * p.m * p.n;
  if (gm < p.m) { store_row(base + gm * p.n, gn, acc0); }
  if (gm + 1u < p.m) { store_row(base + (gm + 1u) * p.n, gn, acc1); }
  if (gm + 2u < p.m) { store_row(base + (gm + 2u) * p.n, gn, acc2); }
  if (gm + 3u < p.m) { store_row(base + (gm + 3u) * p.n, gn, acc3); }
  if (TM == 8u) {
    if (gm + 4u < p.m) { store_row(base + (gm + 4u) * p.n, gn, acc4); }
    if (gm + 5u < p.m) { store_row(base + (gm + 5u) * p.n, gn, acc5); }
    if (gm + 6u < p.m) { store_row(base + (gm + 6u) * p.n, gn, acc6); }
    if (gm + 7u < p.m) { store_row(base + (gm + 7u) * p.n, gn, acc7); }
  }
}
