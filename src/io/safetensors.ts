/**
 * The safetensors format, read and written as pure functions on bytes (no file system, no GPU):
 * an 8-byte little-endian header length `N`, `N` bytes of UTF-8 JSON, then the data section, which the
 * tensors cover in order, without gaps or overlaps.
 *
 * ```
 * [u64 N][{"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...}][data]
 * ```
 *
 * The reader trusts nothing in the file: every length is checked against the bytes actually present
 * before anything is allocated from it, and every error names the file, the tensor and the problem.
 * Tensor data is copied out of the input, so the result stays valid (and aligned) whatever happens to it.
 *
 * @module
 */

import { halfToNumber, numberToHalf } from "../tensor/half.ts";

/** The element types of the safetensors format that this reader knows. */
export type SafetensorsDType =
  | "BOOL"
  | "U8"
  | "I8"
  | "F8_E5M2"
  | "F8_E4M3"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "F64"
  | "I64"
  | "U64";

/**
 * A tensor's values as the typed array that fits its dtype: `F32` → `Float32Array`, `I32` → `Int32Array`,
 * `F16` and `BF16` → `Uint16Array` of raw bits (decode with {@link toFloat32}), `I64` → `BigInt64Array`,
 * `BOOL`, `U8` and both `F8` kinds → `Uint8Array` (raw bits for `F8`), and so on.
 */
export type SafetensorsData =
  | Uint8Array<ArrayBuffer>
  | Int8Array<ArrayBuffer>
  | Int16Array<ArrayBuffer>
  | Uint16Array<ArrayBuffer>
  | Int32Array<ArrayBuffer>
  | Uint32Array<ArrayBuffer>
  | Float32Array<ArrayBuffer>
  | Float64Array<ArrayBuffer>
  | BigInt64Array<ArrayBuffer>
  | BigUint64Array<ArrayBuffer>;

/** One tensor of a parsed file. */
export interface SafetensorsTensor {
  /** The element type. */
  dtype: SafetensorsDType;
  /** The dimensions, outermost first (`[]` for a 0-dim tensor, which holds one value). */
  shape: number[];
  /** The values in row-major order, in their own buffer (see {@link SafetensorsData}). */
  data: SafetensorsData;
}

/** A tensor to write: its data may be any typed array (or view) of exactly the right byte length. */
export interface SafetensorsTensorInput {
  /** The element type. */
  dtype: SafetensorsDType;
  /** The dimensions (`[]` for a 0-dim tensor). */
  shape: readonly number[];
  /** The raw little-endian values: `product(shape) * size(dtype)` bytes. */
  data: ArrayBufferView;
}

/** What {@link parseSafetensors} returns. */
export interface Safetensors {
  /** The tensors by name, in the order of their data in the file. */
  tensors: Map<string, SafetensorsTensor>;
  /** The string-to-string `__metadata__` map (empty when the file has none). */
  metadata: Record<string, string>;
}

/**
 * The largest header this reader accepts, in bytes (100 MiB). A bigger length field means a damaged file
 * or not a safetensors file at all, and must not make the reader allocate.
 */
export const MAX_HEADER_BYTES: number = 100 * 1024 * 1024;

const DTYPE_SIZE: Readonly<Record<SafetensorsDType, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

function isDType(value: unknown): value is SafetensorsDType {
  return typeof value === "string" && Object.hasOwn(DTYPE_SIZE, value);
}

// Typed arrays use the host's byte order and safetensors is little-endian. Every platform Deno and the
// browsers run on is little-endian; refuse rather than return swapped values elsewhere.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Wraps a fresh copy of raw bytes as the typed array of `dtype`. */
function typedArray(dtype: SafetensorsDType, bytes: Uint8Array<ArrayBuffer>): SafetensorsData {
  const b = bytes.buffer;
  switch (dtype) {
    case "BOOL":
    case "U8":
    case "F8_E5M2":
    case "F8_E4M3":
      return bytes;
    case "I8":
      return new Int8Array(b);
    case "I16":
      return new Int16Array(b);
    case "U16":
    case "F16":
    case "BF16":
      return new Uint16Array(b);
    case "I32":
      return new Int32Array(b);
    case "U32":
      return new Uint32Array(b);
    case "F32":
      return new Float32Array(b);
    case "F64":
      return new Float64Array(b);
    case "I64":
      return new BigInt64Array(b);
    case "U64":
      return new BigUint64Array(b);
  }
}

