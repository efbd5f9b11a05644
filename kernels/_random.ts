/**
 * The seeded random numbers tests, benchmarks and the pipeline job share:
 * runs are reproducible from their seed.
 *
 * @module
 */

/**
 * A seeded PRNG (mulberry32): each call returns the next float in [0, 1).
 * Equal seeds give equal sequences.
 *
 * @example
 * ```ts
 * import { mulberry32 } from "./_random.ts";
 * import assert from "node:assert/strict";
 *
 * const a = mulberry32(7), b = mulberry32(7);
 * assert.equal(a(), b());
 * ```
 *
 * @param seed any number; only its low 32 bits count
 * @returns the generator
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * `count` values in [-scale, scale) from `random`, none of them zero (a zero
 * input hides a missing term in a sum).
 *
 * @example
 * ```ts
 * import { mulberry32, randomValues } from "./_random.ts";
 * import assert from "node:assert/strict";
 *
 * const v = randomValues(mulberry32(1), 100, 0.5);
 * assert.ok(v.every((x) => x !== 0 && x >= -0.5 && x < 0.5));
 * ```
 *
 * @param random the generator
 * @param count how many values
 * @param scale half the width of the range (default 1)
 * @returns the values
 */
export function randomValues(
  random: () => number,
  count: number,
  scale = 1,
): Float32Array<ArrayBuffer> {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    let v = 0;
    while (v === 0) v = Math.fround((random() * 2 - 1) * scale);
    out[i] = v;
  }
  return out;
}
