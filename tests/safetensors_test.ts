import assert from "node:assert/strict";
import {
  fromFloat32,
  MAX_HEADER_BYTES,
  parseSafetensors,
  type SafetensorsTensorInput,
  serializeSafetensors,
  toFloat32,
  toInt32,
} from "../src/io/safetensors.ts";
import { readSafetensorsFile, writeFileAtomic, writeSafetensorsFile } from "../src/io/files.ts";
import { Rng } from "../src/tensor/random.ts";

const GOLDEN = new URL("../../shared/golden/tiny.safetensors", import.meta.url).pathname;

/** Bytes of a file with the given header text (not padded) and data section. */
function rawFile(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** A file whose header is `header` (JSON-encoded) followed by `dataBytes` zero bytes. */
function fileWith(header: unknown, dataBytes: number): Uint8Array {
  return rawFile(JSON.stringify(header), new Uint8Array(dataBytes));
}

function headerOf(bytes: Uint8Array): Record<string, unknown> {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
}

function bits(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Asserts that parsing throws an Error whose message names the file and contains every fragment. */
function assertParseError(bytes: Uint8Array, ...fragments: string[]): Error {
  let error: unknown = null;
  try {
    parseSafetensors(bytes, "model.safetensors");
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof Error, `expected an Error, got ${error}`);
  assert.ok(
    error.message.startsWith("model.safetensors: "),
    `message does not name the file: ${error.message}`,
  );
  for (const f of fragments) {
    assert.ok(
      error.message.includes(f),
      `message ${JSON.stringify(error.message)} lacks ${JSON.stringify(f)}`,
    );
  }
  return error;
}

const F32 = (shape: number[], begin: number) => ({
  dtype: "F32",
  shape,
  data_offsets: [begin, begin + 4 * shape.reduce((a, b) => a * b, 1)],
});

// ---------------------------------------------------------------------------------------------------------
// Round trips

Deno.test("serializeSafetensors() then parseSafetensors() round-trips F32, I32, F16 and 0-dim tensors bit for bit", () => {
  const f32 = new Float32Array([1.5, -0, Infinity, -Infinity, 1e-45, 3.4028235e38, -2.5e-39, 0]);
  new Uint32Array(f32.buffer)[7] = 0x7fc01234; // a NaN with a payload
  const i32 = new Int32Array([0, -1, 2147483647, -2147483648, 42, 7]);
  const f16 = new Uint16Array(65536).map((_, i) => i); // every half-precision bit pattern
  const scalar = new Float32Array([Math.fround(Math.log(1 / 0.07))]);
  const tensors: Record<string, SafetensorsTensorInput> = {
    "w.f32": { dtype: "F32", shape: [2, 4], data: f32 },
    "ids": { dtype: "I32", shape: [3, 2], data: i32 },
    "half": { dtype: "F16", shape: [256, 16, 16], data: f16 },
    "logit_scale": { dtype: "F32", shape: [], data: scalar },
    "empty": { dtype: "F32", shape: [0, 3], data: new Float32Array(0) },
    "odd": { dtype: "U8", shape: [3], data: new Uint8Array([1, 2, 3]) },
  };
  const bytes = serializeSafetensors(tensors);
  const { tensors: back, metadata } = parseSafetensors(bytes, "roundtrip.safetensors");
  assert.deepEqual(metadata, {});
  assert.deepEqual([...back.keys()].sort(), Object.keys(tensors).sort());
  for (const [name, t] of Object.entries(tensors)) {
    const got = back.get(name)!;
    assert.equal(got.dtype, t.dtype, name);
    assert.deepEqual(got.shape, t.shape, name);
    assert.deepEqual(bits(got.data), bits(t.data), `${name} is not bit-identical`);
  }
  assert.ok(back.get("w.f32")!.data instanceof Float32Array);
  assert.ok(back.get("ids")!.data instanceof Int32Array);
  assert.ok(back.get("half")!.data instanceof Uint16Array);
  assert.equal(back.get("logit_scale")!.data.length, 1);
  // A second serialisation of what was read gives the same bytes.
  assert.deepEqual(serializeSafetensors(back), bytes);
});

Deno.test("serializeSafetensors() pads the header to 8 bytes and packs tensors sorted by name", () => {
  const bytes = serializeSafetensors(
    new Map<string, SafetensorsTensorInput>([
      ["b", { dtype: "F32", shape: [3], data: new Float32Array(3) }],
      ["a", { dtype: "I32", shape: [1], data: new Int32Array(1) }],
      ["c", { dtype: "F16", shape: [1], data: new Uint16Array(1) }],
    ]),
    { format: "pt" },
  );
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert.match(text, /^\{.*\} *$/);
  const header = headerOf(bytes) as Record<string, { data_offsets: number[] }>;
  assert.deepEqual(header.a.data_offsets, [0, 4]);
  assert.deepEqual(header.b.data_offsets, [4, 16]);
  assert.deepEqual(header.c.data_offsets, [16, 18]);
  assert.equal(bytes.length, 8 + n + 18);
});

Deno.test("serializeSafetensors() keeps metadata strings, including unicode and odd keys", () => {
  const metadata = {
    format: "pt",
    config: JSON.stringify({ embed_dim: 24, act: "gelu" }),
    "note ü": 'naïve 数据 "quoted"\n',
    ["__proto__"]: "not a prototype", // a computed key makes an own property, not the prototype
    empty: "",
  };
  const bytes = serializeSafetensors(
    { x: { dtype: "F32", shape: [], data: new Float32Array([1]) } },
    metadata,
  );
  const parsed = parseSafetensors(bytes).metadata;
  assert.equal(Object.keys(parsed).length, 5);
  for (const [k, v] of Object.entries(metadata)) assert.equal(parsed[k], v, k);
  assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
});

Deno.test("toFloat32() decodes every F16 bit pattern and fromFloat32() encodes them back", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const values = toFloat32({ dtype: "F16", shape: [65536], data: all });
  assert.equal(values[0x3c00], 1);
  assert.equal(values[0xc000], -2);
  assert.equal(values[0x7bff], 65504);
  assert.equal(values[0x0001], 2 ** -24);
  assert.equal(values[0x7c00], Infinity);
  assert.ok(Number.isNaN(values[0x7e00]));
  assert.ok(Object.is(values[0x8000], -0));
  const back = fromFloat32(values, "F16");
  for (let h = 0; h < 65536; h++) {
    if (Number.isNaN(values[h])) continue;
    assert.equal(back[h], h, `f16 0x${h.toString(16)} did not survive decode + encode`);
  }
  // Round to nearest even: halfway between 1 and 1 + 2^-10 goes to 1; just above goes up; overflow → inf.
  assert.deepEqual([
    ...fromFloat32([1 + 2 ** -11, 1 + 2 ** -11 + 2 ** -20, 65520, 2 ** -25, 3 * 2 ** -26], "F16"),
  ], [
    0x3c00,
    0x3c01,
    0x7c00,
    0x0000,
    0x0001,
  ]);
});

Deno.test("toFloat32() and toInt32() convert BF16, I64 and F64 and refuse what does not fit", () => {
  const bf = fromFloat32([1, -3.140625, 1e30], "BF16");
  const decoded = toFloat32({ dtype: "BF16", shape: [3], data: bf as Uint16Array<ArrayBuffer> });
  assert.equal(decoded[0], 1);
  assert.equal(decoded[1], -3.140625);
  assert.ok(Math.abs(decoded[2] / 1e30 - 1) < 1 / 128);
  assert.deepEqual([...toFloat32({ dtype: "F64", shape: [2], data: new Float64Array([0.5, -4]) })], [
    0.5,
    -4,
  ]);
  assert.deepEqual([...toInt32({ dtype: "I64", shape: [2], data: new BigInt64Array([5n, -7n]) })], [5, -7]);
  assert.throws(
    () => toInt32({ dtype: "I64", shape: [1], data: new BigInt64Array([1n << 40n]) }, "input.text"),
    /toInt32: input\.text \(I64\) holds 1099511627776 at element 0, outside the i32 range/,
  );
  assert.throws(
    () => toInt32({ dtype: "F32", shape: [1], data: new Float32Array(1) }, "w"),
    /not an integer type/,
  );
  const f32 = new Float32Array([1]);
  assert.equal(toFloat32({ dtype: "F32", shape: [1], data: f32 }), f32, "F32 is returned without a copy");
});

Deno.test("readSafetensorsFile() reads the tiny reference bundle with its names, shapes and metadata", async () => {
  const { tensors, metadata } = await readSafetensorsFile(GOLDEN);
  assert.equal(metadata.format, "pt");
  assert.equal(JSON.parse(metadata.config).embed_dim, 24);
  assert.equal(JSON.parse(metadata.optimizer).type, "AdamW");
  const expect: [string, string, number[]][] = [
    ["visual.proj", "F32", [32, 24]],
    ["logit_scale", "F32", []],
    ["input.text", "I32", [4, 8]],
    ["input.images", "F32", [4, 3, 32, 32]],
    ["input.region_text", "I32", [4, 3, 8]],
    ["visual.conv1.weight", "F32", [32, 3, 8, 8]],
    ["expect.loss", "F32", []],
    ["grad.visual.proj", "F32", [32, 24]],
    ["step.logit_scale", "F32", []],
  ];
  for (const [name, dtype, shape] of expect) {
    const t = tensors.get(name);
    assert.ok(t, `${name} is missing`);
    assert.equal(t.dtype, dtype, name);
    assert.deepEqual(t.shape, shape, name);
    assert.equal(t.data.length, shape.reduce((a, b) => a * b, 1), name);
  }
  assert.ok(Math.abs(tensors.get("logit_scale")!.data[0] as number - Math.log(1 / 0.07)) < 0.5);
  const ids = toInt32(tensors.get("input.text")!);
  assert.ok(ids.every((id) => id >= 0 && id < 64), "token ids lie in the vocabulary");
  // Writing what was read and reading it again changes nothing.
  const again = parseSafetensors(serializeSafetensors(tensors, metadata));
  assert.equal(again.tensors.size, tensors.size);
  for (const [name, t] of tensors) assert.deepEqual(bits(again.tensors.get(name)!.data), bits(t.data), name);
  assert.deepEqual(again.metadata, metadata);
});

Deno.test("parseSafetensors() accepts header keys in any order when the offsets tile the data", () => {
  const bytes = fileWith({ b: F32([1], 4), __metadata__: { k: "v" }, a: F32([1], 0), z: F32([0], 8) }, 8);
  const { tensors, metadata } = parseSafetensors(bytes);
  assert.deepEqual([...tensors.keys()], ["a", "b", "z"], "tensors come in the order of their data");
  assert.deepEqual(metadata, { k: "v" });
  assert.deepEqual(tensors.get("z")!.shape, [0]);
});

Deno.test("parseSafetensors() reads tensors from a Uint8Array that is a view at an odd offset", () => {
  const inner = serializeSafetensors({ x: { dtype: "F32", shape: [2], data: new Float32Array([3, 4]) } });
  const outer = new Uint8Array(inner.length + 3);
  outer.set(inner, 3);
  const x = parseSafetensors(outer.subarray(3)).tensors.get("x")!;
  assert.deepEqual([...x.data], [3, 4]);
});

// ---------------------------------------------------------------------------------------------------------
// Damage: one test per kind, each error names the file, the tensor and the problem

Deno.test("parseSafetensors() rejects a file shorter than the 8-byte length field", () => {
  assertParseError(new Uint8Array(0), "0 bytes long", "shorter than the 8-byte header length");
  assertParseError(new Uint8Array(7), "7 bytes long");
});

Deno.test("parseSafetensors() rejects a truncated file whose data section is cut short", () => {
  const good = serializeSafetensors({
    a: { dtype: "F32", shape: [4], data: new Float32Array(4) },
    b: { dtype: "F32", shape: [2, 3], data: new Float32Array(6) },
  });
  assertParseError(
    good.subarray(0, good.length - 1),
    'tensor "b"',
    "data_offsets [16, 40] run past the data section, which holds 39 bytes",
  );
});

Deno.test("parseSafetensors() rejects a truncated header", () => {
  const good = serializeSafetensors({ a: { dtype: "F32", shape: [4], data: new Float32Array(4) } });
  assertParseError(good.subarray(0, 20), "runs past the end of the file (12 bytes follow the length field)");
});

Deno.test("parseSafetensors() rejects a huge header length without allocating it", () => {
  const bytes = serializeSafetensors({ a: { dtype: "F32", shape: [1], data: new Float32Array(1) } });
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, 0xffffffffffffffffn, true);
  assertParseError(bytes, "header length 18446744073709551615 exceeds the 104857600-byte limit");
  view.setBigUint64(0, BigInt(MAX_HEADER_BYTES + 1), true);
  assertParseError(bytes, "exceeds the 104857600-byte limit");
  view.setBigUint64(0, BigInt(MAX_HEADER_BYTES), true);
  assertParseError(bytes, "runs past the end of the file");
});