/** A short rendering of an untrusted JSON value for messages (never a megabyte of it). */
function show(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function isShape(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((d) => Number.isSafeInteger(d) && d >= 0);
}

function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

interface Placed {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Parses a safetensors file held in memory, checking everything: lengths, the header's JSON and types,
 * each tensor's dtype, shape and offsets, and that the tensors cover the data section in order.
 *
 * @param bytes The whole file.
 * @param fileName The name used in error messages.
 * @returns The tensors (each with its own copy of the data) and the metadata.
 * @throws {Error} (or a `RangeError`, `TypeError`, `SyntaxError`) whose message starts with `fileName` and
 * names the tensor and the problem, e.g. `model.safetensors: tensor "visual.proj": data_offsets [0, 100]
 * hold 100 bytes but shape [32, 24] of F32 needs 3072`.
 *
 * @example Round trip through bytes
 * ```ts
 * import { parseSafetensors, serializeSafetensors } from "./safetensors.ts";
 * const bytes = serializeSafetensors({ w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
 * const { tensors } = parseSafetensors(bytes, "w.safetensors");
 * const w = tensors.get("w")!;
 * if (w.dtype !== "F32" || w.shape[0] !== 2 || w.data[1] !== 2) throw new Error("round trip failed");
 * ```
 *
 * @example A damaged file names itself in the error
 * ```ts
 * import { parseSafetensors } from "./safetensors.ts";
 * try {
 *   parseSafetensors(new Uint8Array(5), "broken.safetensors");
 *   throw new Error("unreachable");
 * } catch (e) {
 *   if (!(e as Error).message.startsWith("broken.safetensors: ")) throw e;
 * }
 * ```
 */
export function parseSafetensors(bytes: Uint8Array, fileName = "<memory>"): Safetensors {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`${fileName}: expected the file's bytes as a Uint8Array, got ${kindOf(bytes)}`);
  }
  if (!LITTLE_ENDIAN) throw new Error(`${fileName}: cannot read safetensors on a big-endian host`);
  if (bytes.length < 8) {
    throw new RangeError(
      `${fileName}: file is ${bytes.length} bytes long, shorter than the 8-byte header length: truncated or empty file`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw new RangeError(
      `${fileName}: header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit: ` +
        "not a safetensors file, or a damaged one",
    );
  }
  const n = Number(headerLength);
  if (n > bytes.length - 8) {
    throw new RangeError(
      `${fileName}: header length ${n} runs past the end of the file (${bytes.length - 8} bytes follow ` +
        "the length field): truncated file?",
    );
  }

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    throw new SyntaxError(`${fileName}: header of ${n} bytes is not valid UTF-8: not a safetensors file?`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`${fileName}: header is not valid JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new TypeError(`${fileName}: header must be a JSON object, found ${kindOf(header)}`);
  }

  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  let metadata: Record<string, string> = {};
  const placed: Placed[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(info, fileName);
      continue;
    }
    const where = `${fileName}: tensor ${JSON.stringify(name)}`;
    if (info === null || typeof info !== "object" || Array.isArray(info)) {
      throw new TypeError(
        `${where}: expected an object with dtype, shape and data_offsets, found ${kindOf(info)}`,
      );
    }
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (!isDType(dtype)) {
      throw new TypeError(
        `${where}: unknown dtype ${show(dtype)}; known dtypes are ${Object.keys(DTYPE_SIZE).join(", ")}`,
      );
    }
    if (!isShape(shape)) {
      throw new TypeError(`${where}: shape must be a list of non-negative integers, found ${show(shape)}`);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      throw new TypeError(
        `${where}: data_offsets must be [begin, end] with non-negative integers, found ${show(offsets)}`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) throw new RangeError(`${where}: data_offsets [${begin}, ${end}] begin after they end`);
    if (end > dataLength) {
      throw new RangeError(
        `${where}: data_offsets [${begin}, ${end}] run past the data section, which holds ${dataLength} bytes: ` +
          "truncated file?",
      );
    }
    // product(shape) may lose precision for absurd shapes, but then it is far above `end - begin` anyway.
    const need = product(shape) * DTYPE_SIZE[dtype];
    if (need !== end - begin) {
      throw new RangeError(
        `${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape ${
          formatShape(shape)
        } ` +
          `of ${dtype} needs ${need}`,
      );
    }
    placed.push({ name, dtype, shape: [...shape], begin, end });
  }

  // The format requires the tensors to tile the data section exactly: sorted by offset, each begins where
  // the previous one ends, and the last one ends at the end of the file.
  placed.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: Placed | null = null;
  for (const t of placed) {
    const where = `${fileName}: tensor ${JSON.stringify(t.name)}`;
    if (t.begin < covered) {
      throw new RangeError(
        `${where}: data_offsets [${t.begin}, ${t.end}] overlap tensor ${JSON.stringify(previous!.name)} at ` +
          `[${previous!.begin}, ${previous!.end}]`,
      );
    }
    if (t.begin > covered) {
      const after = previous
        ? `tensor ${JSON.stringify(previous.name)} [${previous.begin}, ${previous.end}]`
        : "the start of the data section";
      throw new RangeError(
        `${where}: data_offsets [${t.begin}, ${t.end}] leave a gap of ${
          t.begin - covered
        } bytes after ${after}: ` +
          "the tensors must cover the data section in order",
      );
    }
    covered = t.end;
    previous = t;
  }
  if (covered !== dataLength) {
    throw new RangeError(
      `${fileName}: ${
        dataLength - covered
      } bytes after the last tensor's data are not covered by any tensor ` +
        `(the data section holds ${dataLength} bytes, the tensors ${covered})`,
    );
  }

  const tensors = new Map<string, SafetensorsTensor>();
  for (const t of placed) {
    const copy = bytes.slice(dataStart + t.begin, dataStart + t.end);
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data: typedArray(t.dtype, copy) });
  }
  return { tensors, metadata };
}

