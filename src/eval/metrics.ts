/**
 * The evaluation metrics as pure CPU functions on embeddings (`Float32Array`s of row-major `[n, dim]`
 * rows): cosine scores, retrieval ranks and Recall@K, top-1 classification accuracy (overall and mean per
 * class), box IoU and grounding accuracy. `evaluate()` feeds them; the tests feed them hand-made embeddings.
 *
 * Three rules decide the edge cases, the same everywhere:
 * - **Ties count against the query.** The rank of a query is the number of wrong items scoring *at least*
 *   as high as its best correct item (so rank 0 means every wrong item scores strictly lower). A model whose
 *   embeddings are all equal therefore gets no credit, and a NaN score is never a hit.
 * - **Identical texts are one answer.** Items are grouped (by the text of their caption, usually): any item
 *   of the query's group is correct. Two captions with the same words have the same embedding, so no model
 *   could tell them apart; callers pass galleries of texts with duplicates removed (see {@link groupIds}).
 * - **Empty classes are left out of mAcc.** A class with no ground-truth region has no accuracy; the mean
 *   per-class accuracy averages only classes with at least one region (and is null when there are none).
 *
 * @module
 */

/**
 * Rows scaled to unit L2 norm (`x / max(||x||, 1e-12)`, as the model's `l2Normalize`).
 *
 * @param x `[n, dim]` row-major.
 * @param dim Row width.
 * @returns A new `[n, dim]` array.
 *
 * @example
 * ```ts
 * import { normalizeRows } from "./metrics.ts";
 * const y = normalizeRows(new Float32Array([3, 4, 0, 0]), 2);
 * if (y[0] !== Math.fround(0.6) || y[1] !== Math.fround(0.8) || y[2] !== 0) throw new Error(`${y}`);
 * ```
 */
export function normalizeRows(x: Float32Array, dim: number): Float32Array {
  checkRows("normalizeRows", x, dim);
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    let s = 0;
    for (let i = 0; i < dim; i++) s += x[r * dim + i] ** 2;
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let i = 0; i < dim; i++) out[r * dim + i] = x[r * dim + i] * inv;
  }
  return out;
}

/**
 * Cosine similarities of every query with every key (rows are normalised here, so any scale works).
 *
 * @param queries `[nq, dim]`.
 * @param keys `[nk, dim]`.
 * @param dim Row width.
 * @returns `[nq, nk]` row-major, in f32.
 *
 * @example
 * ```ts
 * import { cosineScores } from "./metrics.ts";
 * const s = cosineScores(new Float32Array([2, 0]), new Float32Array([1, 0, 0, 5, -1, 0]), 2);
 * if (s.join() !== "1,0,-1") throw new Error(`${s}`);
 * ```
 */
export function cosineScores(queries: Float32Array, keys: Float32Array, dim: number): Float32Array {
  const q = normalizeRows(queries, dim), k = normalizeRows(keys, dim);
  const nq = q.length / dim, nk = k.length / dim;
  const out = new Float32Array(nq * nk);
  for (let a = 0; a < nq; a++) {
    for (let b = 0; b < nk; b++) {
      let s = 0;
      for (let i = 0; i < dim; i++) s += q[a * dim + i] * k[b * dim + i];
      out[a * nk + b] = s;
    }
  }
  return out;
}

/**
 * Group ids of texts: equal texts share an id, ids count up in order of first appearance.
 *
 * @param texts The texts.
 * @returns `ids[i]` for each text, `first[g]`: the index of group g's first text, and `distinct[g]`.
 *
 * @example
 * ```ts
 * import { groupIds } from "./metrics.ts";
 * const g = groupIds(["a cat", "a dog", "a cat"]);
 * if (g.ids.join() !== "0,1,0" || g.first.join() !== "0,1" || g.distinct[1] !== "a dog") throw new Error();
 * ```
 */
export function groupIds(
  texts: readonly string[],
): { ids: Int32Array; first: Int32Array; distinct: string[] } {
  const seen = new Map<string, number>();
  const ids = new Int32Array(texts.length);
  const first: number[] = [];
  texts.forEach((t, i) => {
    let g = seen.get(t);
    if (g === undefined) {
      g = first.length;
      seen.set(t, g);
      first.push(i);
    }
    ids[i] = g;
  });
  return { ids, first: Int32Array.from(first), distinct: [...seen.keys()] };
}

