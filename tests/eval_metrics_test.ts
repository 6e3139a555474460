import { assert, assertEquals } from "./_assert.ts";
import {
  boxIou,
  classificationAccuracy,
  cosineRanks,
  cosineScores,
  groundingAccuracy,
  groupIds,
  normalizeRows,
  recallAtK,
  recallAtKs,
  retrievalRanks,
} from "../src/eval/metrics.ts";
import { type EvalEmbeddings, type EvalReport, scoreEmbeddings } from "../src/eval/evaluate.ts";
import { formatReport, markdownTable } from "../src/eval/report.ts";

const f32 = (...v: number[]) => Float32Array.from(v);

function throwsWith(fn: () => unknown, ...parts: string[]): void {
  let message = "";
  try {
    fn();
  } catch (e) {
    message = (e as Error).message;
  }
  assert(message !== "", "expected an error");
  for (const p of parts) assert(message.includes(p), `error "${message}" lacks "${p}"`);
}

Deno.test("normalizeRows() and cosineScores() ignore scale and keep zero rows at zero", () => {
  assertEquals([...normalizeRows(f32(0, 0, 0, 5), 2)], [0, 0, 0, 1]);
  const s = cosineScores(f32(10, 0, 0, 0), f32(3, 0, -1, 0, 1, 1), 2);
  assertEquals([...s.slice(0, 2)], [1, -1]);
  assert(Math.abs(s[2] - Math.SQRT1_2) < 1e-6);
  assertEquals([...s.slice(3)], [0, 0, 0]); // a zero query scores 0 against everything
  throwsWith(() => normalizeRows(f32(1, 2, 3), 2), "3 values", "width 2");
});

Deno.test("groupIds() gives equal texts one id, in order of first appearance", () => {
  const g = groupIds(["b", "a", "b", "c", "a"]);
  assertEquals([...g.ids], [0, 1, 0, 2, 1]);
  assertEquals([...g.first], [0, 1, 3]);
  assertEquals(g.distinct, ["b", "a", "c"]);
  assertEquals(groupIds([]).distinct, []);
});

Deno.test("retrievalRanks() counts the wrong keys scoring at least the best correct one", () => {
  // 3 queries x 4 keys; key groups [0, 1, 2, 0].
  const scores = f32(
    0.9,
    0.5,
    0.1,
    0.2, // q0 (group 0): best correct 0.9, nothing above: rank 0
    0.3,
    0.2,
    0.8,
    0.7, // q1 (group 1): correct 0.2; 0.3, 0.8, 0.7 above: rank 3
    0.1,
    0.6,
    0.4,
    0.5, // q2 (group 0): best correct 0.5 (key 3); 0.6 above: rank 1
  );
  assertEquals([...retrievalRanks(scores, [0, 1, 0], [0, 1, 2, 0])], [0, 3, 1]);
});

Deno.test("retrievalRanks() ties count against the query: equal scores everywhere never hit", () => {
  // One tie with a wrong key: rank 1, so a miss at R@1 and a hit at R@5.
  assertEquals([...retrievalRanks(f32(0.5, 0.5, 0.1), [0], [0, 1, 2])], [1]);
  // A constant model: every wrong key ties, rank = number of wrong keys.
  const ranks = retrievalRanks(new Float32Array(9).fill(0.3), [0, 1, 2], [0, 1, 2]);
  assertEquals([...ranks], [2, 2, 2]);
  assertEquals(recallAtK(ranks, 1), 0);
  assertEquals(recallAtK(ranks, 3), 1); // K past the wrong keys: every query hits
  // Ties among correct keys cost nothing.
  assertEquals([...retrievalRanks(f32(0.7, 0.7, 0.1), [0], [0, 0, 1])], [0]);
});

Deno.test("retrievalRanks() treats NaN as a miss for correct keys and as a tie for wrong ones", () => {
  assertEquals([...retrievalRanks(f32(NaN, 0.1), [0], [0, 1])], [2]); // best correct is NaN: miss
  assertEquals([...retrievalRanks(f32(0.9, NaN, 0.1), [0], [0, 1, 2])], [1]); // a NaN wrong key ranks above
  assertEquals([...retrievalRanks(f32(NaN, 0.8, 0.5), [0], [0, 0, 1])], [0]); // the finite correct key counts
  assertEquals([...retrievalRanks(f32(0.2, 0.9), [5], [0, 1])], [2]); // no correct key at all: a miss
  throwsWith(() => retrievalRanks(f32(1, 2, 3), [0], [0, 1]), "3 scores", "1 queries x 2 keys");
});

