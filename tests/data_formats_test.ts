import assert from "node:assert/strict";
import { encode as pngEncode } from "fast-png";
import { parseCoco, readCoco, toCoco } from "../src/data/coco.ts";
import { RecordDataset } from "../src/data/dataset.ts";
import {
  blankImage,
  decodeImage,
  decodeJpeg,
  decodePng,
  encodeJpeg,
  encodePng,
  imageSize,
  resizeImage,
  type RgbImage,
} from "../src/data/image.ts";
import { formatRegionJsonl, parseRegionJsonl, readRegionJsonl, writeRegionJsonl } from "../src/data/jsonl.ts";
import { CLIP_MEAN, CLIP_STD, letterbox, preprocess } from "../src/data/preprocess.ts";
import { BadRecordError, type RegionRecord } from "../src/data/records.ts";

/** A w x h image with a recognisable gradient. */
function gradient(w: number, h: number): RgbImage {
  const img = blankImage(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      img.data[o] = (x * 255) / Math.max(1, w - 1);
      img.data[o + 1] = (y * 255) / Math.max(1, h - 1);
      img.data[o + 2] = 77;
    }
  }
  return img;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("decodePng() reads RGB, grey, grey+alpha, RGBA and 16-bit PNGs as 8-bit RGB", () => {
  const img = gradient(7, 5);
  assert.deepEqual(decodePng(encodePng(img)), img);
  const grey = Uint8Array.from({ length: 6 }, (_, i) => i * 40);
  const g = decodePng(pngEncode({ width: 3, height: 2, data: grey, channels: 1, depth: 8 }));
  assert.deepEqual([...g.data.subarray(3, 6)], [40, 40, 40]);
  const ga = decodePng(
    pngEncode({ width: 3, height: 2, data: new Uint8Array(12).fill(9), channels: 2, depth: 8 }),
  );
  assert.deepEqual([...ga.data.subarray(0, 3)], [9, 9, 9]);
  const rgba = new Uint8Array(4 * 6).map((_, i) => (i % 4 === 3 ? 0 : i));
  const r = decodePng(pngEncode({ width: 3, height: 2, data: rgba, channels: 4, depth: 8 }));
  assert.deepEqual([...r.data.subarray(3, 6)], [4, 5, 6], "alpha dropped, colour kept");
  const deep = decodePng(
    pngEncode({
      width: 1,
      height: 1,
      data: new Uint16Array([0x1234, 0xff00, 0x0080]),
      channels: 3,
      depth: 16,
    }),
  );
  assert.deepEqual([...deep.data], [0x12, 0xff, 0x00]);
  assert.throws(() => decodePng(new Uint8Array([1, 2, 3])), /not a decodable PNG/);
});

Deno.test("decodeJpeg() decodes what encodeJpeg() wrote, offline, within JPEG's error", async () => {
  const img = gradient(24, 16);
  const jpg = await encodeJpeg(img, { quality: 95 });
  assert.deepEqual(imageSize(jpg), { format: "jpeg", width: 24, height: 16 });
  const back = await decodeJpeg(jpg);
  assert.equal(back.width, 24);
  assert.equal(back.height, 16);
  let worst = 0;
  for (let i = 0; i < img.data.length; i++) worst = Math.max(worst, Math.abs(img.data[i] - back.data[i]));
  assert.ok(worst <= 24, `max error ${worst}`);
  await assert.rejects(decodeJpeg(jpg.slice(0, 40)), /not a decodable JPEG/);
  // The codec still works after a failure.
  assert.equal((await decodeImage(jpg)).width, 24);
  await assert.rejects(
    decodeImage(new Uint8Array([0x47, 0x49, 0x46, 0x38])),
    /not a PNG or JPEG file: starts with 0x47 0x49 0x46 0x38/,
  );
});

Deno.test("imageSize() reads the size from a PNG header and rejects other bytes", () => {
  assert.deepEqual(imageSize(encodePng(blankImage(300, 2))), { format: "png", width: 300, height: 2 });
  assert.throws(() => imageSize(new TextEncoder().encode("hello")), /not a PNG or JPEG/);
});

