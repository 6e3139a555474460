/**
 * `cast`: converts a tensor between f32 and f16 (`shaders/cast.wgsl`). f32 -> f16 rounds to nearest even,
 * bit for bit what `tensor(data, shape, { dtype: "f16" })` uploads; f16 -> f32 is exact. Needs the device's
 * `shader-f16` feature.
 *
 * The gradient is the output's gradient passed through unchanged: the cast back to the input's dtype, and
 * gradients are always f32 (the gradient of an f16 tensor is an f32 tensor), so nothing is rounded.
 *
 * @module
 */

import code from "../../shaders/cast.wgsl" with { type: "text" };
import { params } from "../gpu/device.ts";
import { empty, type Tensor } from "../tensor/tensor.ts";
import { expectF16Support, gradNode, grid1d } from "./_op.ts";
import { reshape } from "./reshape.ts";

/**
 * `x` converted to `dtype`: f32 -> f16 rounds to the nearest f16 (ties to even; magnitudes from 65520 up
 * give infinity, f16 subnormals are kept), f16 -> f32 is exact. A cast to the dtype `x` already has returns
 * a view of `x` (no GPU work). f16 is a storage type for `matmul` and `linear` operands: `matmul` reads it
 * and accumulates in f32, the other ops take f32.
 *
 * @param x An f32 or f16 tensor.
 * @param dtype `"f16"` or `"f32"`.
 * @returns A tensor of `x`'s shape and the given dtype. Its gradient flows back to `x` as f32.
 * @throws {TypeError} When `x` is i32 or `dtype` is not f32 or f16.
 * @throws {Error} When the device has no `shader-f16` (the message names the adapter).
 *
 * @example Round to f16 and back
 * ```ts
 * import { cast, requestGpu, setGpu, tensor } from "../../mod.ts";
 * const gpu = await requestGpu();
 * setGpu(gpu);
 * if (gpu.hasF16) {
 *   const half = cast(tensor([1 + 2 ** -11, 0.1, 1e5], [3]), "f16");
 *   console.log(half.dtype, await cast(half, "f32").toArray()); // "f16" [1, 0.0999755859375, Infinity]
 * }
 * ```
 */
export function cast(x: Tensor, dtype: "f32" | "f16"): Tensor {
  if (dtype !== "f32" && dtype !== "f16") {
    throw new TypeError(`cast: converts between f32 and f16, got dtype ${JSON.stringify(dtype)}`);
  }
  if (x.dtype !== "f32" && x.dtype !== "f16") {
    throw new TypeError(`cast: converts f32 and f16 tensors, got ${x}: an i32 tensor holds ids or indices`);
  }
  if (x.dtype === dtype) return reshape(x, x.shape);
  expectF16Support("cast", x.gpu);
  // d/dx: dy itself (f32, whatever x's dtype: gradients are f32).
  const out = empty(x.shape, dtype, gradNode("cast", [x], (dy) => [dy]));
  x.gpu.dispatch({
    kernel: { file: "cast.wgsl", code, entry: dtype === "f16" ? "cast_to_f16" : "cast_to_f32" },
    inputs: [x.buffer],
    outputs: [out.buffer],
    params: params([x.size]),
    // One thread per 32-bit word of the f16 side: two elements.
    workgroups: grid1d(Math.ceil(x.size / 2)),
  });
  return out;
}