/**
 * The rank of each query's best correct key: the number of wrong keys (another group) whose score is
 * greater than *or equal to* the best score among the query's correct keys (ties count against the query;
 * a wrong key with a NaN score counts as a tie). A query with no correct key, or only correct keys with NaN
 * scores, gets rank `nk` (a miss at every K).
 *
 * @param scores `[nq, nk]` row-major (higher is better).
 * @param queryGroups Group of each query (`nq` entries).
 * @param keyGroups Group of each key (`nk` entries); keys of the query's group are correct.
 * @returns The rank of each query (0 = first).
 *
 * @example A tie with a wrong key costs the query one place
 * ```ts
 * import { retrievalRanks } from "./metrics.ts";
 * const ranks = retrievalRanks(new Float32Array([0.9, 0.1, 0.5, 0.5]), [0, 1], [0, 1]);
 * if (ranks.join() !== "0,1") throw new Error(`${ranks}`);
 * ```
 */
export function retrievalRanks(
  scores: Float32Array,
  queryGroups: ArrayLike<number>,
  keyGroups: ArrayLike<number>,
): Int32Array {
  const nq = queryGroups.length, nk = keyGroups.length;
  if (scores.length !== nq * nk) {
    throw new RangeError(
      `retrievalRanks: ${scores.length} scores for ${nq} queries x ${nk} keys: wanted ${nq * nk}`,
    );
  }
  const ranks = new Int32Array(nq);
  for (let q = 0; q < nq; q++) {
    ranks[q] = rankOf(scores.subarray(q * nk, (q + 1) * nk), queryGroups[q], keyGroups);
  }
  return ranks;
}

/** The rank of one query from its row of scores (see {@link retrievalRanks}). */
function rankOf(row: Float32Array, group: number, keyGroups: ArrayLike<number>): number {
  // The best correct score; a NaN score is never the best, and all-NaN correct keys make a miss.
  let best = NaN;
  for (let k = 0; k < row.length; k++) {
    const s = row[k];
    if (keyGroups[k] === group && (s > best || (Number.isNaN(best) && !Number.isNaN(s)))) best = s;
  }
  if (Number.isNaN(best)) return row.length;
  let rank = 0;
  for (let k = 0; k < row.length; k++) if (keyGroups[k] !== group && !(row[k] < best)) rank++;
  return rank;
}

/**
 * {@link retrievalRanks} of queries against keys by cosine similarity, one query row at a time (memory
 * O(nk), not O(nq * nk)).
 *
 * @param queries `[nq, dim]` embeddings.
 * @param keys `[nk, dim]` embeddings.
 * @param dim Embedding width.
 * @param queryGroups Group of each query.
 * @param keyGroups Group of each key.
 * @returns The rank of each query.
 *
 * @example
 * ```ts
 * import { cosineRanks } from "./metrics.ts";
 * const ranks = cosineRanks(new Float32Array([1, 0, 0, 1]), new Float32Array([0, 1, 1, 0]), 2, [0, 1], [0, 1]);
 * if (ranks.join() !== "1,1") throw new Error(`${ranks}`); // each image prefers the other caption
 * ```
 */
export function cosineRanks(
  queries: Float32Array,
  keys: Float32Array,
  dim: number,
  queryGroups: ArrayLike<number>,
  keyGroups: ArrayLike<number>,
): Int32Array {
  checkRows("cosineRanks (queries)", queries, dim, queryGroups.length);
  checkRows("cosineRanks (keys)", keys, dim, keyGroups.length);
  const q = normalizeRows(queries, dim), k = normalizeRows(keys, dim);
  const nq = queryGroups.length, nk = keyGroups.length;
  const row = new Float32Array(nk);
  const ranks = new Int32Array(nq);
  for (let a = 0; a < nq; a++) {
    for (let b = 0; b < nk; b++) {
      let s = 0;
      for (let i = 0; i < dim; i++) s += q[a * dim + i] * k[b * dim + i];
      row[b] = s;
    }
    ranks[a] = rankOf(row, queryGroups[a], keyGroups);
  }
  return ranks;
}

/**
 * Recall@K: the share of queries whose rank is below K.
 *
 * @param ranks From {@link retrievalRanks}.
 * @param k K >= 1.
 * @returns A fraction in [0, 1], or null for no queries.
 *
 * @example
 * ```ts
 * import { recallAtK } from "./metrics.ts";
 * if (recallAtK(Int32Array.from([0, 3, 7, 1]), 5) !== 0.75) throw new Error();
 * ```
 */