Deno.test("resizeImage() keeps a flat colour flat and averages when shrinking", () => {
  const flat = { width: 3, height: 3, data: new Uint8Array(27).fill(90) };
  assert.ok(resizeImage(flat, 7, 5).data.every((v) => v === 90));
  const stripes = blankImage(8, 1);
  for (let x = 0; x < 8; x += 2) stripes.data.fill(255, x * 3, x * 3 + 3);
  const half = resizeImage(stripes, 2, 1);
  assert.ok(half.data.every((v) => Math.abs(v - 128) <= 40), `stripes average to grey: ${half.data}`);
});

Deno.test("preprocess() pads bottom/right by default, keeps aspect, moves boxes and normalises", () => {
  const img = { width: 8, height: 4, data: new Uint8Array(96).fill(255) };
  const { pixels, boxes } = preprocess(img, [[2, 1, 6, 3]], 16);
  assert.deepEqual(boxes, [[2 / 8, 1 / 8, 6 / 8, 3 / 8]]);
  const white = (1 - CLIP_MEAN[0]) / CLIP_STD[0], black = (0 - CLIP_MEAN[0]) / CLIP_STD[0];
  assert.ok(Math.abs(pixels[0] - white) < 1e-6, "top-left is the image");
  assert.ok(Math.abs(pixels[15 * 16] - black) < 1e-6, "bottom rows are black padding");
  const g = (1 - CLIP_MEAN[1]) / CLIP_STD[1];
  assert.ok(Math.abs(pixels[256] - g) < 1e-6, "channel 1 starts one plane later (CHW)");
});

Deno.test("preprocess() with pad 'center' centres the image and shifts the boxes", () => {
  const img = { width: 8, height: 4, data: new Uint8Array(96).fill(255) };
  const { pixels, boxes, letterbox: lb } = preprocess(img, [[0, 0, 8, 4]], 16, {
    pad: "center",
    mean: [0, 0, 0],
    std: [1, 1, 1],
  });
  assert.deepEqual(lb, letterbox(8, 4, 16, "center"));
  assert.equal(lb.offsetY, 4);
  assert.deepEqual(boxes, [[0, 0.25, 1, 0.75]]);
  assert.equal(pixels[3 * 16], 0, "row 3 is padding");
  assert.equal(pixels[4 * 16], 1, "row 4 is the image");
  assert.throws(() => preprocess(img, [], 16, { std: [1, 0, 1] }), /std values must be positive/);
});

const good: RegionRecord[] = [
  {
    image: "a.png",
    caption: "a small red seven",
    regions: [{ box: [1, 1, 5, 6], text: "small red seven", label: "seven" }],
  },
  {
    image: "b.png",
    caption: "two things",
    regions: [{ box: [0, 0, 8, 8], text: "all" }, { box: [2, 3, 4, 5], text: "bit" }],
  },
  { image: "sub/c.png", caption: "nothing boxed", regions: [] },
];

