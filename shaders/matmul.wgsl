// matmul.wgsl: batched C = op(A) @ op(B) (+ bias), with op(X) = X or X^T chosen by TRANS_A / TRANS_B.
//
//   C[z, m, n] = act(sum_k opA(A)[z, m, k] * opB(B)[z, k, n]  (+ bias[n] when HAS_BIAS))
//   act: none (ACT 0), gelu (1) or quick_gelu (2), from activation.wgsl (which matmul.ts appends); with an
//   activation the epilogue also writes the pre-activation sum to `pre`, which its backward needs.
//   opA(A)[z, m, k] = TRANS_A ? A[z, k, m] : A[z, m, k]   (A stored [K, M] or [M, K] per batch, row-major)
//   opB(B)[z, k, n] = TRANS_B ? B[z, n, k] : B[z, k, n]   (B stored [N, K] or [K, N] per batch, row-major)
//
// The batch index z of C (contiguous, stride M*N) is split over up to 4 batch dimensions `bshape`
// (innermost last); each operand reads batch coordinate c_d at its own stride `astride[d]` / `bstride[d]`
// in elements, 0 where that operand is broadcast. The output is overwritten, never accumulated.
//
// Split-K (`splits` > 1, only with one batch matrix): the grid's z is the split s, which sums k in
// [s * kchunk, min(K, (s + 1) * kchunk)) into its own slice C[s] of a [splits, M, N] buffer, without the
// bias; `matmul_reduce` then writes C = sum over s of C[s] (+ bias), in the order s = 0, 1, ..., so the
// result does not depend on scheduling. With one split, kchunk >= K and z is the batch index.
//
// Bindings (every array is declared vec4 so one layout serves both the scalar and the vec4 access paths;
// pool buffers are whole multiples of 16 bytes):
//   0 a     (read)        f32 or f16 A, see above (matmul_reduce: `partial`, the f32 [splits, M, N] sums)
//   1 b     (read)        f32 or f16 B, see above (matmul_reduce: not read; matmul.ts binds the sums again)
//   2 bias  (read)        f32 [N]; any buffer (matmul.ts binds A again) when HAS_BIAS is false
//   3 c     (read_write)  f32 [batch, M, N], or [splits, M, N] partial sums, overwritten
//   4 pre   (read_write)  f32 [batch, M, N], the sums before the activation (ACT != 0); any buffer
//                         otherwise (matmul.ts binds C again: nothing is written to it then)
//   5 p     (uniform)     m, n, k, batch0 (first z of this dispatch), bshape, astride, bstride, kchunk,
//                         splits
//
// Element types: A and B are arrays of AVec and BVec, vec4<f32> as written here. For an f16 operand
// matmul.ts builds the module from this same text with that alias set to vec4<f16> and `enable f16;` put
// first (so an adapter without shader-f16 still compiles the f32 build). Every read of A or B converts to
// f32 (`vec4f(a[i])`, `f32(a[i][j])`: identities in the f32 build, exact widenings in an f16 one), so the
// workgroup tiles, the accumulators, the bias and C are f32 in every build. Elements are counted the same
// way whatever the type: element e of A is a[e / 4][e % 4] (an f16 vec4 is 8 bytes, an f32 one 16).
//
// VEC_A / VEC_B / VEC_C switch the global reads of A, B and the writes of C (and the bias) to whole vec4s;
// matmul.ts sets them only when the contiguous dimension of that array is a multiple of 4 (then every row
// and every batch matrix starts on a vec4 boundary too).
//
// Two kernels compute the same thing; matmul.ts picks one per adapter (see src/ops/_autotune.ts):
//
// matmul_forward (shared-memory tiles, for GPUs): a workgroup of WG_X x WG_Y threads computes a
// BM x BN = (TM WG_Y) x (4 WG_X) tile of C; each thread keeps a TM x 4 register micro-tile (TM = 4 or 8;
// rows TM ty.., columns 4 tx..). K is walked in steps of TILE_K (a multiple of 4): the A and B tiles are
// staged in workgroup memory, k-major, as vec4s along M and N, so the inner loop is TM / 4 + 1 vec4 reads
// for 4 TM FMAs. Edges (M, N, K not multiples of the tile) are bounds-checked and read as 0.
// Workgroup memory: 4 * TILE_K * (BM + BN) bytes.
// Launch: workgroup_size(WG_X, WG_Y); grid [ceil(N / BN), ceil(M / BM), batches or splits of this dispatch].
//
// matmul_forward_regs (register tiles, no workgroup memory, for CPU rasterisers such as llvmpipe): each
// thread computes TM rows x 4 TN4 columns of C (TM = 4, 8 or 16; TN4 = 1, 2 or 4) in registers, reading
// A and B straight from global memory, 4 k at a time, as vec4s along whichever dimension is contiguous
// (a transposed operand's 4 x 4 blocks are regrouped in registers). llvmpipe runs a workgroup on one CPU
// thread, 8 invocations to an AVX2 vector, and (Mesa 22.3) turns every storage or workgroup read, even of
// an address all 8 share, into 8 scalar reads behind branches (and a bounds check each for storage): the
// reads cost far more than the FMAs, so a big micro-tile (16 x 16 reads 32
// vec4s for 1024 FMAs per 4 k) wins, and staging through workgroup memory only adds reads, writes and
// barriers. Rows and columns past the edge are clamped to the last one (read, computed, never stored), so
// the inner loop has no bounds checks; when K is not a multiple of 4 (K_WHOLE false) the reads of k past
// the chunk's end are clamped too and replaced by exact zeros.
// Thread (tx, ty) of workgroup (wx, wy) owns row groups m = BM wy + 4 (g WG_Y + ty) + 0..3 for g < TM / 4
// and column groups n = BN wx + 4 (j WG_X + tx) + 0..3 for j < TN4, with BM = TM WG_Y, BN = 4 TN4 WG_X
// (neighbouring threads read neighbouring vec4s).
// Launch: workgroup_size(WG_X, WG_Y); grid [ceil(N / BN), ceil(M / BM), batches or splits of this dispatch].
// Every micro-tile index below is a literal (no loops over the micro-tile), so the accumulators stay in
// registers: the same kernel with loops over i and j ran 2x slower on llvmpipe, whose compiler left them
// rolled.
//
// matmul_reduce: c[e] = act(sum over s < splits of a[s M N + e] (+ bias[e mod N])) for e < M N (and pre[e]
// the sum when ACT != 0), one vec4 (VEC_C) or one element per thread. Launch: workgroup_size(64); grid [x, y] with x * y * 64 >= M N / 4 (VEC_C)
// or M N, the flat index gid.x + 64 gid.y num_workgroups.x.
//
// Entry points: matmul_forward, matmul_forward_regs, matmul_reduce. The backward (in matmul.ts) is two
// more launches of the forward kernels with other transpose flags: dA = dC @ opB(B)^T, dB = opA(A)^T @ dC.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACT: u32 = 0u; // 0 none, 1 gelu, 2 quick_gelu
override VEC_A: bool = false;
override VEC_B: bool = false;
override VEC_C: bool = false;
override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override TILE_K: u32 = 16u;
override TM: u32 = 4u; // matmul_forward: 4 or 8; matmul_forward_regs: 4, 8 or 16
override TN4: u32 = 1u; // matmul_forward_regs only: 1, 2 or 4
// matmul_forward_regs: every K chunk is a whole number of vec4s (K % 4 == 0), so no step is partial.
override K_WHOLE: bool = false;

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
  kchunk: u32,
  splits: u32,
}