function parseMetadata(value: unknown, fileName: string): Record<string, string> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`${fileName}: __metadata__ must be an object of strings, found ${kindOf(value)}`);
  }
  const entries = Object.entries(value as Record<string, unknown>);
  for (const [key, v] of entries) {
    if (typeof v !== "string") {
      throw new TypeError(
        `${fileName}: __metadata__ ${JSON.stringify(key)} must be a string, found ${kindOf(v)} ${show(v)}`,
      );
    }
  }
  // fromEntries defines own properties, so a "__proto__" key stays a key.
  return Object.fromEntries(entries) as Record<string, string>;
}

/**
 * Serialises tensors and metadata to safetensors bytes: tensors sorted by name, their data packed in that
 * order, the JSON header padded with spaces to a multiple of 8 bytes (so the data section starts aligned).
 *
 * @param tensors The tensors by name (a record or a map); each `data` holds exactly
 * `product(shape) * size(dtype)` bytes.
 * @param metadata String values for `__metadata__` (JSON-encode anything structured).
 * @returns The file's bytes.
 * @throws {TypeError} On an unknown dtype, a bad shape, a reserved name or a non-string metadata value.
 * @throws {RangeError} When a tensor's data does not have the size its shape and dtype need.
 *
 * @example A checkpoint with metadata
 * ```ts
 * import { parseSafetensors, serializeSafetensors } from "./safetensors.ts";
 * const bytes = serializeSafetensors(
 *   { logit_scale: { dtype: "F32", shape: [], data: new Float32Array([2.6592]) } },
 *   { format: "pt" },
 * );
 * if (bytes.length % 4 !== 0) throw new Error("header and data are padded");
 * if (parseSafetensors(bytes).metadata.format !== "pt") throw new Error("metadata lost");
 * ```
 */
