/**
 * What an autotuned kernel needs: a key per adapter (tunings are cached per adapter, not per device), whether
 * the adapter is a CPU rasteriser (its candidates differ from a GPU's), and a fair timing of candidates.
 * No Deno APIs here: a CLI persists tunings through the op's own setter and getter.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";

/**
 * A stable key for the adapter behind a device: vendor, architecture, device and description. Two devices
 * on the same adapter share it.
 *
 * @param gpu The device.
 * @returns `"vendor|architecture|device|description"`.
 *
 * @example
 * ```ts ignore
 * adapterKey(gpu); // "65541|||llvmpipe (LLVM 15.0.6, 256 bits)" on Mesa's software driver
 * ```
 */
export function adapterKey(gpu: Gpu): string {
  const info = gpu.info as GPUAdapterInfo & { device?: string; description?: string };
  return [info.vendor, info.architecture, info.device ?? "", info.description ?? ""].join("|");
}

// Software rasterisers that run WebGPU on the CPU: Mesa's llvmpipe (lavapipe), Google's SwiftShader and
// Microsoft's WARP ("Microsoft Basic Render Driver").
const CPU_ADAPTER = /llvmpipe|lavapipe|softpipe|swiftshader|microsoft basic render|\bwarp\b/i;

/**
 * Whether the adapter runs on the CPU (a fallback adapter, or one that names a known software rasteriser).
 *
 * @param gpu The device.
 * @returns True for llvmpipe, SwiftShader, WARP and any fallback adapter.
 *
 * @example
 * ```ts ignore
 * if (isCpuAdapter(gpu)) console.log("software rasteriser: register-tiled kernels");
 * ```
 */
export function isCpuAdapter(gpu: Gpu): boolean {
  const info = gpu.info as GPUAdapterInfo & { device?: string; description?: string };
  return gpu.isFallbackAdapter ||
    CPU_ADAPTER.test(`${info.vendor} ${info.architecture} ${info.device ?? ""} ${info.description ?? ""}`);
}

/** Options for {@link timeCandidates}. */
export interface TimeOptions {
  /**
   * Timed rounds; every round times each candidate once, in turn, so a burst of load from another process
   * hits all of them alike. The best round counts.
   * @default {3}
   */
  rounds?: number;
  /**
   * Wall time one timing should last, in ms: enough runs are recorded per submit to reach it, so the
   * >= 10 ms that Deno takes to notice a finished queue stays small next to the work.
   * @default {40}
   */
  targetMs?: number;
}

/**
 * Times candidates of one kernel: each is run once untimed (pipeline compilation), once to size its
 * timings, then in `rounds` interleaved rounds; a round records the same number of runs of each and waits
 * for the queue.
 *
 * @param gpu The device the runs record on.
 * @param count The number of candidates.
 * @param run Records one run of candidate `i` (nothing may wait inside).
 * @param options See {@link TimeOptions}.
 * @returns Seconds per run of each candidate, the best round's.
 *
 * @example
 * ```ts ignore
 * const seconds = await timeCandidates(gpu, tiles.length, (i) => matmul(a, b, { tiles: tiles[i] }));
 * ```
 */
export async function timeCandidates(
  gpu: Gpu,
  count: number,
  run: (i: number) => void,
  options: TimeOptions = {},
): Promise<number[]> {
  const rounds = options.rounds ?? 3;
  const targetMs = options.targetMs ?? 40;
  // One count of runs per timing for all candidates, so each timing carries the same share of the wait.
  let fastest = Infinity;
  for (let i = 0; i < count; i++) {
    run(i);
    await gpu.sync();
    const t0 = performance.now();
    run(i);
    await gpu.sync();
    fastest = Math.min(fastest, performance.now() - t0);
  }
  const reps = Math.max(1, Math.min(64, Math.round(targetMs / Math.max(0.05, fastest))));
  const best = new Array<number>(count).fill(Infinity);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      for (let j = 0; j < reps; j++) run(i);
      await gpu.sync();
      best[i] = Math.min(best[i], (performance.now() - t0) / 1e3 / reps);
    }
  }
  return best;
}
