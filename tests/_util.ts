// Helpers shared by the tests: a seeded PRNG and the real device.
import { requestDevice } from "../mod.ts";

/** A seeded PRNG (mulberry32): returns floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

let device: Promise<GPUDevice> | undefined;

/**
 * The real adapter's device, shared by a test file. No adapter is a failure
 * (requestDevice says how to get one), never a skip.
 */
export function gpu(): Promise<GPUDevice> {
  device ??= requestDevice();
  return device;
}