export function serializeSafetensors(
  tensors: Record<string, SafetensorsTensorInput> | Map<string, SafetensorsTensorInput>,
  metadata?: Record<string, string>,
): Uint8Array<ArrayBuffer> {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  const header: [string, unknown][] = [];
  if (metadata !== undefined) {
    for (const [key, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new TypeError(
          `serializeSafetensors: metadata ${JSON.stringify(key)} must be a string, found ${kindOf(v)}; ` +
            "encode structured values with JSON.stringify",
        );
      }
    }
    if (Object.keys(metadata).length > 0) {
      header.push(["__metadata__", Object.fromEntries(Object.entries(metadata))]);
    }
  }
  let offset = 0;
  for (const [name, t] of entries) {
    const where = `serializeSafetensors: tensor ${JSON.stringify(name)}`;
    if (typeof name !== "string" || name === "__metadata__") {
      throw new TypeError(`${where}: the name is reserved for the metadata`);
    }
    if (t === null || typeof t !== "object") {
      throw new TypeError(`${where}: expected {dtype, shape, data}, found ${kindOf(t)}`);
    }
    if (!isDType(t.dtype)) {
      throw new TypeError(
        `${where}: unknown dtype ${show(t.dtype)}; known dtypes are ${Object.keys(DTYPE_SIZE).join(", ")}`,
      );
    }
    if (!isShape(t.shape)) {
      throw new TypeError(`${where}: shape must be a list of non-negative integers, found ${show(t.shape)}`);
    }
    if (!ArrayBuffer.isView(t.data)) {
      throw new TypeError(`${where}: data must be a typed array, found ${kindOf(t.data)}`);
    }
    const need = product(t.shape) * DTYPE_SIZE[t.dtype];
    if (t.data.byteLength !== need) {
      throw new RangeError(
        `${where}: data holds ${t.data.byteLength} bytes but shape ${
          formatShape(t.shape)
        } of ${t.dtype} needs ${need}`,
      );
    }
    header.push([name, { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + need] }]);
    offset += need;
  }

  const json = new TextEncoder().encode(JSON.stringify(Object.fromEntries(header)));
  const headerLength = Math.ceil(json.length / 8) * 8;
  if (headerLength > MAX_HEADER_BYTES) {
    throw new RangeError(
      `serializeSafetensors: header of ${headerLength} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit that readers accept`,
    );
  }
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const [, t] of entries) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Conversions

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** bfloat16 bits (the top half of an f32) to a number. */
function bf16ToNumber(h: number): number {
  u32Scratch[0] = h << 16;
  return f32Scratch[0];
}

function numberToBf16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0x8000) | 0x7fc0; // NaN stays a quiet NaN
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

/** OCP FP8 E4M3 ("fn": no infinities, S.1111.111 is NaN), bias 7. */
function e4m3ToNumber(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 3) & 0xf;
  const mant = b & 0x7;
  if (exp === 15 && mant === 7) return NaN;
  if (exp === 0) return sign * mant * 2 ** -9;
  return sign * (1 + mant / 8) * 2 ** (exp - 7);
}

/**
 * A tensor's values as a `Float32Array`, decoding `F16`, `BF16` and `F8` bits and converting integer and
 * `F64` values. An `F32` tensor's own array is returned as is (no copy).
 *
 * @param entry A tensor from {@link parseSafetensors}.
 * @param name The tensor's name, for error messages.
 * @returns The values, `product(shape)` of them.
 *
 * @example Decode half-precision weights
 * ```ts
 * import { fromFloat32, toFloat32 } from "./safetensors.ts";
 * const entry = { dtype: "F16" as const, shape: [2], data: fromFloat32([0.5, -2], "F16") };
 * const values = toFloat32(entry);
 * if (values[0] !== 0.5 || values[1] !== -2) throw new Error("exact in f16");
 * ```
 */