Deno.test("parseSafetensors() rejects a header that is not JSON, not UTF-8 or not an object", () => {
  assert.ok(
    assertParseError(rawFile('{"a": {"dtype": "F32",'), "header is not valid JSON") instanceof SyntaxError,
  );
  assertParseError(rawFile("\u0000\u0000"), "header is not valid JSON");
  const badUtf8 = rawFile("{}  ");
  badUtf8[9] = 0xff;
  assertParseError(badUtf8, "not valid UTF-8");
  assertParseError(rawFile("[1, 2]"), "header must be a JSON object, found an array");
  assertParseError(rawFile("null"), "header must be a JSON object, found null");
  assertParseError(rawFile('"text"'), "header must be a JSON object, found a string");
  assertParseError(
    fileWith({ a: [1, 2] }, 0),
    'tensor "a": expected an object with dtype, shape and data_offsets, found an array',
  );
});

Deno.test("parseSafetensors() rejects an unknown dtype, naming the tensor and the dtype", () => {
  assertParseError(
    fileWith({ w: { dtype: "F128", shape: [1], data_offsets: [0, 16] } }, 16),
    'tensor "w"',
    'unknown dtype "F128"',
    "F32",
  );
  assertParseError(
    fileWith({ w: { dtype: "f32", shape: [1], data_offsets: [0, 4] } }, 4),
    'unknown dtype "f32"',
  );
  assertParseError(fileWith({ w: { shape: [1], data_offsets: [0, 4] } }, 4), "unknown dtype undefined");
  assertParseError(
    fileWith({ w: { dtype: "toString", shape: [1], data_offsets: [0, 4] } }, 4),
    'unknown dtype "toString"',
  );
});