export function recallAtK(ranks: ArrayLike<number>, k: number): number | null {
  if (!(Number.isInteger(k) && k >= 1)) {
    throw new RangeError(`recallAtK: K must be an integer >= 1, got ${k}`);
  }
  if (ranks.length === 0) return null;
  let hits = 0;
  for (let i = 0; i < ranks.length; i++) if (ranks[i] < k) hits++;
  return hits / ranks.length;
}

/**
 * Retrieval Recall@K of queries against keys by cosine similarity, with group ids deciding which keys are
 * correct (see {@link retrievalRanks} for the tie rule).
 *
 * @param queries `[nq, dim]` embeddings.
 * @param keys `[nk, dim]` embeddings.
 * @param dim Embedding width.
 * @param queryGroups Group of each query.
 * @param keyGroups Group of each key.
 * @param ks The K values.
 * @returns Recall@K for each K (null when there are no queries).
 *
 * @example Image-to-text R@1 of two images and their captions
 * ```ts
 * import { recallAtKs } from "./metrics.ts";
 * const images = new Float32Array([1, 0, 0, 1]), captions = new Float32Array([0.9, 0.1, 0.2, 0.8]);
 * const [r1] = recallAtKs(images, captions, 2, [0, 1], [0, 1], [1]);
 * if (r1 !== 1) throw new Error(`${r1}`);
 * ```
 */
export function recallAtKs(
  queries: Float32Array,
  keys: Float32Array,
  dim: number,
  queryGroups: ArrayLike<number>,
  keyGroups: ArrayLike<number>,
  ks: readonly number[],
): (number | null)[] {
  const ranks = cosineRanks(queries, keys, dim, queryGroups, keyGroups);
  return ks.map((k) => recallAtK(ranks, k));
}

/** What {@link classificationAccuracy} reports. */
export interface ClassAccuracy {
  /** Mean of the per-class accuracies over classes with at least one sample; null if there are none. */
  macc: number | null;
  /** Correct samples over all counted samples; null if none were counted. */
  acc: number | null;
  /** Accuracy of each class; null for a class without samples. */
  perClass: (number | null)[];
  /** Counted samples of each class. */
  counts: number[];
  /** Samples counted (label >= 0). */
  total: number;
}

/**
 * Top-1 accuracy of scored samples: sample i is right when its true class scores strictly above every other
 * class (a tie counts as wrong, as does a NaN score). A label of -1 leaves the sample out.
 *
 * @param scores `[n, classes]` row-major.
 * @param labels The true class of each sample (`n` entries), or -1 to skip it.
 * @param classes Number of classes.
 * @returns Overall and mean per-class accuracy (classes without samples are left out of the mean).
 *
 * @example
 * ```ts
 * import { classificationAccuracy } from "./metrics.ts";
 * // three samples of class 0 (two right), one of class 1 (right); class 2 has none.
 * const scores = new Float32Array([.9, .1, 0, .2, .8, 0, .7, .3, 0, .1, .9, 0]);
 * const a = classificationAccuracy(scores, [0, 0, 0, 1], 3);
 * if (a.acc !== 0.75 || Math.abs(a.macc! - 5 / 6) > 1e-12 || a.perClass[2] !== null) throw new Error();
 * ```
 */
export function classificationAccuracy(
  scores: Float32Array,
  labels: ArrayLike<number>,
  classes: number,
): ClassAccuracy {
  const n = labels.length;
  if (scores.length !== n * classes) {
    throw new RangeError(
      `classificationAccuracy: ${scores.length} scores for ${n} samples x ${classes} classes: wanted ${
        n * classes
      }`,
    );
  }
  const counts = new Array<number>(classes).fill(0);
  const right = new Array<number>(classes).fill(0);
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    if (y === -1) continue;
    if (!(Number.isInteger(y) && y >= 0 && y < classes)) {
      throw new RangeError(
        `classificationAccuracy: label ${y} of sample ${i} is not in [0, ${classes}) or -1`,
      );
    }
    counts[y]++;
    const truth = scores[i * classes + y];
    let ok = !Number.isNaN(truth);
    for (let c = 0; c < classes && ok; c++) {
      if (c !== y && !(scores[i * classes + c] < truth)) ok = false;
    }
    if (ok) right[y]++;
  }
  const perClass = counts.map((c, k) => (c === 0 ? null : right[k] / c));
  const present = perClass.filter((a): a is number => a !== null);
  const total = counts.reduce((a, b) => a + b, 0);
  return {
    macc: present.length === 0 ? null : present.reduce((a, b) => a + b, 0) / present.length,
    acc: total === 0 ? null : right.reduce((a, b) => a + b, 0) / total,
    perClass,
    counts,
    total,
  };
}