Deno.test("recallAtK() is the share of ranks below K; null without queries", () => {
  const ranks = Int32Array.from([0, 0, 1, 4, 5, 9, 10]);
  assertEquals(recallAtK(ranks, 1), 2 / 7);
  assertEquals(recallAtK(ranks, 5), 4 / 7);
  assertEquals(recallAtK(ranks, 10), 6 / 7);
  assertEquals(recallAtK([], 1), null);
  throwsWith(() => recallAtK(ranks, 0), "K", "0");
});

Deno.test("recallAtKs() on hand-made image and caption embeddings gives the known recalls", () => {
  // Images on the axes of R^3; captions: caption 0 matches image 0, caption 1 is closer to image 2 than to
  // image 1, caption 2 matches image 2 but less well than caption 1 does.
  const images = f32(1, 0, 0, 0, 1, 0, 0, 0, 1);
  const captions = f32(2, 0.1, 0, 0, 0.5, 1, 0, 0.1, 0.6);
  const g = [0, 1, 2];
  // image→caption: image 0 → cap 0 (rank 0); image 1 → cap 1 0.447 vs cap 2 0.164, cap 0 0.05: rank 0;
  // image 2 → cap 2 0.986 vs cap 1 0.894: rank 0.
  assertEquals(recallAtKs(images, captions, 3, g, g, [1, 5]), [1, 1]);
  // caption→image: cap 1 → image 2 (0.894) beats image 1 (0.447): rank 1.
  const t2i = cosineRanks(captions, images, 3, g, g);
  assertEquals([...t2i], [0, 1, 0]);
  assertEquals(recallAtKs(captions, images, 3, g, g, [1, 2]), [2 / 3, 1]);
  throwsWith(() => cosineRanks(images, captions, 3, [0, 1], g), "3 rows", "2 group ids");
});

Deno.test("recallAtKs() with duplicate captions counts any image or caption of the same text as right", () => {
  // Images 0 and 1 share the caption "a seven"; image 2 has "a two". The text gallery holds each caption once.
  const images = f32(1, 0, 0.9, 0.1, 0, 1);
  const captionTexts = ["a seven", "a seven", "a two"];
  const cap = groupIds(captionTexts);
  const gallery = f32(1, 0, 0, 1); // "a seven", "a two"
  assertEquals(recallAtKs(images, gallery, 2, cap.ids, [0, 1], [1]), [1]);
  // Text→image: "a seven" (queried twice, once per image) finds image 0 first, which is right for both.
  const captions = f32(1, 0, 1, 0, 0, 1);
  assertEquals([...cosineRanks(captions, images, 2, cap.ids, cap.ids)], [0, 0, 0]);
});

Deno.test("classificationAccuracy() counts ties as wrong, leaves empty classes out of mAcc and skips -1", () => {
  const scores = f32(
    0.9,
    0.1,
    0.0,
    0.0, // class 0, right
    0.5,
    0.5,
    0.0,
    0.0, // class 0, tie with class 1: wrong
    0.2,
    0.7,
    0.1,
    0.0, // class 1, right
    0.1,
    0.2,
    0.3,
    0.0, // label -1: skipped
    0.3,
    0.2,
    0.9,
    0.0, // class 0, wrong
    0.0,
    0.0,
    0.1,
    0.2, // class 3, right
  );
  const a = classificationAccuracy(scores, [0, 0, 1, -1, 0, 3], 4);
  assertEquals(a.counts, [3, 1, 0, 1]);
  assertEquals(a.perClass, [1 / 3, 1, null, 1]); // class 2 has no samples
  assertEquals(a.total, 5);
  assertEquals(a.acc, 3 / 5);
  assert(Math.abs(a.macc! - (1 / 3 + 1 + 1) / 3) < 1e-12, `macc ${a.macc}`);
  // A NaN score for the true class is wrong; NaN elsewhere is a tie.
  assertEquals(classificationAccuracy(f32(NaN, 0, 1, NaN), [0, 0], 2).acc, 0);
  // Nothing counted: null, not 0 or NaN.
  const none = classificationAccuracy(f32(1, 0), [-1], 2);
  assertEquals([none.acc, none.macc], [null, null]);
  throwsWith(() => classificationAccuracy(f32(1, 0), [2], 2), "label 2", "[0, 2)");
  throwsWith(() => classificationAccuracy(f32(1, 0, 0), [0], 2), "3 scores", "1 samples x 2 classes");
});

