/**
 * The learning-rate schedule as a pure function of the step: linear warmup, then cosine decay to a floor.
 * @module
 */

/** Options of {@link learningRate}. */
export interface ScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  /** Steps of linear warmup from lr/warmup to lr. */
  warmupSteps: number;
  /** Total steps; the cosine reaches `minLr` at the last one. */
  totalSteps: number;
  /**
   * The floor at the end of the decay.
   * @default {0}
   */
  minLr?: number;
}

/**
 * The learning rate of step `step` (1-based, as the optimizer counts): `lr * step / warmup` during warmup, then
 * `minLr + (lr - minLr) * (1 + cos(pi * progress)) / 2`.
 *
 * @param step The step about to be taken, from 1.
 * @param options See {@link ScheduleOptions}.
 * @returns The learning rate.
 *
 * @example
 * ```ts
 * import { learningRate } from "./schedule.ts";
 * const opts = { lr: 1e-3, warmupSteps: 10, totalSteps: 100 };
 * console.log(learningRate(5, opts), learningRate(10, opts), learningRate(100, opts)); // 5e-4 1e-3 0
 * ```
 */
export function learningRate(step: number, options: ScheduleOptions): number {
  const { lr, warmupSteps, totalSteps } = options;
  const minLr = options.minLr ?? 0;
  if (step <= warmupSteps) return (lr * step) / Math.max(1, warmupSteps);
  const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
  return minLr + ((lr - minLr) * (1 + Math.cos(Math.PI * progress))) / 2;
}