Deno.test("region-text JSONL written then read gives the same records", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/sub`);
    for (const r of good) await Deno.writeFile(`${dir}/${r.image}`, encodePng(blankImage(8, 8)));
    await writeRegionJsonl(`${dir}/data.jsonl`, good);
    const read = await readRegionJsonl(`${dir}/data.jsonl`, { images: "decode" });
    assert.equal(read.bad.count, 0, read.bad.summary());
    assert.deepEqual(read.records, good);
    assert.deepEqual(read.lines, [1, 2, 3]);
    assert.equal(read.root, dir);
    assert.equal(formatRegionJsonl(read.records), await Deno.readTextFile(`${dir}/data.jsonl`));
  });
});

Deno.test("readRegionJsonl() reports each bad-record class with file, line and reason, skips and counts them", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/ok.png`, encodePng(blankImage(8, 8)));
    await Deno.writeFile(`${dir}/junk.png`, new TextEncoder().encode("this is not an image"));
    const rec = (image: string, box: number[], text = "t", caption = "c") =>
      JSON.stringify({ image, caption, regions: [{ box, text }] });
    const lines = [
      rec("ok.png", [0, 0, 4, 4]), // 1: good
      '{"image": "ok.png", "caption": ', // 2: malformed JSON
      rec("gone.png", [0, 0, 4, 4]), // 3: missing image
      rec("junk.png", [0, 0, 4, 4]), // 4: undecodable image
      rec("ok.png", [0, 0, 9, 4]), // 5: box outside the image
      rec("ok.png", [5, 0, 5, 4]), // 6: x0 >= x1
      rec("ok.png", [0, 4, 3, 2]), // 7: y0 >= y1
      rec("ok.png", [0, 0, 4, 4], "  "), // 8: empty region text
      rec("ok.png", [0, 0, 4, 4], "t", ""), // 9: empty caption
      "", // 10: blank lines are ignored
      rec("ok.png", [1, 1, 8, 8]), // 11: good
    ];
    const file = `${dir}/data.jsonl`;
    await Deno.writeTextFile(file, lines.join("\n") + "\n");
    const read = await readRegionJsonl(file);
    assert.deepEqual(read.lines, [1, 11]);
    const expected: [number, RegExp][] = [
      [2, /malformed JSON/],
      [3, /image "gone\.png" not found/],
      [4, /image "junk\.png" could not be decoded: .*not a PNG or JPEG/],
      [5, /box \[0, 0, 9, 4\] lies outside the 8x8 image/],
      [6, /box \[5, 0, 5, 4\] is empty or inverted: wanted x0 < x1 and y0 < y1/],
      [7, /box \[0, 4, 3, 2\] is empty or inverted/],
      [8, /region 0: empty text/],
      [9, /empty caption/],
    ];
    assert.equal(read.bad.count, expected.length, read.bad.summary(20));
    const byLine = new Map(read.bad.list.map((b) => [b.line, b]));
    for (const [line, why] of expected) {
      const b = byLine.get(line);
      assert.ok(b, `line ${line} reported`);
      assert.equal(b.file, file);
      assert.match(b.reason, why, `line ${line}`);
    }
    assert.match(read.bad.summary(), /^skipped 8 bad records:\n {2}.*data\.jsonl:2: malformed JSON/);
    // With "decode" the truncated-but-valid-header case is caught too.
    const pngBytes = encodePng(blankImage(8, 8));
    await Deno.writeFile(`${dir}/cut.png`, pngBytes.slice(0, 40));
    await Deno.writeTextFile(file, rec("cut.png", [0, 0, 1, 1]) + "\n");
    assert.equal((await readRegionJsonl(file)).bad.count, 0, "a header check passes a cut file");
    assert.match(
      (await readRegionJsonl(file, { images: "decode" })).bad.list[0].reason,
      /could not be decoded/,
    );
  });
});