Deno.test("parseSafetensors() rejects a shape that is not a list of non-negative integers", () => {
  for (const shape of [[-1], [2.5], ["3"], [null], "[3]", null, [1e300], {}, [2 ** 53]]) {
    assertParseError(
      fileWith({ w: { dtype: "F32", shape, data_offsets: [0, 4] } }, 4),
      'tensor "w": shape must be a list of non-negative integers',
    );
  }
});

Deno.test("parseSafetensors() rejects data_offsets that are malformed, reversed or out of bounds", () => {
  for (const offsets of [[0], [0, 4, 8], ["0", 4], [0, 4.5], [-4, 0], null, "0-4"]) {
    assertParseError(
      fileWith({ w: { dtype: "F32", shape: [1], data_offsets: offsets } }, 4),
      'tensor "w": data_offsets must be [begin, end]',
    );
  }
  assertParseError(
    fileWith({ w: { dtype: "F32", shape: [1], data_offsets: [8, 4] } }, 8),
    'tensor "w": data_offsets [8, 4] begin after they end',
  );
  assertParseError(
    fileWith({ w: { dtype: "F32", shape: [256], data_offsets: [0, 1024] } }, 16),
    'tensor "w": data_offsets [0, 1024] run past the data section, which holds 16 bytes',
  );
});

