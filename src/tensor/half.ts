/**
 * IEEE half-precision (f16) bits to and from numbers, exactly: what f16 tensors upload and read back, what
 * safetensors files hold as F16, and what the `cast` op computes on the GPU.
 *
 * @module
 */

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * IEEE half-precision (f16) bits to a number, exactly (subnormals, infinities and NaN included). Also what
 * `Tensor.toArray()` uses to read an f16 tensor.
 *
 * @param h The 16 bits, `0 .. 0xffff`.
 * @returns The value.
 *
 * @example
 * ```ts
 * import { halfToNumber } from "./half.ts";
 * if (halfToNumber(0x3c00) !== 1 || halfToNumber(0x7bff) !== 65504) throw new Error("f16 bits");
 * ```
 */
export function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * A number to IEEE half-precision (f16) bits: the value as an f32 (what a tensor holds), rounded to nearest
 * even; magnitudes from 65520 up give infinity, those up to 2^-25 a signed zero, NaN stays NaN. Also
 * what `tensor(data, shape, { dtype: "f16" })` uploads and what the `cast` op computes on the GPU.
 *
 * @param value The value.
 * @returns The 16 bits.
 *
 * @example
 * ```ts
 * import { numberToHalf } from "./half.ts";
 * if (numberToHalf(1 + 2 ** -11) !== 0x3c00) throw new Error("a tie rounds to even");
 * if (numberToHalf(1e6) !== 0x7c00) throw new Error("overflow gives infinity");
 * ```
 */
export function numberToHalf(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa with its implicit bit into place, rounding to even.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1) === 1)) m++;
    return sign | m;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
  return h;
}
