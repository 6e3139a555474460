/**
 * Seed mixing: derives independent generator seeds from (seed, index) pairs, so that a scene, an epoch's
 * order or a sample's region choice depends only on its own coordinates, never on what ran before.
 * @module
 */

/**
 * Mixes two integers into a well-spread 32-bit seed (murmur3's finaliser over a combination).
 *
 * @param a First integer (a seed).
 * @param b Second integer (an index, an epoch).
 * @returns A 32-bit signed integer.
 *
 * @example
 * ```ts
 * import { mixSeed } from "./_seed.ts";
 * if (mixSeed(1, 2) === mixSeed(1, 3) || mixSeed(1, 2) !== mixSeed(1, 2)) throw new Error("spread, stable");
 * ```
 */
export function mixSeed(a: number, b: number): number {
  let h = Math.imul(a | 0, 0x9e3779b1) ^ Math.imul((b | 0) + 0x7f4a7c15, 0x85ebca77);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}