/**
 * Intersection over union of two boxes `(x0, y0, x1, y1)`. An inverted or empty box has area 0; two boxes
 * without area have IoU 0.
 *
 * @param a The first box (4 numbers).
 * @param b The second box.
 * @returns IoU in [0, 1].
 *
 * @example
 * ```ts
 * import { boxIou } from "./metrics.ts";
 * if (boxIou([0, 0, 2, 2], [1, 0, 3, 2]) !== 1 / 3) throw new Error();
 * ```
 */
export function boxIou(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const area = (x0: number, y0: number, x1: number, y1: number) =>
    Math.max(0, x1 - x0) * Math.max(0, y1 - y0);
  const inter = area(Math.max(a[0], b[0]), Math.max(a[1], b[1]), Math.min(a[2], b[2]), Math.min(a[3], b[3]));
  const union = area(a[0], a[1], a[2], a[3]) + area(b[0], b[1], b[2], b[3]) - inter;
  return union > 0 && Number.isFinite(union) ? inter / union : 0;
}

/**
 * Grounding Acc@threshold: region r is right when its predicted box overlaps a ground-truth box of its
 * group with IoU >= threshold. Regions of one group are interchangeable targets: pass the same group id for
 * regions of one image with identical captions (the prompt cannot tell them apart); by default each region
 * is its own group.
 *
 * @param predicted `[R, 4]` boxes.
 * @param targets `[R, 4]` ground-truth boxes, in the same coordinates.
 * @param options `threshold` (default 0.5) and `groups` (R ids).
 * @returns A fraction in [0, 1], or null for no regions.
 *
 * @example
 * ```ts
 * import { groundingAccuracy } from "./metrics.ts";
 * const pred = new Float32Array([0, 0, 1, 1, 0, 0, 1, 1]), gt = new Float32Array([0, 0, 1, 0.5, 0, 0, 1, 0.4]);
 * if (groundingAccuracy(pred, gt) !== 0.5) throw new Error(); // IoU 0.5 counts, 0.4 does not
 * ```
 */
export function groundingAccuracy(
  predicted: Float32Array,
  targets: Float32Array,
  options: { threshold?: number; groups?: ArrayLike<number> } = {},
): number | null {
  const threshold = options.threshold ?? 0.5;
  if (predicted.length !== targets.length || predicted.length % 4 !== 0) {
    throw new RangeError(
      `groundingAccuracy: ${predicted.length} predicted and ${targets.length} target values: wanted equal multiples of 4`,
    );
  }
  const r = predicted.length / 4;
  const groups = options.groups;
  if (groups && groups.length !== r) {
    throw new RangeError(`groundingAccuracy: ${groups.length} group ids for ${r} regions`);
  }
  if (r === 0) return null;
  const members = new Map<number, number[]>();
  for (let i = 0; i < r; i++) {
    const g = groups ? groups[i] : i;
    const list = members.get(g);
    if (list) list.push(i);
    else members.set(g, [i]);
  }
  let hits = 0;
  for (let i = 0; i < r; i++) {
    const p = predicted.subarray(i * 4, i * 4 + 4);
    const list = members.get(groups ? groups[i] : i)!;
    if (list.some((j) => boxIou(p, targets.subarray(j * 4, j * 4 + 4)) >= threshold)) hits++;
  }
  return hits / r;
}

function checkRows(what: string, x: Float32Array, dim: number, rows?: number): void {
  if (!(Number.isInteger(dim) && dim >= 1) || x.length % dim !== 0) {
    throw new RangeError(`${what}: ${x.length} values are not rows of width ${dim}`);
  }
  if (rows !== undefined && x.length !== rows * dim) {
    throw new RangeError(`${what}: ${x.length / dim} rows of width ${dim} but ${rows} group ids`);
  }
}