Deno.test("parseSafetensors() rejects a byte size that does not match shape and dtype", () => {
  const error = assertParseError(
    fileWith({ "visual.proj": { dtype: "F32", shape: [32, 24], data_offsets: [0, 100] } }, 100),
  );
  assert.equal(
    error.message,
    'model.safetensors: tensor "visual.proj": data_offsets [0, 100] hold 100 bytes but shape [32, 24] of F32 needs 3072',
  );
  assertParseError(
    fileWith({ s: { dtype: "F16", shape: [], data_offsets: [0, 4] } }, 4),
    'tensor "s"',
    "hold 4 bytes but shape [] of F16 needs 2",
  );
  assertParseError(
    fileWith({ s: { dtype: "F32", shape: [2 ** 40, 2 ** 40], data_offsets: [0, 4] } }, 4),
    "of F32 needs",
  );
});

Deno.test("parseSafetensors() rejects overlapping, gapped and incompletely covering tensors", () => {
  assertParseError(
    fileWith({ a: F32([2], 0), b: F32([2], 4) }, 12),
    'tensor "b": data_offsets [4, 12] overlap tensor "a" at [0, 8]',
  );
  assertParseError(fileWith({ a: F32([2], 0), b: F32([2], 0) }, 8), "overlap tensor");
  assertParseError(
    fileWith({ a: F32([3], 0), z: F32([0], 4) }, 12),
    'tensor "z": data_offsets [4, 4] overlap tensor "a"',
  );
  assertParseError(
    fileWith({ a: F32([1], 0), b: F32([1], 8) }, 12),
    'tensor "b": data_offsets [8, 12] leave a gap of 4 bytes after tensor "a" [0, 4]',
  );
  assertParseError(
    fileWith({ b: F32([1], 4) }, 8),
    "leave a gap of 4 bytes after the start of the data section",
  );
  assertParseError(fileWith({ a: F32([1], 0) }, 6), "2 bytes after the last tensor's data are not covered");
  assertParseError(fileWith({}, 3), "3 bytes after the last tensor's data are not covered");
});

