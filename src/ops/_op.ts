/**
 * What every op shares: making its autograd node, checking its inputs, and sizing its dispatch grid.
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { isCpuAdapter } from "./_autotune.ts";
import { formatShape, type GradNode, isGradEnabled, type Tensor } from "../tensor/tensor.ts";

/** Threads per workgroup of the 1-D elementwise kernels (the WGSL files use the same number). */
export const WORKGROUP_1D = 256;

/**
 * The autograd node for an op's output, or null when no gradient can flow (grad mode off, or no input
 * requires grad). `backward` receives the output's gradient and returns one gradient per input; with
 * `addendInput`, it also receives the gradient already gathered for that input and sums it in itself
 * (see {@link GradNode}).
 */
export function gradNode(
  op: string,
  inputs: Tensor[],
  backward: (dout: Tensor, addend?: Tensor) => (Tensor | null)[],
  addendInput?: number,
): GradNode | null {
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) return null;
  return addendInput === undefined ? { op, inputs, backward } : { op, inputs, backward, addendInput };
}

/** `t` for messages, with its dtype even when it has a name. */
function describe(t: Tensor): string {
  return t.name === undefined ? `${t}` : `${t} (${t.dtype})`;
}

/** What to do instead, for a tensor whose dtype an op does not take. */
function dtypeAdvice(t: Tensor): string {
  return t.dtype === "i32"
    ? "an i32 tensor holds ids or indices; use embedding() or gather() to turn ids into values"
    : 'f16 is a storage type for matmul and linear operands; cast(x, "f32") first';
}

/** Throws unless every tensor is f32: ops on values refuse token ids and indices, and f16 storage. */
export function expectF32(op: string, ...tensors: Tensor[]): void {
  tensors.forEach((t, i) => {
    if (t.dtype !== "f32") {
      throw new TypeError(`${op}: expected f32 input but input ${i} is ${describe(t)}: ${dtypeAdvice(t)}`);
    }
  });
}

/** Throws unless every tensor is f32 or f16 (matmul's operands). */
export function expectFloat(op: string, ...tensors: Tensor[]): void {
  tensors.forEach((t, i) => {
    if (t.dtype !== "f32" && t.dtype !== "f16") {
      throw new TypeError(
        `${op}: expected f32 or f16 input but input ${i} is ${describe(t)}: ${dtypeAdvice(t)}`,
      );
    }
  });
}

/** Throws unless every tensor has 32-bit elements (f32 or i32): for ops that move raw 32-bit words. */
export function expect32Bit(op: string, ...tensors: Tensor[]): void {
  tensors.forEach((t, i) => {
    if (t.dtype === "f16") {
      throw new TypeError(
        `${op}: input ${i} is ${describe(t)}, but ${op} moves 32-bit elements (f32 or i32); ` +
          'cast(x, "f32") first',
      );
    }
  });
}

/** Throws, naming the adapter, unless the device has `shader-f16` (which f16 kernels need). */
export function expectF16Support(op: string, gpu: Gpu): void {
  if (!gpu.hasF16) {
    const info = gpu.info as GPUAdapterInfo & { description?: string };
    const adapter = info.description || [info.vendor, info.architecture].filter(Boolean).join(" ") ||
      "unknown";
    throw new Error(
      `${op}: f16 tensors need the WebGPU feature 'shader-f16', which the adapter "${adapter}" does not ` +
        'offer; keep this run in f32 (leave out precision: "f16" and f16 casts)',
    );
  }
}

/** Throws unless `t` is i32. */
export function expectI32(op: string, what: string, t: Tensor): void {
  if (t.dtype !== "i32") {
    throw new TypeError(`${op}: expected ${what} as an i32 tensor, got ${t}`);
  }
}

/** Normalises a possibly negative axis for a tensor of `rank` dimensions. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= Math.max(rank, 1)) {
    throw new RangeError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

/** The shape two shapes broadcast to (NumPy rules), or an error naming the op and both shapes. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(
        `${op}: shapes ${formatShape(a)} and ${formatShape(b)} cannot be broadcast together`,
      );
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/**
 * A grid of workgroups covering `threads` threads of `workgroupSize` each, folded into y when x would pass
 * the per-dimension limit. Kernels recover the flat index as `gid.x + gid.y * num_workgroups.x * size`.
 */
export function grid1d(threads: number, workgroupSize = WORKGROUP_1D, maxPerDim = 65535): [number, number] {
  const groups = Math.ceil(threads / workgroupSize);
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}

/** Contiguous row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

let rowThreadLimit: number | null = null;

/**
 * Caps the threads a row of {@link rowLaunch} (null: the adapter's own choice), so that tests on a CPU
 * rasteriser also run the many-threads-a-row launch that GPUs get.
 */
export function setRowThreadLimit(most: number | null): void {
  rowThreadLimit = most;
}

/**
 * The launch of a row kernel: one workgroup of `workgroupSize` threads covers workgroupSize/TPR rows with TPR
 * threads per row, TPR a power of two near d/4 (so short rows share a workgroup and long rows get all of it).
 * On a CPU rasteriser a row is one thread's: llvmpipe runs a workgroup's threads on one core anyway, and the
 * shared-memory tree between them only adds barriers (layer norm forward and backward at d = 64 ran 1.3-1.6x
 * faster with one thread a row than with 16).
 */
export function rowLaunch(
  gpu: Gpu,
  rows: number,
  d: number,
  workgroupSize = WORKGROUP_1D,
): { tpr: number; workgroups: [number, number] } {
  const most = rowThreadLimit ?? (isCpuAdapter(gpu) ? 1 : workgroupSize);
  let tpr = 1;
  while (tpr < most && tpr * 4 < d) tpr *= 2;
  return { tpr, workgroups: grid1d(rows, workgroupSize / tpr, gpu.limits.maxComputeWorkgroupsPerDimension) };
}