// The element types of A and B (see the header): f32 here; matmul.ts makes the f16 builds.
alias AVec = vec4<f32>;
alias BVec = vec4<f32>;

@group(0) @binding(0) var<storage, read> a: array<AVec>;
@group(0) @binding(1) var<storage, read> b: array<BVec>;
@group(0) @binding(2) var<storage, read> bias: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> pre: array<vec4f>;
@group(0) @binding(5) var<uniform> p: Params;

// a_tile[kk * BM4 + i] holds opA(A) rows m0 + 4i .. m0 + 4i + 3 of column k0 + kk; b_tile[kk * WG_X + j]
// holds opB(B) columns n0 + 4j .. n0 + 4j + 3 of row k0 + kk.
var<workgroup> a_tile: array<vec4f, TILE_K * BM4>;
var<workgroup> b_tile: array<vec4f, TILE_K * WG_X>;

fn read_a(e: u32) -> f32 { return f32(a[e >> 2u][e & 3u]); }
fn read_b(e: u32) -> f32 { return f32(b[e >> 2u][e & 3u]); }

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

// The K range [x, y) of split s.
fn k_range(s: u32) -> vec2u {
  let k0 = s * p.kchunk;
  return vec2u(k0, min(p.k, k0 + p.kchunk));
}

fn bias_at(gn: u32) -> f32 {
  if (HAS_BIAS) { return bias[gn >> 2u][gn & 3u]; }
  return 0.0;
}