Deno.test("parseSafetensors() rejects __metadata__ that is not an object of strings", () => {
  assertParseError(
    fileWith({ __metadata__: { format: "pt", steps: 3 } }, 0),
    '__metadata__ "steps" must be a string, found a number 3',
  );
  assertParseError(
    fileWith({ __metadata__: { nested: { a: "b" } } }, 0),
    '__metadata__ "nested" must be a string, found a object',
  );
  assertParseError(
    fileWith({ __metadata__: ["pt"] }, 0),
    "__metadata__ must be an object of strings, found an array",
  );
  assertParseError(
    fileWith({ __metadata__: "pt" }, 0),
    "__metadata__ must be an object of strings, found a string",
  );
});

Deno.test("parseSafetensors() survives random damage: each mutation parses or throws an Error naming the file", () => {
  const rng = new Rng(7);
  const good = serializeSafetensors({
    "visual.proj": { dtype: "F32", shape: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
    "logit_scale": { dtype: "F32", shape: [], data: new Float32Array([2.5]) },
    "input.text": { dtype: "I32", shape: [2, 2], data: new Int32Array([1, 2, 3, 63]) },
    "half": { dtype: "F16", shape: [3], data: new Uint16Array([1, 2, 3]) },
    "empty": { dtype: "I64", shape: [0], data: new BigInt64Array(0) },
  }, { format: "pt", config: '{"a": [1, 2]}' });
  const headerEnd = 8 + Number(new DataView(good.buffer).getBigUint64(0, true));
  const alphabet = new TextEncoder().encode('{}[]",:0123456789-. e\u0000\\abcdefFIU_');
  let parsed = 0, rejected = 0;
  for (let trial = 0; trial < 600; trial++) {
    let bytes = good.slice();
    const kind = trial % 6;
    const count = 1 + rng.int(4);
    for (let k = 0; k < count; k++) {
      if (kind === 0) bytes[rng.int(bytes.length)] = rng.int(256); // any byte
      else if (kind === 1) bytes[8 + rng.int(headerEnd - 8)] = alphabet[rng.int(alphabet.length)]; // JSON-ish
      else if (kind === 2) bytes = bytes.slice(0, rng.int(bytes.length)); // truncation
      else if (kind === 3) bytes[rng.int(8)] = rng.int(256); // the length field
      else if (kind === 4) { // delete a byte of the header
        const at = 8 + rng.int(headerEnd - 8);
        bytes = new Uint8Array([...bytes.subarray(0, at), ...bytes.subarray(at + 1)]);
      } else { // swap two digits of the header, moving offsets and dims
        const at = 8 + rng.int(headerEnd - 8);
        if (bytes[at] >= 0x30 && bytes[at] <= 0x39) bytes[at] = 0x30 + rng.int(10);
      }
      if (bytes.length === 0) break;
    }
    try {
      const { tensors } = parseSafetensors(bytes, "fuzz.safetensors");
      for (const t of tensors.values()) assert.equal(t.data.length, t.shape.reduce((a, b) => a * b, 1));
      parsed++;
    } catch (e) {
      assert.ok(e instanceof Error, `trial ${trial}: threw a non-Error ${e}`);
      assert.ok(
        e.message.startsWith("fuzz.safetensors: "),
        `trial ${trial}: message does not name the file: ${e.message}`,
      );
      rejected++;
    }
  }
  assert.ok(rejected > 300, `only ${rejected} mutations were rejected`);
  assert.ok(parsed > 10, `only ${parsed} mutations parsed`);
});

Deno.test("serializeSafetensors() rejects bad tensors and non-string metadata", () => {
  assert.throws(
    () => serializeSafetensors({ w: { dtype: "F32", shape: [2, 3], data: new Float32Array(5) } }),
    /serializeSafetensors: tensor "w": data holds 20 bytes but shape \[2, 3\] of F32 needs 24/,
  );
  assert.throws(
    () => serializeSafetensors({ w: { dtype: "F12" as "F32", shape: [1], data: new Float32Array(1) } }),
    /tensor "w": unknown dtype "F12"/,
  );
  assert.throws(
    () => serializeSafetensors({ w: { dtype: "F32", shape: [-1], data: new Float32Array(1) } }),
    /tensor "w": shape must be a list of non-negative integers/,
  );
  assert.throws(
    () => serializeSafetensors({ __metadata__: { dtype: "F32", shape: [1], data: new Float32Array(1) } }),
    /reserved for the metadata/,
  );
  assert.throws(
    () => serializeSafetensors({}, { steps: 3 as unknown as string }),
    /metadata "steps" must be a string, found a number/,
  );
});

// ---------------------------------------------------------------------------------------------------------
// Files

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

Deno.test("writeFileAtomic() replaces a file whole and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/model.safetensors`;
    await Deno.writeTextFile(path, "old content that is longer than the new one");
    await writeFileAtomic(path, new TextEncoder().encode("new"));
    assert.equal(await Deno.readTextFile(path), "new");
    assert.deepEqual(await listDir(dir), ["model.safetensors"]);
    const big = new Uint8Array(3 << 20).map((_, i) => i * 7);
    await writeFileAtomic(path, big);
    assert.deepEqual(await Deno.readFile(path), big);
    assert.deepEqual(await listDir(dir), ["model.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic() into a missing directory fails, naming the path, and creates nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/missing/model.safetensors`;
    let caught: unknown = null;
    try {
      await writeFileAtomic(path, new Uint8Array(8));
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof Error);
    assert.ok(caught.message.startsWith(`Cannot write "${path}": `), caught.message);
    assert.ok(caught.cause instanceof Deno.errors.NotFound);
    assert.deepEqual(await listDir(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic() that fails at the rename removes its temporary file and keeps the target", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The target is a non-empty directory: the data is written, then the rename fails.
    const path = `${dir}/target`;
    await Deno.mkdir(path);
    await Deno.writeTextFile(`${path}/keep.txt`, "kept");
    await assert.rejects(
      writeFileAtomic(path, new Uint8Array(1024)),
      (e: Error) => e.message.startsWith(`Cannot write "${path}": `),
    );
    assert.deepEqual(await listDir(dir), ["target"]);
    assert.equal(await Deno.readTextFile(`${path}/keep.txt`), "kept");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeSafetensorsFile() writes a file that readSafetensorsFile() reads back, and bad tensors write nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/optimizer.safetensors`;
    const m = new Float32Array([0.25, -0.5, 1e-8]);
    await writeSafetensorsFile(path, { "m.visual.proj": { dtype: "F32", shape: [3], data: m } }, {
      step: "5",
    });
    const { tensors, metadata } = await readSafetensorsFile(path);
    assert.deepEqual(metadata, { step: "5" });
    assert.deepEqual(bits(tensors.get("m.visual.proj")!.data), bits(m));
    await assert.rejects(
      writeSafetensorsFile(`${dir}/bad.safetensors`, { w: { dtype: "F32", shape: [2], data: m } }),
      /data holds 12 bytes but shape \[2\] of F32 needs 8/,
    );
    assert.deepEqual(await listDir(dir), ["optimizer.safetensors"]);
    const damaged = await Deno.readFile(path);
    await Deno.writeFile(path, damaged.subarray(0, damaged.length - 2));
    await assert.rejects(
      readSafetensorsFile(path),
      (e: Error) => e.message.startsWith(`${path}: tensor "m.visual.proj"`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