Deno.test("boxIou() is 1 for the same box, 0 for disjoint, touching or inverted boxes", () => {
  assertEquals(boxIou([0, 0, 1, 1], [0, 0, 1, 1]), 1);
  assertEquals(boxIou([0, 0, 1, 1], [2, 2, 3, 3]), 0);
  assertEquals(boxIou([0, 0, 1, 1], [1, 0, 2, 1]), 0); // touching edges
  assertEquals(boxIou([1, 1, 0, 0], [0, 0, 1, 1]), 0); // inverted: no area
  assertEquals(boxIou([0, 0, 0, 0], [0, 0, 0, 0]), 0); // no area at all
  assertEquals(boxIou([0, 0, 4, 4], [1, 1, 3, 3]), 0.25); // containment
  assertEquals(boxIou([0, 0, 2, 1], [1, 0, 3, 1]), 1 / 3);
});

Deno.test("groundingAccuracy() counts IoU >= 0.5, and lets a repeated caption match any of its boxes", () => {
  const gt = f32(0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0.5, 0.5);
  const pred = f32(
    0,
    0,
    1,
    0.5, // IoU 0.5 exactly: right
    0,
    0,
    1,
    0.49, // IoU 0.49: wrong
    0.5,
    0.5,
    0,
    0, // inverted prediction: wrong
  );
  assertEquals(groundingAccuracy(pred, gt), 1 / 3);
  assertEquals(groundingAccuracy(pred, gt, { threshold: 0.4 }), 2 / 3);
  // Regions 1 and 2 as one image's two boxes with the same caption, their predictions swapped: each is wrong
  // for its own box but right for the other's, so both count once they share a group.
  const swapped = f32(0, 0, 1, 1, 0, 0, 0.5, 0.5, 0, 0, 1, 1);
  assertEquals(groundingAccuracy(swapped, gt), 1 / 3);
  assertEquals(groundingAccuracy(swapped, gt, { groups: [0, 1, 1] }), 1);
  assertEquals(groundingAccuracy(new Float32Array(0), new Float32Array(0)), null);
  throwsWith(() => groundingAccuracy(f32(0, 0, 1, 1), f32(0, 0, 1)), "4 predicted", "3 target");
  throwsWith(() => groundingAccuracy(f32(0, 0, 1, 1), f32(0, 0, 1, 1), { groups: [0, 1] }), "2 group ids");
});

/** Embeddings of a small evaluation set, with chosen vectors (E = 3). */
function handMade(): EvalEmbeddings {
  return {
    // Three images; images 0 and 1 share a caption.
    images: f32(1, 0, 0, 0.9, 0.1, 0, 0, 0, 1),
    captions: f32(1, 0, 0, 1, 0, 0, 0, 0.2, 1),
    captionTexts: ["two sevens", "two sevens", "a two"],
    // Four regions: "red seven" twice (images 0 and 1), "blue two", and one labelled "cat" (no class).
    regions: f32(1, 0, 0, 0.8, 0.2, 0, 0, 1, 0, 0, 0, 1),
    regionTexts: f32(1, 0, 0, 1, 0, 0, 0, 1, 0.1, 0, 0, 1),
    regionTextStrings: ["red seven", "red seven", "blue two", "cat"],
    regionClasses: ["seven", "seven", "two", "cat"],
    regionImage: [0, 1, 2, 2],
    gtBoxes: f32(0, 0, 0.5, 0.5, 0.5, 0.5, 1, 1, 0, 0, 1, 1, 0, 0, 0.2, 0.2),
    predBoxes: f32(0, 0, 0.5, 0.5, 0, 0, 0.5, 0.5, 0, 0, 1, 0.6, 0.5, 0.5, 1, 1),
  };
}