Deno.test("readRegionJsonl() in strict mode throws a BadRecordError at the first bad record", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/ok.png`, encodePng(blankImage(8, 8)));
    const file = `${dir}/d.jsonl`;
    await Deno.writeTextFile(
      file,
      [
        JSON.stringify({ image: "ok.png", caption: "c", regions: [] }),
        JSON.stringify({ image: "ok.png", caption: "c", regions: [{ box: [0, 0, 20, 4], text: "t" }] }),
        "{",
      ].join("\n"),
    );
    const err = await readRegionJsonl(file, { strict: true }).then(() => null, (e) => e);
    assert.ok(err instanceof BadRecordError, String(err));
    // The JSON pass runs first, so the malformed line 3 is the first bad record found.
    assert.equal(err.line, 3);
    assert.equal(err.file, file);
    assert.match(err.message, /d\.jsonl:3: malformed JSON/);
    await Deno.writeTextFile(
      file,
      JSON.stringify({ image: "ok.png", caption: "c", regions: [{ box: [0, 0, 20, 4], text: "t" }] }),
    );
    await assert.rejects(
      readRegionJsonl(file, { strict: true }),
      /d\.jsonl:1: region 0: box \[0, 0, 20, 4\] lies outside the 8x8 image/,
    );
  });
});

Deno.test("parseRegionJsonl() rejects wrong field types with the value found", () => {
  const { bad } = parseRegionJsonl(
    [
      '{"image": 3, "caption": "c"}',
      '{"image": "a.png", "caption": "c", "regions": {}}',
      '{"image": "a.png", "caption": "c", "regions": [{"box": [0, 0, 1], "text": "t"}]}',
      '{"image": "a.png", "caption": "c", "regions": [{"box": [0, 0, 1, 1], "text": "t", "label": 5}]}',
      "[1, 2]",
    ].join("\n"),
    "x.jsonl",
  );
  assert.deepEqual(bad.list.map((b) => b.line), [1, 2, 3, 4, 5]);
  assert.match(bad.list[0].reason, /"image" must be a non-empty path string: got 3/);
  assert.match(bad.list[1].reason, /"regions" must be an array/);
  assert.match(bad.list[2].reason, /box must be 4 finite numbers \[x0, y0, x1, y1\]: got \[0, 0, 1\]/);
  assert.match(bad.list[3].reason, /"label" must be a string/);
  assert.match(bad.list[4].reason, /record must be a JSON object/);
});

Deno.test("readCoco() reads instances and captions into records in COCO's directory layout", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/annotations`);
    await Deno.mkdir(`${dir}/val2017`);
    for (const n of ["1.png", "2.png", "3.png"]) {
      await Deno.writeFile(`${dir}/val2017/${n}`, encodePng(blankImage(40, 30)));
    }
    const instances = {
      images: [
        { id: 11, file_name: "1.png", width: 40, height: 30 },
        { id: 12, file_name: "2.png", width: 40, height: 30 },
        { id: 13, file_name: "3.png", width: 40, height: 30 },
      ],
      annotations: [
        { id: 1, image_id: 11, bbox: [2, 3, 10, 5], category_id: 18, iscrowd: 0 },
        { id: 2, image_id: 11, bbox: [20, 0, 20, 30.4], category_id: 1, iscrowd: 0 }, // a rounding overshoot, clamped
        { id: 3, image_id: 11, bbox: [0, 0, 40, 30], category_id: 1, iscrowd: 1 }, // crowd: skipped
        { id: 4, image_id: 12, bbox: [30, 10, 20, 5], category_id: 18, iscrowd: 0 }, // outside: reported
        { id: 5, image_id: 12, bbox: [1, 1, 2, 2], category_id: 18, iscrowd: 0 },
      ],
      categories: [{ id: 1, name: "person" }, { id: 18, name: "dog" }],
    };
    const captions = {
      images: instances.images,
      annotations: [
        { id: 1, image_id: 11, caption: "A dog next to a person. " },
        { id: 2, image_id: 11, caption: "Another caption." },
      ],
    };
    await Deno.writeTextFile(`${dir}/annotations/instances_val2017.json`, JSON.stringify(instances));
    await Deno.writeTextFile(`${dir}/annotations/captions_val2017.json`, JSON.stringify(captions));
    const file = `${dir}/annotations/instances_val2017.json`;
    const coco = await readCoco(file);
    assert.equal(coco.root, `${dir}/val2017`);
    assert.deepEqual(coco.records, [
      {
        image: "1.png",
        caption: "A dog next to a person.",
        regions: [
          { box: [2, 3, 12, 8], text: "dog", label: "dog" },
          { box: [20, 0, 40, 30], text: "person", label: "person" },
        ],
      },
      {
        image: "2.png",
        caption: "a photo of a dog",
        regions: [{ box: [1, 1, 3, 3], text: "dog", label: "dog" }],
      },
    ]);
    assert.deepEqual(coco.lines, [1, 2]);
    assert.equal(coco.bad.count, 2, coco.bad.summary());
    assert.equal(coco.bad.list[0].file, file);
    assert.equal(coco.bad.list[0].line, 2);
    assert.match(
      coco.bad.list[0].reason,
      /annotation 4 of "2\.png": box \[30, 10, 50, 15\] lies outside the 40x30 image/,
    );
    assert.match(coco.bad.list[1].reason, /image "3\.png" has no caption and no regions/);
    // The same file without its captions, and with the crowd box kept.
    const plain = await readCoco(file, { captions: false, includeCrowd: true });
    assert.equal(plain.records[0].caption, "a photo of a dog and a person");
    assert.equal(plain.records[0].regions.length, 3);
  });
});