fn activate(z: f32) -> f32 {
  switch ACT {
    case 1u: { return gelu(z); }
    case 2u: { return quick_gelu(z); }
    default: { return z; }
  }
}

// C's element e is act(z), and pre's is z when there is an activation.
fn store(e: u32, z: f32) {
  if (ACT != 0u) { pre[e >> 2u][e & 3u] = z; }
  c[e >> 2u][e & 3u] = activate(z);
}

// Writes one row (4 columns from gn, those < N) of a thread's micro-tile, plus the bias, through the
// activation.
fn store_row(row: u32, gn: u32, v: vec4f) {
  if (VEC_C) {
    var z = v;
    if (HAS_BIAS) { z += bias[gn >> 2u]; }
    let at = (row + gn) >> 2u;
    if (ACT != 0u) {
      pre[at] = z;
      c[at] = vec4f(activate(z.x), activate(z.y), activate(z.z), activate(z.w));
    } else {
      c[at] = z;
    }
  } else {
    for (var j = 0u; j < 4u; j++) {
      if (gn + j < p.n) { store(row + gn + j, v[j] + bias_at(gn + j)); }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// matmul_forward: shared-memory tiles

// Stages opA(A)[m0 .. m0 + BM, k0 .. k0 + TILE_K] into a_tile, zeros outside the matrix and past kend.
fn load_a(off: u32, m0: u32, k0: u32, kend: u32, tid: u32) {
  if (VEC_A && !TRANS_A) {
    // A[m, k .. k + 3] is one vec4 (K % 4 == 0, and kend too): four k-rows of the tile.
    let kq = TILE_K / 4u;
    for (var i = tid; i < BM * kq; i += THREADS) {
      let m = i / kq;
      let kk = (i % kq) * 4u;
      let gm = m0 + m;
      let gk = k0 + kk;
      var v = vec4f(0.0);
      if (gm < p.m && gk < kend) { v = vec4f(a[(off + gm * p.k + gk) >> 2u]); }
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
      if (gm < p.m && gk < kend) { v = vec4f(a[(off + gk * p.m + gm) >> 2u]); }
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
      if (gm < p.m && gk < kend) {
        if (TRANS_A) { v = read_a(off + gk * p.m + gm); } else { v = read_a(off + gm * p.k + gk); }
      }
      a_tile[kk * BM4 + m / 4u][m % 4u] = v;
    }
  }
}

// Stages opB(B)[k0 .. k0 + TILE_K, n0 .. n0 + BN] into b_tile, zeros outside the matrix and past kend.
fn load_b(off: u32, n0: u32, k0: u32, kend: u32, tid: u32) {
  if (VEC_B && TRANS_B) {
    // B[n, k .. k + 3] is one vec4 (K % 4 == 0, and kend too).
    let kq = TILE_K / 4u;
    for (var i = tid; i < BN * kq; i += THREADS) {
      let n = i / kq;
      let kk = (i % kq) * 4u;
      let gn = n0 + n;
      let gk = k0 + kk;
      var v = vec4f(0.0);
      if (gn < p.n && gk < kend) { v = vec4f(b[(off + gn * p.k + gk) >> 2u]); }
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
      if (gn < p.n && gk < kend) { v = vec4f(b[(off + gk * p.n + gn) >> 2u]); }
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
      if (gn < p.n && gk < kend) {
        if (TRANS_B) { v = read_b(off + gn * p.k + gk); } else { v = read_b(off + gk * p.n + gn); }
      }
      b_tile[kk * WG_X + n / 4u][n % 4u] = v;
    }
  }
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let z = wid.z + p.batch0;
  let off = batch_offsets(z / p.splits);
  let kr = k_range(z % p.splits);
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
  for (var k0 = kr.x; k0 < kr.y; k0 += TILE_K) {
    load_a(off.x, m0, k0, kr.y, tid);
    load_b(off.y, n0, k0, kr.y, tid);
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

// ---------------------------------------------------------------------------------------------------------
// matmul_forward_regs: register tiles
//
// A thread's accumulators: acc[4 i + j] = C[row i, column group j] (a vec4 of 4 columns), i < TM, j < TN4.
// Per step of 4 k: av[i] = opA(A)[row i, k .. k + 3] and bv[4 q + j] = opB(B)[k + q, column group j].

// The element offsets of the 4 rows of one row group, starting at row m (see regs_load_a for their use).
fn regs_rows_a(off: u32, m: u32) -> vec4u {
  if (TRANS_A && VEC_A) {
    // One vec4 per k: keep the group whole (M % 4 == 0), clamped to the last group.
    return vec4u(off + min(m, p.m - 4u)) + vec4u(0u, 1u, 2u, 3u);
  }
  let rows = min(vec4u(m) + vec4u(0u, 1u, 2u, 3u), vec4u(p.m - 1u));
  if (TRANS_A) { return vec4u(off) + rows; }
  return vec4u(off) + rows * p.k;
}

// The element offsets of the 4 columns of one column group, starting at column n.
fn regs_cols_b(off: u32, n: u32) -> vec4u {
  if (!TRANS_B && VEC_B) {
    return vec4u(off + min(n, p.n - 4u)) + vec4u(0u, 1u, 2u, 3u);
  }
  let cols = min(vec4u(n) + vec4u(0u, 1u, 2u, 3u), vec4u(p.n - 1u));
  if (TRANS_B) { return vec4u(off) + cols * p.k; }
  return vec4u(off) + cols;
}

// opA(A)[row, kk.x], ..., opA(A)[row, kk.w] for the row whose element offset is `row`: A stores them at
// row + kk * M (A^T) or row + kk.
fn regs_a_row(row: u32, kk: vec4u) -> vec4f {
  var e = vec4u(row) + kk;
  if (TRANS_A) { e = vec4u(row) + kk * p.m; }
  return vec4f(read_a(e.x), read_a(e.y), read_a(e.z), read_a(e.w));
}

// opB(B)[kk, 4 columns] for the columns whose element offsets are `cols`: B stores them at cols + kk (B^T)
// or cols + kk * N.
fn regs_b_row(cols: vec4u, kk: u32) -> vec4f {
  var e = cols + vec4u(kk * p.n);
  if (TRANS_B) { e = cols + vec4u(kk); }
  return vec4f(read_b(e.x), read_b(e.y), read_b(e.z), read_b(e.w));
}

// opA(A)[4 rows, k .. k + 3] into av[i0 .. i0 + 3]; 0 for k + q >= kend (an exact 0, so that an Inf or a
// NaN at the clamped index cannot leak into the sum).
fn regs_load_a(av: ptr<function, array<vec4f, 16>>, i0: u32, rows: vec4u, k: u32, kend: u32) {
  let kq = vec4u(k) + vec4u(0u, 1u, 2u, 3u);
  let kk = min(kq, vec4u(kend - 1u));
  let valid = K_WHOLE || all(kq < vec4u(kend));
  if (VEC_A && TRANS_A) {
    // A^T is stored [K, M]: one vec4 holds the group's 4 rows at one k; regroup 4 of them by row.
    var t0 = vec4f(a[(rows.x + kk.x * p.m) >> 2u]);
    var t1 = vec4f(a[(rows.x + kk.y * p.m) >> 2u]);
    var t2 = vec4f(a[(rows.x + kk.z * p.m) >> 2u]);
    var t3 = vec4f(a[(rows.x + kk.w * p.m) >> 2u]);
    if (!valid) {
      t1 = select(vec4f(0.0), t1, kq.y < kend);
      t2 = select(vec4f(0.0), t2, kq.z < kend);
      t3 = select(vec4f(0.0), t3, kq.w < kend);
    }
    (*av)[i0] = vec4f(t0.x, t1.x, t2.x, t3.x);
    (*av)[i0 + 1u] = vec4f(t0.y, t1.y, t2.y, t3.y);
    (*av)[i0 + 2u] = vec4f(t0.z, t1.z, t2.z, t3.z);
    (*av)[i0 + 3u] = vec4f(t0.w, t1.w, t2.w, t3.w);
  } else if (VEC_A) {
    // A[m, k .. k + 3] is one vec4 (K % 4 == 0, so K_WHOLE: never a partial step).
    (*av)[i0] = vec4f(a[(rows.x + k) >> 2u]);
    (*av)[i0 + 1u] = vec4f(a[(rows.y + k) >> 2u]);
    (*av)[i0 + 2u] = vec4f(a[(rows.z + k) >> 2u]);
    (*av)[i0 + 3u] = vec4f(a[(rows.w + k) >> 2u]);
  } else {
    // Element by element: the stored rows are not whole vec4s.
    var v0 = regs_a_row(rows.x, kk);
    var v1 = regs_a_row(rows.y, kk);
    var v2 = regs_a_row(rows.z, kk);
    var v3 = regs_a_row(rows.w, kk);
    if (!valid) {
      let live = kq < vec4u(kend);
      v0 = select(vec4f(0.0), v0, live);
      v1 = select(vec4f(0.0), v1, live);
      v2 = select(vec4f(0.0), v2, live);
      v3 = select(vec4f(0.0), v3, live);
    }
    (*av)[i0] = v0;
    (*av)[i0 + 1u] = v1;
    (*av)[i0 + 2u] = v2;
    (*av)[i0 + 3u] = v3;
  }
}

// opB(B)[k .. k + 3, 4 columns] into bv[j], bv[4 + j], bv[8 + j], bv[12 + j] (one vec4 of columns per k);
// 0 for k + q >= kend.
fn regs_load_b(bv: ptr<function, array<vec4f, 16>>, j: u32, cols: vec4u, k: u32, kend: u32) {
  let kq = vec4u(k) + vec4u(0u, 1u, 2u, 3u);
  let kk = min(kq, vec4u(kend - 1u));
  let valid = K_WHOLE || all(kq < vec4u(kend));
  var t0: vec4f;
  var t1: vec4f;
  var t2: vec4f;
  var t3: vec4f;
  if (VEC_B && TRANS_B) {
    // B^T is stored [N, K]: one vec4 holds one column's 4 k (K % 4 == 0: never a partial step); regroup
    // 4 of them by k.
    let c0 = vec4f(b[(cols.x + k) >> 2u]);
    let c1 = vec4f(b[(cols.y + k) >> 2u]);
    let c2 = vec4f(b[(cols.z + k) >> 2u]);
    let c3 = vec4f(b[(cols.w + k) >> 2u]);
    t0 = vec4f(c0.x, c1.x, c2.x, c3.x);
    t1 = vec4f(c0.y, c1.y, c2.y, c3.y);
    t2 = vec4f(c0.z, c1.z, c2.z, c3.z);
    t3 = vec4f(c0.w, c1.w, c2.w, c3.w);
  } else {
    if (VEC_B) {
      // B[k, n .. n + 3] is one vec4 (N % 4 == 0).
      t0 = vec4f(b[(cols.x + kk.x * p.n) >> 2u]);
      t1 = vec4f(b[(cols.x + kk.y * p.n) >> 2u]);
      t2 = vec4f(b[(cols.x + kk.z * p.n) >> 2u]);
      t3 = vec4f(b[(cols.x + kk.w * p.n) >> 2u]);
    } else {
      t0 = regs_b_row(cols, kk.x);
      t1 = regs_b_row(cols, kk.y);
      t2 = regs_b_row(cols, kk.z);
      t3 = regs_b_row(cols, kk.w);
    }
    if (!valid) {
      t1 = select(vec4f(0.0), t1, kq.y < kend);
      t2 = select(vec4f(0.0), t2, kq.z < kend);
      t3 = select(vec4f(0.0), t3, kq.w < kend);
    }
  }
  (*bv)[j] = t0;
  (*bv)[4u + j] = t1;
  (*bv)[8u + j] = t2;
  (*bv)[12u + j] = t3;
}

// acc[row i] += av (row i's 4 k) times bv (4 k-rows of the thread's columns).
fn regs_fma_row(acc: ptr<function, array<vec4f, 64>>, i: u32, av: vec4f, bv: ptr<function, array<vec4f, 16>>) {
  let x = vec4f(av.x);
  let y = vec4f(av.y);
  let z = vec4f(av.z);
  let w = vec4f(av.w);
  (*acc)[4u * i] = fma(w, (*bv)[12], fma(z, (*bv)[8], fma(y, (*bv)[4], fma(x, (*bv)[0], (*acc)[4u * i]))));
  if (TN4 > 1u) {
    let e = 4u * i + 1u;
    (*acc)[e] = fma(w, (*bv)[13], fma(z, (*bv)[9], fma(y, (*bv)[5], fma(x, (*bv)[1], (*acc)[e]))));
  }
  if (TN4 > 2u) {
    let e = 4u * i + 2u;
    (*acc)[e] = fma(w, (*bv)[14], fma(z, (*bv)[10], fma(y, (*bv)[6], fma(x, (*bv)[2], (*acc)[e]))));
    (*acc)[e + 1u] = fma(w, (*bv)[15], fma(z, (*bv)[11], fma(y, (*bv)[7], fma(x, (*bv)[3], (*acc)[e + 1u]))));
  }
}

// One step of 4 k: loads the A and B blocks, then TM x TN4 x 4 vec4 FMAs.
fn regs_step(
  acc: ptr<function, array<vec4f, 64>>,
  ra: ptr<function, array<vec4u, 4>>,
  cb: ptr<function, array<vec4u, 4>>,
  k: u32,
  kend: u32,
) {
  var av: array<vec4f, 16>;
  var bv: array<vec4f, 16>;
  regs_load_a(&av, 0u, (*ra)[0], k, kend);
  if (TM > 4u) { regs_load_a(&av, 4u, (*ra)[1], k, kend); }
  if (TM > 8u) {
    regs_load_a(&av, 8u, (*ra)[2], k, kend);
    regs_load_a(&av, 12u, (*ra)[3], k, kend);
  }
  regs_load_b(&bv, 0u, (*cb)[0], k, kend);
  if (TN4 > 1u) { regs_load_b(&bv, 1u, (*cb)[1], k, kend); }
  if (TN4 > 2u) {
    regs_load_b(&bv, 2u, (*cb)[2], k, kend);
    regs_load_b(&bv, 3u, (*cb)[3], k, kend);
  }
  regs_fma_row(acc, 0u, av[0], &bv);
  regs_fma_row(acc, 1u, av[1], &bv);
  regs_fma_row(acc, 2u, av[2], &bv);
  regs_fma_row(acc, 3u, av[3], &bv);
  if (TM > 4u) {
    regs_fma_row(acc, 4u, av[4], &bv);
    regs_fma_row(acc, 5u, av[5], &bv);
    regs_fma_row(acc, 6u, av[6], &bv);
    regs_fma_row(acc, 7u, av[7], &bv);
  }
  if (TM > 8u) {
    regs_fma_row(acc, 8u, av[8], &bv);
    regs_fma_row(acc, 9u, av[9], &bv);
    regs_fma_row(acc, 10u, av[10], &bv);
    regs_fma_row(acc, 11u, av[11], &bv);
    regs_fma_row(acc, 12u, av[12], &bv);
    regs_fma_row(acc, 13u, av[13], &bv);
    regs_fma_row(acc, 14u, av[14], &bv);
    regs_fma_row(acc, 15u, av[15], &bv);
  }
}

// Stores row i (row index `row`, element offset `o` in C) of the thread's accumulators, columns < N.
fn regs_store_row(acc: ptr<function, array<vec4f, 64>>, i: u32, row: u32, o: u32, n: vec4u) {
  if (row < p.m) {
    if (n.x < p.n) { store_row(o, n.x, (*acc)[4u * i]); }
    if (TN4 > 1u && n.y < p.n) { store_row(o, n.y, (*acc)[4u * i + 1u]); }
    if (TN4 > 2u && n.z < p.n) { store_row(o, n.z, (*acc)[4u * i + 2u]); }
    if (TN4 > 2u && n.w < p.n) { store_row(o, n.w, (*acc)[4u * i + 3u]); }
  }
}

// Stores row group g (first row m) of the thread's accumulators.
fn regs_store_group(acc: ptr<function, array<vec4f, 64>>, g: u32, m: u32, n: vec4u, base: u32) {
  let o = base + m * p.n;
  regs_store_row(acc, 4u * g, m, o, n);
  regs_store_row(acc, 4u * g + 1u, m + 1u, o + p.n, n);
  regs_store_row(acc, 4u * g + 2u, m + 2u, o + 2u * p.n, n);
  regs_store_row(acc, 4u * g + 3u, m + 3u, o + 3u * p.n, n);
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_forward_regs(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let z = wid.z + p.batch0;
  let off = batch_offsets(z / p.splits);
  let kr = k_range(z % p.splits);
  // First row of row group g: m.x + 4 g WG_Y; first column of column group j: n[j].
  let m = TM * WG_Y * wid.y + 4u * lid.y;
  let gy = 4u * WG_Y;
  let n = vec4u(4u * TN4 * WG_X * wid.x + 4u * lid.x) + vec4u(0u, 1u, 2u, 3u) * (4u * WG_X);
  var ra: array<vec4u, 4>;
  var cb: array<vec4u, 4>;
  ra[0] = regs_rows_a(off.x, m);
  ra[1] = regs_rows_a(off.x, m + gy);
  ra[2] = regs_rows_a(off.x, m + 2u * gy);
  ra[3] = regs_rows_a(off.x, m + 3u * gy);
  cb[0] = regs_cols_b(off.y, n.x);
  cb[1] = regs_cols_b(off.y, n.y);
  cb[2] = regs_cols_b(off.y, n.z);
  cb[3] = regs_cols_b(off.y, n.w);

  var acc: array<vec4f, 64>;
  for (var k = kr.x; k < kr.y; k += 4u) {
    regs_step(&acc, &ra, &cb, k, kr.y);
  }

  let base = z * p.m * p.n;
  regs_store_group(&acc, 0u, m, n, base);
  if (TM > 4u) { regs_store_group(&acc, 1u, m + gy, n, base); }
  if (TM > 8u) {
    regs_store_group(&acc, 2u, m + 2u * gy, n, base);
    regs_store_group(&acc, 3u, m + 3u * gy, n, base);
  }
}

// ---------------------------------------------------------------------------------------------------------
// matmul_reduce: the split-K sum

// The [splits, M, N] partial sums, f32 in every build (bound where A is for the forward kernels).
@group(0) @binding(0) var<storage, read> partial: array<vec4f>;

@compute @workgroup_size(64)
fn matmul_reduce(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * 64u;
  let mn = p.m * p.n;
  if (VEC_C) {
    let mn4 = mn / 4u;
    if (i >= mn4) { return; }
    var s = partial[i];
    for (var z = 1u; z < p.splits; z++) { s += partial[z * mn4 + i]; }
    if (HAS_BIAS) { s += bias[(4u * i % p.n) >> 2u]; }
    if (ACT != 0u) {
      pre[i] = s;
      c[i] = vec4f(activate(s.x), activate(s.y), activate(s.z), activate(s.w));
    } else {
      c[i] = s;
    }
  } else {
    if (i >= mn) { return; }
    var s = partial[i >> 2u][i & 3u];
    for (var z = 1u; z < p.splits; z++) {
      let e = z * mn + i;
      s += partial[e >> 2u][e & 3u];
    }
    store(i, s + bias_at(i % p.n));
  }
}