Deno.test("scoreEmbeddings() on hand-made embeddings gives every metric its known value", () => {
  // Classes "seven" [1, 0, 0], "two" [0, 1, 0], and "eight", which no region has (left out of mAcc).
  const classes = { names: ["seven", "two", "eight"], embeddings: f32(1, 0, 0, 0, 1, 0, 0.5, 0.5, 0.7) };
  const m = scoreEmbeddings(handMade(), classes, 3);
  assertEquals([m.i2t_r1, m.i2t_r5, m.t2i_r1, m.t2i_r5], [1, 1, 1, 1]);
  assertEquals([m.n_images, m.n_captions, m.n_regions, m.n_region_texts, m.n_classes], [3, 2, 4, 3, 3]);
  // Recognition: "seven" regions right, "two" right; "cat" is not a class: left out.
  assertEquals(m.region_unmatched, 1);
  assertEquals([m.region_acc, m.region_macc], [1, 1]);
  // Region→text over 3 distinct texts: region "cat" [0,0,1] → "cat" text [0,0,1]: right; all right.
  assertEquals([m.r2t_r1, m.r2t_r10], [1, 1]);
  // Text→region: "blue two" [0,1,0.1] → region 2 [0,1,0]: right; "red seven" → region 0: right.
  assertEquals([m.t2r_r1, m.t2r_r10], [1, 1]);
  // Grounding: region 0 right; region 1's box is the other "red seven"'s but in another image: wrong;
  // region 2: IoU 0.6: right; region 3: disjoint: wrong.
  assertEquals(m.grounding_acc50, 0.5);
});

Deno.test("scoreEmbeddings() gives a constant model no credit, and null region metrics without regions", () => {
  const x = handMade();
  for (const key of ["images", "captions", "regions", "regionTexts"] as const) x[key].fill(1);
  const classes = { names: ["seven", "two"], embeddings: f32(1, 1, 1, 1, 1, 1) };
  const m = scoreEmbeddings(x, classes, 3);
  // Every wrong item ties with the right one: rank = wrong items. 2 distinct captions → rank 1 → R@1 0.
  assertEquals([m.i2t_r1, m.t2i_r1, m.region_acc, m.region_macc, m.r2t_r1, m.t2r_r1], [0, 0, 0, 0, 0, 0]);
  assertEquals(m.i2t_r5, 1); // only one wrong caption: within the top 5 anyway

  const empty: EvalEmbeddings = {
    ...handMade(),
    regions: new Float32Array(0),
    regionTexts: new Float32Array(0),
    regionTextStrings: [],
    regionClasses: [],
    regionImage: [],
    gtBoxes: new Float32Array(0),
    predBoxes: null,
  };
  const n = scoreEmbeddings(empty, { names: [], embeddings: new Float32Array(0) }, 3);
  assertEquals(
    [n.region_macc, n.region_acc, n.r2t_r1, n.r2t_r10, n.t2r_r1, n.t2r_r10, n.grounding_acc50],
    [null, null, null, null, null, null, null],
  );
  assertEquals(n.n_regions, 0);
  throwsWith(
    () =>
      scoreEmbeddings({ ...empty, captionTexts: [], images: new Float32Array(0) }, {
        names: [],
        embeddings: new Float32Array(0),
      }, 3),
    "no images",
  );
});

Deno.test("markdownTable() and formatReport() print percentages with one decimal and a dash for null", () => {
  const report = {
    ...scoreEmbeddings(handMade(), { names: ["seven", "two"], embeddings: f32(1, 0, 0, 0, 1, 0) }, 3),
    grounding_acc50: null,
    adapter: "test adapter",
    mode: "clip",
    region_method: "crop",
    seconds: 1.25,
  } as EvalReport;
  const table = markdownTable([{ name: "CLIP", report }, {
    name: "CLOC",
    report: { ...report, i2t_r1: 0.123 },
  }]);
  const lines = table.trim().split("\n");
  assertEquals(lines.length, 4);
  assertEquals(lines[0].split("|").length, lines[2].split("|").length);
  assert(lines[2].startsWith("| CLIP | 100.0 | 100.0 |"), lines[2]);
  assert(lines[3].startsWith("| CLOC | 12.3 |"), lines[3]);
  assert(lines[2].endsWith("| – |"), lines[2]);
  const text = formatReport(report, "run-1");
  assert(text.includes("3 images, 4 regions, 2 classes, 1 regions outside the class list"), text);
  assert(text.includes("crop baseline") && text.includes("test adapter"), text);
});