Deno.test("a COCO file made by toCoco() round-trips into the same records", async () => {
  const records: RegionRecord[] = [
    {
      image: "x.png",
      caption: "a cat on a mat",
      regions: [{ box: [1, 2, 7, 9], text: "cat", label: "cat" }, {
        box: [0, 5, 10, 10],
        text: "mat",
        label: "mat",
      }],
    },
    {
      image: "y.png",
      caption: "just a mat",
      regions: [{ box: [0.5, 0.5, 3.5, 4], text: "mat", label: "mat" }],
    },
  ];
  const sizes = [{ width: 10, height: 10 }, { width: 6, height: 5 }];
  const { instances, captions } = toCoco(records, sizes);
  assert.deepEqual(instances.categories, [{ id: 1, name: "cat" }, { id: 2, name: "mat" }]);
  const back = parseCoco(
    JSON.parse(JSON.stringify(instances)),
    JSON.parse(JSON.stringify(captions)),
    "instances_rt.json",
  );
  assert.equal(back.bad.count, 0, back.bad.summary());
  assert.deepEqual(back.records, records);
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/instances_rt.json`, JSON.stringify(instances));
    await Deno.writeTextFile(`${dir}/captions_rt.json`, JSON.stringify(captions));
    const read = await readCoco(`${dir}/instances_rt.json`, { imageDir: dir, images: "none" });
    assert.deepEqual(read.records, records);
  });
  assert.throws(() => parseCoco({ images: [] }, null, "bad.json"), /bad\.json: not a COCO instances file/);
});

Deno.test("RecordDataset.get() decodes PNG and JPEG images and fails with file and line for a lost image", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/a.png`, encodePng(gradient(8, 6)));
    await Deno.writeFile(`${dir}/b.jpg`, await encodeJpeg(gradient(8, 6)));
    const recs: RegionRecord[] = [
      { image: "a.png", caption: "png", regions: [{ box: [0, 0, 8, 6], text: "all" }] },
      { image: "b.jpg", caption: "jpeg", regions: [] },
      { image: "c.png", caption: "lost", regions: [] },
    ];
    const set = new RecordDataset(`${dir}/d.jsonl`, dir, recs, [1, 2, 5]);
    assert.deepEqual((await set.get(0)).image, gradient(8, 6));
    assert.equal((await set.get(1)).image.width, 8);
    const err = await set.get(2).then(() => null, (e) => e);
    assert.ok(err instanceof BadRecordError);
    assert.equal(err.line, 5);
    assert.match(err.message, /d\.jsonl:5: image "c\.png" not found/);
  });
});

Deno.test("region-text JSONL carries optional caption and phrase levels, round-trips them and checks them", () => {
  const record: RegionRecord = {
    image: "a.png",
    caption: "a small seven",
    captions: ["a seven", "a small seven"],
    regions: [{ box: [0, 0, 4, 4], text: "small seven", label: "seven", phrases: ["seven", "small seven"] }],
  };
  const { records, bad } = parseRegionJsonl(formatRegionJsonl([record]), "x.jsonl");
  assert.equal(bad.count, 0);
  assert.deepEqual(records, [record]);
  const { bad: wrong } = parseRegionJsonl(
    [
      '{"image": "a.png", "caption": "c", "captions": []}',
      '{"image": "a.png", "caption": "c", "regions": [{"box": [0, 0, 1, 1], "text": "t", "phrases": ["t", " "]}]}',
    ].join("\n"),
    "x.jsonl",
  );
  assert.match(
    wrong.list[0].reason,
    /"captions" must be a non-empty array of strings when present: got \[\]/,
  );
  assert.match(wrong.list[1].reason, /region 0: "phrases" entry 1 must be a non-empty string: got " "/);
});