export function toFloat32(entry: SafetensorsTensor, name = "tensor"): Float32Array<ArrayBuffer> {
  const { dtype, data } = entry;
  switch (dtype) {
    case "F32":
      return data as Float32Array<ArrayBuffer>;
    case "F16":
    case "F8_E5M2": {
      // E5M2 is the top byte of an f16.
      const shift = dtype === "F16" ? 0 : 8;
      const out = new Float32Array(data.length);
      for (let i = 0; i < out.length; i++) out[i] = halfToNumber((data[i] as number) << shift);
      return out;
    }
    case "BF16": {
      const out = new Float32Array(data.length);
      for (let i = 0; i < out.length; i++) out[i] = bf16ToNumber(data[i] as number);
      return out;
    }
    case "F8_E4M3": {
      const out = new Float32Array(data.length);
      for (let i = 0; i < out.length; i++) out[i] = e4m3ToNumber(data[i] as number);
      return out;
    }
    case "I64":
    case "U64": {
      const out = new Float32Array(data.length);
      for (let i = 0; i < out.length; i++) out[i] = Number(data[i]);
      return out;
    }
    case "BOOL":
    case "U8":
    case "I8":
    case "I16":
    case "U16":
    case "I32":
    case "U32":
    case "F64":
      return Float32Array.from(data as ArrayLike<number>);
    default:
      throw new TypeError(`toFloat32: ${name} has dtype ${show(dtype)}, which has no float conversion`);
  }
}

/**
 * A tensor's values as an `Int32Array` (token ids, indices), converting any integer dtype and checking that
 * every value fits. An `I32` tensor's own array is returned as is (no copy).
 *
 * @param entry A tensor from {@link parseSafetensors} with an integer or `BOOL` dtype.
 * @param name The tensor's name, for error messages.
 * @returns The values, `product(shape)` of them.
 * @throws {TypeError} For a float dtype.
 * @throws {RangeError} When a value does not fit in 32 bits.
 *
 * @example PyTorch saves token ids as I64
 * ```ts
 * import { toInt32 } from "./safetensors.ts";
 * const ids = toInt32({ dtype: "I64", shape: [2], data: new BigInt64Array([49406n, 49407n]) });
 * if (ids[1] !== 49407) throw new Error("converted");
 * ```
 */
export function toInt32(entry: SafetensorsTensor, name = "tensor"): Int32Array<ArrayBuffer> {
  const { dtype, data } = entry;
  switch (dtype) {
    case "I32":
      return data as Int32Array<ArrayBuffer>;
    case "BOOL":
    case "U8":
    case "I8":
    case "I16":
    case "U16":
      return Int32Array.from(data as ArrayLike<number>);
    case "U32":
    case "I64":
    case "U64": {
      const out = new Int32Array(data.length);
      for (let i = 0; i < out.length; i++) {
        const v = Number(data[i]);
        if (!(v >= -0x80000000 && v <= 0x7fffffff)) {
          throw new RangeError(
            `toInt32: ${name} (${dtype}) holds ${data[i]} at element ${i}, outside the i32 range`,
          );
        }
        out[i] = v;
      }
      return out;
    }
    default:
      throw new TypeError(`toInt32: ${name} has dtype ${dtype}, not an integer type: use toFloat32`);
  }
}

/**
 * Encodes numbers as the data of a float dtype: `F32` and `F64` as they are, `F16` and `BF16` as raw bits
 * rounded to nearest even (what PyTorch's `.half()` and `.bfloat16()` do).
 *
 * @param values The values.
 * @param dtype The float dtype to write.
 * @returns The typed array to pass as a tensor's `data` to {@link serializeSafetensors}.
 *
 * @example Store weights in half precision
 * ```ts
 * import { fromFloat32 } from "./safetensors.ts";
 * const bits = fromFloat32([1, 65504, 1e6], "F16");
 * if (bits[0] !== 0x3c00 || bits[1] !== 0x7bff || bits[2] !== 0x7c00) throw new Error("f16 bits");
 * ```
 */
export function fromFloat32(
  values: ArrayLike<number>,
  dtype: "F32" | "F64" | "F16" | "BF16",
): Float32Array<ArrayBuffer> | Float64Array<ArrayBuffer> | Uint16Array<ArrayBuffer> {
  switch (dtype) {
    case "F32":
      return Float32Array.from(values);
    case "F64":
      return Float64Array.from(values);
    case "F16":
    case "BF16": {
      const encode = dtype === "F16" ? numberToHalf : numberToBf16;
      const out = new Uint16Array(values.length);
      for (let i = 0; i < out.length; i++) out[i] = encode(values[i]);
      return out;
    }
    default:
      throw new TypeError(`fromFloat32: cannot encode floats as ${show(dtype)}; use F32, F64, F16 or BF16`);
  }
}
