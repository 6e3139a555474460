/**
 * A small seeded random generator (mulberry32 with Box-Muller normals) for parameter initialisation,
 * data generation and shuffling: the same seed gives the same numbers on every machine.
 * @module
 */

/**
 * A seeded pseudo-random generator. Its whole state is one 32-bit word ({@link Rng.state}), so a resumed
 * run can continue the same sequence.
 *
 * @example
 * ```ts
 * import { Rng } from "./random.ts";
 * const a = new Rng(42), b = new Rng(42);
 * if (a.uniform() !== b.uniform()) throw new Error("same seed, same numbers");
 * ```
 */
export class Rng {
  /** The generator's state; set it to resume a sequence. */
  state: number;

  /**
   * A generator seeded with `seed`.
   * @param seed Any integer.
   */
  constructor(seed: number) {
    this.state = (seed | 0) ^ 0x9e3779b9;
  }

  /** A float in [0, 1). */
  uniform(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A standard normal sample. */
  normal(): number {
    const u = 1 - this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** `n` normal samples times `std`. */
  normals(n: number, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal() * std;
    return out;
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}
